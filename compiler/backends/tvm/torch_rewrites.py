"""Rewrites of a torch.export graph that TVM's Relax torch frontend (0.27) would otherwise translate wrongly.

- `aten.select.int(x, dim, -k)`: the frontend emits `relax.take(x, -k, dim)`, and take's default mode reads
  out of bounds for a negative index instead of counting from the end. `y[:, -1]` on an RNN's output sequence
  (the usual keyword-spotter head) gave garbage to max abs error 1e14 on host/tvm and on cortex-m4 (issue #18).
  With the shape static, the index becomes `size - k`.
- `aten.index.Tensor(x, [None, idx])` with a constant index tensor holding negative entries (`x[:, [-1, 0]]`):
  the same out-of-bounds take. The constant is replaced by its values modulo the indexed dimension.

Each rewrite keeps the program's meaning, so it edits the graph in place.
"""

from __future__ import annotations


def normalize_negative_select(exported_program) -> int:
    """Turn every `select.int` with a negative constant index into the same select with a non-negative one;
    returns how many were rewritten. Example: `normalize_negative_select(torch.export.export(net, (x,)))`."""
    import torch

    changed = 0
    for node in exported_program.graph_module.graph.nodes:
        if node.op != "call_function" or node.target is not torch.ops.aten.select.int:
            continue
        src, dim, index = node.args[:3]
        val = getattr(src, "meta", {}).get("val")
        if not isinstance(index, int) or index >= 0 or val is None:
            continue
        size = val.shape[dim]
        if not isinstance(size, int):  # a symbolic dimension: leave it (and its bug) to a dynamic-shape path
            continue
        node.args = (src, dim, index + size, *node.args[3:])
        changed += 1
    if changed:
        exported_program.graph_module.recompile()
    return changed


_COPIES = ("lift_fresh_copy.default", "clone.default", "detach.default")


def _constant_behind(exported_program, node):
    """(constants key, the placeholder) when `node` is a lifted constant tensor, possibly through copies, that
    nothing else reads; else None."""
    while node.op == "call_function" and str(node.target).removeprefix("aten.") in _COPIES:
        if len(node.users) != 1:
            return None
        node = node.args[0]
    key = exported_program.graph_signature.inputs_to_lifted_tensor_constants.get(node.name)
    if node.op != "placeholder" or key is None or len(node.users) != 1:
        return None
    return key


def normalize_negative_index_constants(exported_program) -> int:
    """Replace each constant index tensor of `index.Tensor` that holds negative entries by its values modulo
    the indexed dimension; returns how many were replaced."""
    import torch

    changed = 0
    for node in exported_program.graph_module.graph.nodes:
        if node.op != "call_function" or node.target is not torch.ops.aten.index.Tensor:
            continue
        src, indices = node.args[:2]
        val = getattr(src, "meta", {}).get("val")
        for dim, idx in enumerate(indices):
            if val is None or not isinstance(idx, torch.fx.Node) or not isinstance(val.shape[dim], int):
                continue
            key = _constant_behind(exported_program, idx)
            const = exported_program.constants.get(key) if key else None
            if const is None or const.dtype.is_floating_point or const.dtype == torch.bool or not (const < 0).any():
                continue
            exported_program.constants[key] = torch.remainder(const, val.shape[dim])
            changed += 1
    return changed


def prepare_for_relax(exported_program):
    """`exported_program` with every rewrite above applied (in place); what `from_exported_program` gets."""
    normalize_negative_select(exported_program)
    normalize_negative_index_constants(exported_program)
    return exported_program
