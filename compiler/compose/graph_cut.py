"""Cutting a torch.export graph in two at one node: the candidate cuts, and the front and back as plain modules.

A cut after node N (in the graph's topological order) is offered when exactly one tensor is live across it, and that
tensor is N's output: everything before runs on the front device, N's output is sent over the link, everything after
runs on the back. Parameters and buffers are not "live tensors": each side carries the weights it uses.

    >>> ep = load_model("resnet8").exported_program()                                   # doctest: +SKIP
    >>> [c.node for c in cut_candidates(ep)][:3]                                         # doctest: +SKIP
    ['conv2d', 'batch_norm', 'relu_']
    >>> front, back = split_program(ep, "relu__2")                                        # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgecc.errors import ModelError


@dataclass(frozen=True)
class Cut:
    """A candidate cut: the node whose output crosses, and that tensor's shape, dtype and size."""

    node: str
    index: int  # position among the graph's compute nodes (0: the first op)
    op: str  # the ATen op that produces the tensor, e.g. "aten.relu_.default"
    shape: tuple[int, ...]
    dtype: str
    front_ops: int  # compute nodes on the front (this one included)
    back_ops: int

    @property
    def bytes(self) -> int:
        import numpy as np

        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    def to_dict(self) -> dict:
        return {"node": self.node, "op": self.op, "shape": list(self.shape), "dtype": self.dtype,
                "bytes": self.bytes, "front_ops": self.front_ops, "back_ops": self.back_ops}


def _numpy_dtype(torch_dtype) -> str:
    import torch

    return str(torch.empty((), dtype=torch_dtype).numpy().dtype)


def _compute_nodes(ep) -> list:
    return [n for n in ep.graph.nodes if n.op == "call_function"]


def _user_outputs(ep) -> set[str]:
    return {s.arg.name for s in ep.graph_signature.output_specs if s.kind.name == "USER_OUTPUT"}


def _check_exportable(ep) -> None:
    kinds = {s.kind.name for s in ep.graph_signature.output_specs} - {"USER_OUTPUT"}
    if kinds:
        raise ModelError(f"the exported graph also writes {', '.join(sorted(kinds)).lower()} (a model that updates "
                         "its own buffers, e.g. BatchNorm in training mode); put the model in eval() to split it")


