"""Small schedules for microcontroller kernels: keep scratch tiny without a tuner.

Legalized Relax ops come out as "compute everything, then the next stage": a fused conv2d+bias+relu keeps the
padded input and the whole convolution output as scratch before the epilogue runs. On a board with 256 KB of
RAM that scratch can be larger than the model's activations. Two rewrites remove almost all of it:

1. inline every injective producer that is not an output (padding, bias add, the elementwise chain), so the
   reduction reads its input through the padding predicate and the epilogue is one expression;
2. move the epilogue under the reduction's innermost spatial loop (reverse_compute_at), so the accumulator is
   one element, and hoist the reduction's init out of the reduction loops (decompose_reduction).

Anything a rewrite refuses (a ScheduleError) is left as it was: the kernel stays correct, only bigger.
"""

from __future__ import annotations

REDUCE = 2  # IterVar.iter_type for a commutative reduction axis


def _is_reduction(sch, block) -> bool:
    return any(int(iv.iter_type) == REDUCE for iv in sch.get(block).iter_vars)


def _leading_spatial(sch, block) -> int:
    """Number of spatial loops above the reduction loops, or 0 if the loop nest is not one loop per axis."""
    ivs = sch.get(block).iter_vars
    if len(sch.get_loops(block)) != len(ivs):
        return 0
    kinds = [int(iv.iter_type) for iv in ivs]
    n = 0
    while n < len(kinds) and kinds[n] != REDUCE:
        n += 1
    return n if all(k == REDUCE for k in kinds[n:]) else 0


ACCUMULATORS = 8  # fp32 accumulators per register block: with its operands it stays in the FPU's 32 registers


def _block_shape(channels: int, columns: int) -> tuple[int, int]:
    """(output channels, output columns) per block. Columns first: the inputs a block reads carry the padding
    predicate, so sharing them is worth more than sharing weights; channels fill the block when the width does
    not divide (ds-cnn's 5 columns)."""
    bw = next(b for b in (8, 4, 2, 1) if columns % b == 0)
    bc = next(b for b in (8, 4, 2, 1) if b * bw <= ACCUMULATORS and channels % b == 0)
    return bc, bw


def _register_block(sch, block, n_spatial: int) -> bool:
    """A conv2d (4-D NCHW) or dense (2-D) reduction computed in register blocks: `_block_shape` outputs per
    step, the block innermost under the reduction loops and unrolled, so each input value and each weight is
    loaded once per block (the int8 kernels' blocking, in fp32). Shapes that do not split are left as they were."""
    from tvm import s_tir

    loops = sch.get_loops(block)
    if n_spatial not in (2, 4) or len(loops) == n_spatial:
        return False
    extents = [int(sch.get(lp).extent) for lp in loops]
    # a dense layer's outputs are its columns: one row of channels
    bc, bw = _block_shape(extents[1], extents[3]) if n_spatial == 4 else _block_shape(1, extents[1])
    if bc * bw == 1:
        return False
    try:
        if n_spatial == 4:
            n, c, h, w, *red = loops
            co, ci = sch.split(c, [None, bc])
            wo, wi = sch.split(w, [None, bw])
            sch.reorder(n, co, h, wo, *red, ci, wi)
            inner = (ci, wi)
        else:
            i, j, *red = loops
            jo, ji = sch.split(j, [None, bw])
            sch.reorder(i, jo, *red, ji)
            inner = (ji,)
        for lp in inner:
            sch.unroll(lp)
    except s_tir.ScheduleError:
        return False
    return True


def schedule_for_mcu(func):
    """Return `func` (a legalized, fused PrimFunc) with padding/epilogues inlined and reductions fused.

    Example: `mod[gv] = schedule_for_mcu(mod[gv])` for every kernel before building.
    """
    from tvm import s_tir

    sch = s_tir.Schedule(func)
    root = sch.get_sblock("root")
    outputs = {sch.get(b).name_hint for b in sch.get_output_blocks(root)}

    changed = True
    while changed:  # inline until nothing more goes: each inline can enable another
        changed = False
        for block in sch.get_child_blocks(root):
            name = sch.get(block).name_hint
            if name in outputs or _is_reduction(sch, block):
                continue
            try:
                sch.compute_inline(block)
                changed = True
                break
            except s_tir.ScheduleError:
                continue

    for block in sch.get_child_blocks(root):
        if not _is_reduction(sch, block):
            continue
        n_spatial = _leading_spatial(sch, block)
        if n_spatial == 0:
            continue
        # blocked or not, n_spatial loops lead: the epilogue goes under the last, once per block
        _register_block(sch, block, n_spatial)
        consumers = sch.get_consumers(block)
        if len(consumers) == 1:
            try:
                sch.reverse_compute_at(consumers[0], sch.get_loops(block)[n_spatial - 1])
            except s_tir.ScheduleError:
                pass
        try:
            sch.decompose_reduction(block, sch.get_loops(block)[n_spatial])
        except (s_tir.ScheduleError, IndexError):
            pass
    return sch.mod["main"]
