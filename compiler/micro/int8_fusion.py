"""Memory below the tensor-level plan on the int8 path: residual adds fused into a conv's epilogue.

A ResNet block ends in `relu(conv(h) + shortcut)`. As separate kernels, the conv's output, its input `h` and the
shortcut are all alive at the conv: three block-sized tensors. Fused (`edgecc_q8_conv_add`), the conv adds the
shortcut value at the same index in its epilogue and stores the sum, so its own output never exists, and the
sum can be written over the shortcut when the shortcut dies there (the arena planner decides that from liveness,
plan.inplace_aliases). The arithmetic is the add's, value for value: bit-exact with the unfused kernels.

    residual_fusions(g)   {conv op index: add op index} of the adds a conv can take into its epilogue
"""

from __future__ import annotations

from collections import Counter


def residual_fusions(g) -> dict[int, int]:
    """{conv op index: add op index}: an add fuses into the producer of its later-computed operand when that
    producer is a (non-depthwise) conv whose output only this add reads, and the other operand already exists
    when the conv runs (it is computed before it, or is the graph input).

    Example: for ResNet-8's first block `relu(conv2(conv1(x)) + x)` it maps conv2's index to the add's.
    """
    producer = {op.output: i for i, op in enumerate(g.ops)}
    reads = Counter(t for op in g.ops for t in op.inputs)
    fused: dict[int, int] = {}
    for j, op in enumerate(g.ops):
        if op.kind != "add" or op.inputs[0] == op.inputs[1]:
            continue
        late = max(op.inputs, key=lambda t: producer.get(t, -1))
        other = op.inputs[1] if late == op.inputs[0] else op.inputs[0]
        i = producer.get(late)
        if i is None or i in fused or producer.get(other, -1) >= i:
            continue
        conv = g.ops[i]
        if conv.kind != "conv" or conv.attrs["groups"] != 1 or reads[late] != 1 or late == g.output:
            continue
        if tuple(g.shapes[late]) != tuple(g.shapes[other]):
            continue  # (a 4-D conv output never meets a 2-D flatten view, stored in its source's order)
        fused[i] = j
    return fused


def conv_add_operands(g, conv_index: int, add_index: int) -> tuple[str, list[int]]:
    """(the residual tensor, the fused call's edgecc_q8_add_params) with the conv's value as operand a: the add's
    two rescaled terms are summed as integers, so which operand comes first does not change a bit."""
    conv, add = g.ops[conv_index], g.ops[add_index]
    k = add.inputs.index(conv.output)  # the conv's operand: multiplier k of [a, b, out]
    residual = add.inputs[1 - k]
    m, s = add.multiplier, add.shift
    act_min = g.qparams[add.output][1] if add.relu else -128
    prm = [g.qparams[conv.output][1], g.qparams[residual][1], g.qparams[add.output][1], act_min,
           m[k], s[k], m[1 - k], s[1 - k], m[2], s[2]]
    return residual, [int(v) for v in prm]