def _live_after(ep) -> list[list[str]]:
    """For each compute node i: the names of the tensors (user inputs and op outputs) live across a cut after it."""
    user_inputs = [s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    ops = _compute_nodes(ep)
    pos = {n.name: i for i, n in enumerate(ops)}
    outputs = _user_outputs(ep)
    last_use: dict[str, float] = {}
    for name in user_inputs + [n.name for n in ops]:
        last_use[name] = -1
    for i, n in enumerate(ops):
        for a in n.all_input_nodes:
            if a.name in last_use:
                last_use[a.name] = max(last_use[a.name], i)
    for name in outputs:
        last_use[name] = math.inf  # a model output is needed after every cut
    live = []
    for i in range(len(ops)):
        produced = user_inputs + [n.name for n in ops[:i + 1]]
        live.append([v for v in produced if last_use[v] > i and (v not in pos or pos[v] <= i)])
    return live


def crossing(ep, node: str) -> list[str]:
    """The tensors live across a cut after `node`; ModelError if the graph has no such compute node."""
    ops = _compute_nodes(ep)
    names = [n.name for n in ops]
    if node not in names:
        hint = ", ".join(c.node for c in cut_candidates(ep)[:8]) or "none"
        raise ModelError(f"the exported graph has no node {node!r}; cut candidates (single tensor crossing): {hint} "
                         "(see `edgecc split MODEL --list`)")
    return _live_after(ep)[names.index(node)]


def cut_candidates(ep) -> list[Cut]:
    """Every node after which exactly one tensor, its own output, is live, and work remains for the back."""
    _check_exportable(ep)
    ops = _compute_nodes(ep)
    outputs = _user_outputs(ep)
    cuts = []
    for i, (n, live) in enumerate(zip(ops, _live_after(ep), strict=True)):
        val = n.meta.get("val")
        if live != [n.name] or n.name in outputs or not hasattr(val, "shape"):
            continue
        cuts.append(Cut(n.name, i, str(n.target), tuple(int(d) for d in val.shape), _numpy_dtype(val.dtype),
                        i + 1, len(ops) - i - 1))
    return cuts


def block_boundaries(cuts: list[Cut]) -> list[Cut]:
    """The cuts `auto` measures: of each run of candidates one op apart with the same tensor size (conv -> batch
    norm -> relu), the last. The compilers fuse such a run into one kernel, and a cut inside it only unfuses."""
    keep = []
    for c, nxt in zip(cuts, cuts[1:] + [None], strict=True):
        if nxt is not None and nxt.index == c.index + 1 and nxt.bytes == c.bytes:
            continue
        keep.append(c)
    return keep


def _side_module(ep, ops: list, inputs: list, outputs: list):
    """A GraphModule computing `outputs` from the placeholders `inputs` with the nodes `ops` (copied), its weights
    (the parameters, buffers and constants those nodes read) held as buffers of the module."""
    import torch
    import torch.fx

    sig = ep.graph_signature
    consts = {**sig.inputs_to_parameters, **sig.inputs_to_buffers, **sig.inputs_to_lifted_tensor_constants}
    values = {**ep.state_dict, **ep.constants}
    root = torch.nn.Module()
    g = torch.fx.Graph()
    env = {}
    for n in inputs:
        env[n] = g.placeholder(n.name)
        env[n].meta = dict(n.meta)

    def arg(a):
        if a not in env:
            attr = "w_" + "".join(ch if ch.isalnum() else "_" for ch in consts[a.name])
            root.register_buffer(attr, values[consts[a.name]].detach().clone())
            env[a] = g.get_attr(attr)
        return env[a]

    for n in ops:
        for a in n.all_input_nodes:
            if a.op == "placeholder" and a not in env:
                if a.name not in consts:
                    raise ModelError(f"node {n.name} reads input {a.name}, which is not on its side of the cut")
                arg(a)
        env[n] = g.node_copy(n, lambda a: env[a])
    g.output(env[outputs[0]] if len(outputs) == 1 else tuple(env[o] for o in outputs))
    return torch.fx.GraphModule(root, g).eval()


def split_program(ep, node: str):
    """(front, back): GraphModules of the graph before and after a cut at `node` (a single-tensor cut).

    The front takes the model's inputs and returns `node`'s output; the back takes that tensor and returns the
    model's outputs. ModelError for a node that does not exist or a cut several tensors cross."""
    _check_exportable(ep)
    live = crossing(ep, node)
    if live != [node]:
        tensors = ", ".join(live)
        raise ModelError(f"{len(live)} tensors cross a cut after {node} ({tensors}); splitting sends one tensor, so "
                         "cut where one does (see `edgecc split MODEL --list`)")
    ops = _compute_nodes(ep)
    if node in _user_outputs(ep):
        raise ModelError(f"{node} is the model's output: a cut there leaves nothing for the back; choose an earlier "
                         "node (see `edgecc split MODEL --list`)")
    k = [n.name for n in ops].index(node)
    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    user_inputs = [placeholders[s.arg.name] for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    out_node = next(n for n in ep.graph.nodes if n.op == "output")
    model_outputs = [a for a in _flat(out_node.args[0]) if a.name in _user_outputs(ep)]
    front = _side_module(ep, ops[:k + 1], user_inputs, [ops[k]])
    back = _side_module(ep, ops[k + 1:], [ops[k]], model_outputs)
    return front, back


def _flat(args) -> list:
    if isinstance(args, (list, tuple)):
        return [x for a in args for x in _flat(a)]
    return [args]
