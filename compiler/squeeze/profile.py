"""Where a model's cost sits: per-layer MACs, parameters and activation bytes, read from its exported graph.

    layer_costs(module, example)  -> [LayerCost]: one row per layer (the innermost nn.Module a graph node runs in;
                                     functional ops outside a module get the node's own name), in execution order
    model_costs(module, example)  -> {"params", "macs", "weight_bytes", "arena_bytes", ...}: the totals a squeeze
                                     stage records
    lowrank_hint(module, energy)  -> {layer: MACs fraction an SVD keeping `energy` would leave}

MACs count multiply-accumulates of convolutions and matrix products (elementwise ops, pools and adds are not MACs;
their cost shows up in the measured per-kernel share, runtime side). The arena estimate is the peak of live
intermediate activations walking the graph in order (inputs and outputs are caller buffers, views share their
source), the same quantity the micro backend's arena plan packs; the micro artifact reports its real arena.

Example:
    >>> rows = layer_costs(net, torch.randn(1, 1, 8, 8))                                # doctest: +SKIP
    >>> max(rows, key=lambda r: r.macs).layer                                           # doctest: +SKIP
    'features.2'
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

from edgecc.errors import ModelError, first_line

# aten ops whose output is a view (or a reshape) of their input: no bytes of their own in an arena
VIEW_OPS = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "_unsafe_view", "alias", "expand", "permute",
            "t", "transpose", "contiguous", "dropout", "clone", "detach"}


@dataclass
class LayerCost:
    layer: str  # module path (features.0) or the graph node's name
    kind: str  # the module class (Conv2d) or the aten op (add)
    macs: int
    params: int
    activation_bytes: int  # bytes of the layer's output tensor(s), fp32
    output_shape: list[int]
    weight_elements: int = 0  # of its conv / linear weight: pairs the layer with the kernel that takes it

    def to_dict(self) -> dict:
        return asdict(self)


def export_graph(module, example):
    """torch.export of `module` on `example` (a tensor), with a one-line ModelError when it cannot export."""
    import torch

    try:
        return torch.export.export(module.eval(), (example,))
    except Exception as e:
        raise ModelError(f"torch.export failed while profiling: {first_line(e)}") from e


def _op_name(node) -> str:
    return str(getattr(node.target, "__name__", node.target)).split(".")[0]


def _layer_of(node) -> tuple[str, str]:
    stack = node.meta.get("nn_module_stack")
    if stack:
        path, cls = list(stack.values())[-1]
        if path:
            return path, str(cls).rsplit(".", 1)[-1]
    return node.name, _op_name(node)


def _numel(val) -> int:
    return math.prod(int(d) for d in val.shape) if hasattr(val, "shape") else 0


def node_macs(node) -> int:
    """Multiply-accumulates of one aten node: conv (any groups), linear, (add)mm, matmul, bmm; 0 otherwise."""
    op = _op_name(node)
    out = node.meta.get("val")
    if out is None or not hasattr(out, "shape"):
        return 0
    args = node.args
    if op in ("conv1d", "conv2d", "conv3d", "convolution"):
        w = args[1].meta["val"]
        return _numel(out) * int(w.shape[1]) * math.prod(int(d) for d in w.shape[2:])
    if op == "linear":
        return _numel(out) * int(args[1].meta["val"].shape[-1])
    if op in ("mm", "bmm", "matmul"):
        return _numel(out) * int(args[0].meta["val"].shape[-1])
    if op in ("addmm", "baddbmm"):
        return _numel(out) * int(args[1].meta["val"].shape[-1])
    return 0


def layer_costs(module, example, ep=None) -> list[LayerCost]:
    """Per-layer MACs, parameters and output bytes of `module` on `example` (see the module docstring)."""
    ep = ep or export_graph(module, example)
    params = {**ep.graph_signature.inputs_to_parameters}
    sizes = {n: _numel(p) for n, p in ep.state_dict.items()}
    rows: dict[str, LayerCost] = {}
    seen_params: set[str] = set()
    for node in ep.graph.nodes:
        if node.op != "call_function":
            continue
        layer, kind = _layer_of(node)
        row = rows.get(layer)
        if row is None:
            row = rows[layer] = LayerCost(layer, kind, 0, 0, 0, [])
        macs = node_macs(node)
        row.macs += macs
        w = node.args[1].meta.get("val") if macs and len(node.args) > 1 and hasattr(node.args[1], "meta") else None
        if w is not None and hasattr(w, "shape") and _op_name(node) not in ("mm", "bmm", "matmul"):
            row.weight_elements = _numel(w)
        for a in node.args:
            name = params.get(getattr(a, "name", None))
            if name is not None and name not in seen_params:
                seen_params.add(name)
                row.params += sizes.get(name, 0)
        val = node.meta.get("val")
        if hasattr(val, "shape") and _op_name(node) not in VIEW_OPS:
            row.activation_bytes = _numel(val) * val.element_size()
            row.output_shape = [int(d) for d in val.shape]
    return list(rows.values())


def arena_estimate(module, example, element_bytes: int = 4, ep=None) -> int:
    """Peak bytes of live intermediate activations walking the exported graph in order (see the docstring)."""
    ep = ep or export_graph(module, example)
    nodes = [n for n in ep.graph.nodes if n.op == "call_function"]
    outputs = {a.name for a in ep.graph.output_node().args[0] if hasattr(a, "name")} if nodes else set()
    root = {}
    for n in nodes:  # a view's bytes are its source's: it extends the source's lifetime instead
        src = next((a for a in n.args if hasattr(a, "name")), None)
        root[n.name] = root.get(src.name, src.name) if src is not None and _op_name(n) in VIEW_OPS else n.name
    last_use: dict[str, int] = {}
    for i, n in enumerate(nodes):
        for a in n.all_input_nodes:
            last_use[root.get(a.name, a.name)] = i
    live, peak = {}, 0
    for i, n in enumerate(nodes):
        r = root[n.name]
        if r == n.name and r not in outputs and r not in {root.get(o, o) for o in outputs}:
            live[r] = _numel(n.meta.get("val")) * element_bytes
        peak = max(peak, sum(live.values()))
        for k in [k for k in live if last_use.get(k, i) <= i]:
            del live[k]
    return peak


def model_costs(module, example, weight_element_bytes: int = 4) -> dict:
    """Totals of `module`: parameters, MACs, weight bytes, arena estimate (fp32 activations)."""
    ep = export_graph(module, example)
    rows = layer_costs(module, example, ep)
    params = sum(p.numel() for p in module.parameters())
    return {"params": params, "macs": sum(r.macs for r in rows), "weight_bytes": params * weight_element_bytes,
            "arena_bytes": arena_estimate(module, example, ep=ep)}


def lowrank_hint(module, energy: float = 0.9) -> dict[str, float]:
    """{layer: MACs after / MACs before} for each conv/linear an SVD keeping `energy` would shrink (< 1 only)."""
    from edgecc.compiler.squeeze.lowrank import factorizable, rank_for_energy

    out = {}
    for name, m in module.named_modules():
        w2d = factorizable(m)
        if w2d is None:
            continue
        r = rank_for_energy(w2d, energy)
        o, k = w2d.shape
        if r * (o + k) < o * k:
            out[name] = round(r * (o + k) / (o * k), 3)
    return out


def layer_table(module, example, energy: float = 0.9) -> list[dict]:
    """layer_costs as dicts, each conv/linear with the MACs fraction an SVD keeping `energy` would leave."""
    hints = lowrank_hint(module, energy)
    rows = [r.to_dict() for r in layer_costs(module, example)]
    for r in rows:
        if r["layer"] in hints:
            r["lowrank_macs_fraction"] = hints[r["layer"]]
    return rows


MAC_KERNEL = re.compile(r"conv|dense|matmul|matvec|linear|gemm", re.I)


def attach_measured(layers: list[dict], kernels: list[dict]) -> bool:
    """Give each MAC layer the measured share of the kernel that runs it; False when they do not pair up.

    There is one conv/dense kernel per conv/linear layer. A compiler may run them in another order than the model
    (TVM puts a residual block's shortcut conv before the block's second conv), so when kernels list the element
    counts of their arguments a layer takes the first unused kernel holding a tensor the size of its weight;
    otherwise (edgecc's int8 driver, which runs the layers in graph order) they pair in order."""
    mac_layers = [r for r in layers if r["macs"] > 0]
    mac_kernels = [k for k in kernels if MAC_KERNEL.search(k["kernel"]) or MAC_KERNEL.search(k.get("comment", ""))]
    if len(mac_layers) != len(mac_kernels):
        return False
    pairs, free = [], list(mac_kernels)
    for r in mac_layers:
        k = next((k for k in free if "arg_elements" not in k or r.get("weight_elements") in k["arg_elements"]), None)
        if k is None:
            return False
        free.remove(k)
        pairs.append((r, k))
    for r, k in pairs:
        r["measured_share"], r["measured_step"] = k["share"], k["step"]
    return True


def profile_bundle(bundle, measure: bool = True) -> dict:
    """The profile of a compiled bundle: static per-layer costs of the model it was compiled from (the squeezed
    model for --squeeze bundles) and, where the target runs here, the measured per-kernel share of time."""
    m = bundle.manifest
    out: dict = {"bundle": str(bundle.path), "model": m["model"]["name"], "target": m["target"]["name"],
                 "backend": m["backend"]}
    sq = m.get("squeeze")
    if isinstance(sq, dict) and sq.get("layers"):
        out["layers"], out["layers_of"] = sq["layers"], "the squeezed fp32 model (before int8 if any)"
    else:
        out["layers"], out["layers_of"] = _source_layers(m)
    if not measure:
        out["measured"] = "not run: --no-measure"
    elif m["backend"] == "micro":
        from edgecc.compiler.micro.profile_firmware import profile_kernels
        from edgecc.errors import CannotRunHere

        try:
            out["measured"] = profile_kernels(bundle)
        except CannotRunHere as e:
            out["measured"] = f"not run: {e}"
    elif m["backend"] == "tvm":
        out["measured"] = _tvm_measured(bundle)
    elif m["backend"] == "iree":
        from edgecc.compiler.backends.iree.dispatch_profile import profile_dispatches
        from edgecc.errors import CannotRunHere

        try:
            out["measured"] = profile_dispatches(bundle)
        except CannotRunHere as e:
            out["measured"] = f"not run: {e}"
    else:
        out["measured"] = (f"not run: per-kernel timing is implemented for micro (QEMU instruction counts), tvm "
                           f"(the Relax VM profiler) and iree (per-dispatch benchmarks); {m['backend']} has none")
    if isinstance(out["measured"], dict) and isinstance(out["layers"], list):
        out["measured_matches_layers"] = attach_measured(out["layers"], out["measured"]["kernels"])
    return out


TVM_METHOD = "TVM Relax VM instrument hook: wall clock per kernel call (median of 5 runs, ~1 us hook overhead each)"


def _tvm_measured(bundle):
    """Per-kernel microseconds of a TVM bundle that runs on this host, or why not."""
    from edgecc.errors import CannotRunHere
    from edgecc.runtime.runners import TvmLocalRunner

    try:
        runner = bundle.runner()
    except CannotRunHere as e:
        return f"not run: {e}"
    if not isinstance(runner, TvmLocalRunner) or runner.where != "host":
        return f"not run: TVM per-kernel timing runs on this host's CPU; this bundle runs on {runner.where}"
    calls = [c for c in runner.profile_ops(bundle.reference_inputs()) if not c["kernel"].startswith("vm.builtin")]
    total = sum(c["us"] for c in calls) or 1.0
    return {"method": TVM_METHOD, "ran_on": "host", "unit": "us", "total": round(total, 2),
            "kernels": [{"step": i, "kernel": c["kernel"], "comment": "", "us": round(c["us"], 2),
                         "share": round(c["us"] / total, 4), "arg_elements": c["arg_elements"]}
                        for i, c in enumerate(calls)]}


def _source_layers(m: dict):
    """(per-layer rows, what they describe) re-loading the bundle's source model (zoo name or .py:factory)."""
    import torch

    from edgecc.compiler.frontends import load_model

    src, kind = m["model"]["source"], m["model"]["kind"]
    if kind not in ("torch", "onnx") or src.endswith((".onnx", ".pt2")):
        return f"not available: the source is a {kind} model ({src}); profile a zoo name or a .py:factory", ""
    loaded = load_model(src, input_shapes=[tuple(t["shape"]) for t in m["io"]["inputs"]])
    if loaded.module is None:
        return f"not available: {src} is not a PyTorch module", ""
    note = "the source model" + (" (int8: same MACs, 1-byte weights and activations)" if "quantization" in m else "")
    return layer_table(loaded.module, torch.from_numpy(loaded.example_inputs[0])), note
