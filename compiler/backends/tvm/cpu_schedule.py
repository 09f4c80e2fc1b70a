"""Default CPU schedules that need no search: register-tiled convolutions and matmuls, vectorized element-wise.

`RegisterTiledReduction` schedules a fused function with one reduction block (a convolution, depthwise
convolution, matmul, pooling window or mean) and element-wise blocks around it, the way a hand-written direct
convolution is laid out:

- the **vector axis** is the output's innermost dimension where every read that uses it reads contiguously
  (NHWC convolutions: output channels; NCHW stride-1: output columns; `x @ W[K, N]`: N);
- the **register axis** is the innermost other spatial axis that some vector read does not use, so the loaded
  vector is reused across it (NHWC: output columns; NCHW: output channels);
- a tile of `rows × (vectors × lanes)` accumulators sits under all the reduction loops, the lanes vectorized
  (the target's vector width), the rows and vectors unrolled;
- the outer spatial loops are fused and `parallel` over the runtime's threads where the work is big enough to
  pay for waking them; where the weights outgrow L2 (ResNet's late layers), the output-channel tiles are the
  outer, parallel loop instead, each tile's weight slice copied contiguous before its pixels run;
- the element-wise epilogue (bias, residual add, ReLU) runs on each tile right after its accumulation
  (`reverse_compute_at`), so the accumulator buffer shrinks to the tile;
- padding stays its own (vectorized) loop: inlined, its bounds test would sit inside the multiply-add loop;
  a depthwise tile of two vectors or more pads its own window instead (`compute_at` the tile), so no padded copy
  of the whole map goes through memory (MobileNetV2's stride-2 112x112x96 depthwise 0.35 -> 0.21 ms, its
  28x28x192 0.20 -> 0.11 ms; a one-vector tile, 56x56x144, got slower, 0.16 -> 0.20 ms, and keeps the copy).

`ParallelElementwise` fuses the outer loops of large element-wise functions, parallelizes them and vectorizes
the innermost. Anything a rule does not recognise returns None and falls through to the next rule.

    from tvm.s_tir import dlight as dl
    mod = dl.ApplyDefaultSchedule(RegisterTiledReduction(), ParallelElementwise())(fused_mod)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# imported only by the TVM backend's build (tuning.py), where TVM is installed
from tvm.s_tir import dlight as dl

# Below this many multiply-adds (or elements, for element-wise blocks) a function runs on one thread. TVM's
# thread pool splits a parallel loop statically, one chunk per thread, and waits for the last: a few
# microseconds on an idle machine, but on a loaded one each parallel region waits for a descheduled worker
# (resnet8 at a 256 K threshold: 26 ms p50 on two threads at load 7 on the 2-core VM, 0.21 ms on one).
# At 1 M, resnet8's 1.2-2.4 M-MAC convs go parallel: on the idle 2-core Zen 4 VM 0.24 -> 0.16 ms (2.36 M MACs,
# 42 -> 26 us; one Zen 4 core already runs them at ~56 GMAC/s, near its FMA peak), where ONNX Runtime takes
# 0.14 ms on the same two threads.
PARALLEL_MIN_WORK = 1 << 20
PARALLEL_MIN_ELEMENTS = 1 << 18
# ... unless its reduction reads this many bytes: a matrix-vector product streams its weights from memory, and two
# cores stream more than one (MobileNetV3's 1024 x 1000 classifier, 1 M MACs over 4 MB: 1.17 -> 0.52 ms; from 1 MB
# since ResNet's 512 x 1000 fc, 2.05 MB, stayed on one thread: 0.42 -> 0.30 ms on the 2-core Xeon).
PARALLEL_MIN_BYTES = 1 << 20
# A reduction whose weights (what no output pixel indexes) exceed this many bytes (the A76's L2) loops over
# output-channel tiles outside the pixels, each tile's weight slice copied contiguous first, so it stays in L2
# across the pixels instead of all the weights streaming from L3 for every output row (`_weight_stationary`);
# only where at least STATIONARY_MIN_PIXEL_TILES pixel tiles reuse the copy.
WEIGHT_STATIONARY_MIN_BYTES = 1 << 19
STATIONARY_MIN_PIXEL_TILES = 4


def vector_lanes(target, dtype_bits: int = 32) -> int:
    """Lanes of the target's vector registers for `dtype_bits` elements (AVX2 8 floats, AVX-512 16, NEON 4)."""
    return max(vector_bits(target) // dtype_bits, 2)


def vector_bits(target) -> int:
    """The target's vector register width from its CPU features: x86 AVX-512 512, AVX 256, else 128 (SSE, NEON).
    TVM 0.27's `llvm_get_vector_width` says 512 for every x86 CPU, Haswell included."""
    from tvm.target.codegen import target_has_features

    triple = str(target.attrs.get("mtriple", ""))
    if triple.startswith(("x86_64", "i686", "i386")) or not triple:
        try:
            if target_has_features("avx512f", target):
                return 512
            if target_has_features("avx", target):
                return 256
        except Exception:  # a CPU name this LLVM does not know: assume SSE
            return 128
    return 128


def accumulator_budget(target) -> int:
    """Accumulator registers a tile may take, leaving room for the broadcast input and the weight vectors:
    AVX-512 (32 zmm) 16, AArch64 (32 NEON registers) 12, 16-register ISAs (AVX2) 8. At 12 on AVX-512, ResNet-18
    ran 19.1-20.1 ms, at 16 15.5-16.7, at 20 16.1-16.5; ResNet-50 44.9-45.2 -> 36.6-38.6 ms at 16 (`edgecc
    bench`-style workers, 2 threads, 3 interleaved rounds, 2-core Xeon); MobileNetV2, resnet8, ds-cnn did not
    move. The A76's 12 is not measured on a board."""
    if vector_lanes(target) >= 16:
        return 16
    keys = " ".join(str(target.attrs.get(k, "")) for k in ("mtriple", "mcpu", "mattr"))
    return 12 if "aarch64" in keys or "arm64" in keys else 8


@dataclass(frozen=True)
class Tile:
    """The register tile: `rows` along the register axis, `vectors` × `lanes` along the vector axis."""

    lanes: int
    vectors: int
    rows: int


def choose_tile(vec_extent: int, row_extent: int, lanes: int, budget: int) -> Tile:
    """The tile with the most accumulators within `budget`, using divisors of the extents only (a tail loop's
    predicate would stop vectorization); among equals the one with the fewest loads per step (vectors + rows:
    each step loads one vector per vector and broadcasts one input per row), then the most rows.

        choose_tile(64, 16, 16, 12)   # Tile(lanes=16, vectors=2, rows=4): 8 accumulators, 6 loads a step

    Without a register axis (a matrix-vector product) up to `budget` vectors: MobileNetV2's 1280 x 1000
    classifier ran 4 accumulators of 10 lanes (40 of a weight row's 1000 floats a step), 0.59 ms; 10 of them,
    0.17 ms (8 lanes x 5 vectors: 0.42 ms).
    """
    lanes = _largest_divisor(vec_extent, lanes)
    widths = range(1, budget + 1) if row_extent == 1 else (1, 2, 3, 4)  # no rows to reuse a vector: more vectors
    cands = [Tile(lanes, v, _largest_divisor(row_extent, budget // v)) for v in widths
             if (vec_extent // lanes) % v == 0]
    return max(cands, key=lambda t: (t.rows * t.vectors, -(t.rows + t.vectors), t.rows))


def _largest_divisor(n: int, limit: int) -> int:
    return max((d for d in range(1, max(1, min(n, limit)) + 1) if n % d == 0), default=1)


def _block_kinds(sch, block) -> str:
    from tvm import tirx

    return "".join({tirx.IterVar.DataPar: "S", tirx.IterVar.CommReduce: "R"}.get(iv.iter_type, "O")
                   for iv in sch.get(block).iter_vars)


def _int_value(e) -> int | None:
    """The value of a constant TIR expression (a loop extent, a buffer dimension), or None when it is symbolic."""
    from tvm import tirx

    return int(e.value) if isinstance(e, tirx.IntImm) else None


def _int_extent(sch, loop) -> int | None:
    return _int_value(sch.get(loop).extent)


def _uses(expr, var) -> bool:
    from tvm.s_tir.dlight.analysis.common_analysis import collect_vars_used_in_prim_expr

    return any(v.same_as(var) for v in collect_vars_used_in_prim_expr(expr))


def _contiguous_in(access, var) -> bool | None:
    """None if the point access (a BufferRegion) does not use `var`; True if `var` moves it by one element (it
    indexes one dimension, with coefficient 1, and every dimension after that one has extent 1), else False."""
    from tvm import sym

    region = access.region
    dims = [d for d, r in enumerate(region) if _uses(r.min, var)]
    if not dims:
        return None
    if len(dims) > 1 or not all(_is_one(r.extent) for r in region):
        return False
    if not _shape_is_trailing_ones(access.source, dims[0]):
        return False
    coef = sym.detect_linear_equation(region[dims[0]].min, [var])
    return len(coef) == 2 and _is_one(coef[0])


def _is_one(e) -> bool:
    return _int_value(e) == 1


def _shape_is_trailing_ones(buffer, d: int) -> bool:
    return all(_is_one(s) for s in buffer.shape[d + 1:])


def _vector_and_register_axes(sch, block) -> tuple[int, int | None] | None:
    """(index of the vector iterator, index of the register iterator or None) of a reduction block, or None
    when its output's innermost dimension cannot be read and written contiguously."""
    stmt = sch.get(block)
    kinds = _block_kinds(sch, block)
    if len(stmt.writes) != 1 or "O" in kinds:
        return None
    spatial = [i for i, k in enumerate(kinds) if k == "S"]
    write = stmt.writes[0]
    # the write's last index must be a spatial iterator (the output's innermost dimension)
    last = [i for i in spatial if _uses(write.region[-1].min, stmt.iter_vars[i].var)]
    if len(last) != 1 or not _contiguous_in(write, stmt.iter_vars[last[0]].var):
        return None
    vec = last[0]
    vvar = stmt.iter_vars[vec].var
    vector_reads = []
    for read in stmt.reads:
        c = _contiguous_in(read, vvar)
        if c is False:
            return None  # a strided read along the vector axis: gathers, not vectors
        if c:
            vector_reads.append(read)
    reg = None
    for i in reversed(spatial):
        if i == vec:
            continue
        v = stmt.iter_vars[i].var
        if any(not any(_uses(r.min, v) for r in read.region) for read in vector_reads):
            reg = i
            break
    return vec, reg


def _is_padding(sch, block) -> bool:
    """A block whose value is a bounds-tested copy (`if_then_else(in bounds, x[...], 0)`: legalized padding)."""
    import tvm
    from tvm import tirx

    body = sch.get(block).body
    return isinstance(body, tirx.BufferStore) and isinstance(body.value, tvm.ir.Call) and \
        str(getattr(body.value.op, "name", "")).endswith("if_then_else")


def _one_loop_per_iter(sch, block) -> bool:
    return len(sch.get_loops(block)) == len(sch.get(block).iter_vars)


def _vectorize_innermost(sch, block, lanes: int, skip: int = 0) -> None:
    """Vectorize a block's innermost loop (split to `lanes` where it is longer and divides); the loops outside
    it below `skip` are left alone."""
    loops = sch.get_loops(block)[skip:]
    if not loops:
        return
    ext = _int_extent(sch, loops[-1])
    if ext is None or ext < 2:
        return
    if ext > lanes and ext % lanes == 0:
        loops = [*loops[:-1], *sch.split(loops[-1], [None, lanes])]
    elif ext > 4 * lanes:
        return  # a long loop that does not divide: leave it to LLVM's loop vectorizer
    sch.vectorize(loops[-1])


def _schedule_elementwise(sch, block, lanes: int) -> bool:
    """Outer loops fused and parallel (large blocks only), innermost vectorized. False if the block's loops
    are not one per iterator, or it touches booleans (LLVM codegen refuses a bool buffer stored from a vector
    of bytes: BERT's attention mask)."""
    stmt = sch.get(block)
    if not _one_loop_per_iter(sch, block) or any(
            str(r.source.dtype) == "bool" for r in [*stmt.reads, *stmt.writes]):
        return False
    loops = sch.get_loops(block)
    exts = [_int_extent(sch, lp) for lp in loops]
    if None in exts:
        return False
    if len(loops) > 1 and math.prod(exts) >= PARALLEL_MIN_ELEMENTS:
        outer = sch.fuse(*loops[:-1]) if len(loops) > 2 else loops[0]
        sch.parallel(outer)
    _vectorize_innermost(sch, block, lanes, skip=1 if len(loops) > 1 else 0)
    return True


class RegisterTiledReduction(dl.ScheduleRule):
    """One reduction block (+ element-wise prologue and epilogue) as a register-tiled, vectorized, parallel loop
    nest (module docstring). Returns None for functions of another shape."""

    def apply(self, func, target, tunable):
        from tvm import s_tir, tirx

        if not isinstance(func, tirx.PrimFunc) or target.kind.name != "llvm":
            return None
        sch = s_tir.Schedule(func)
        red = _single_reduction(sch)
        if red is None:
            return None
        axes = _vector_and_register_axes(sch, red)
        if axes is None or None in [_int_extent(sch, lp) for lp in sch.get_loops(red)]:
            return None
        dtype_bits = sch.get(red).writes[0].source.dtype.bits
        lanes = vector_lanes(target, dtype_bits)
        epilogue = _prepare_epilogue(sch, red)
        if epilogue is None:
            return None
        per_channel = [sch.get(b) for b in sch.get_producers(red)
                       if _is_padding(sch, b) and _read_per_channel(sch, red, b, axes[0])]
        tile_loop, tile = _tile_reduction(sch, red, epilogue, axes, lanes, accumulator_budget(target))
        for block in sch.get_child_blocks(sch.get_sblock("root")):
            if not _is_padding(sch, block):
                continue
            if tile.vectors >= 2 and any(sch.get(block).same_as(b) for b in per_channel):
                # a depthwise tile pads its own window of its own channels: no padded copy of the whole map
                sch.compute_at(block, tile_loop)
                _vectorize_innermost(sch, block, lanes)
            else:
                _schedule_elementwise(sch, block, lanes)
        return sch


class ParallelElementwise(dl.ScheduleRule):
    """Functions of element-wise blocks only: each block's outer loops fused and parallel when it has at least
    PARALLEL_MIN_ELEMENTS elements, its innermost loop vectorized. None for anything with a reduction."""

    def apply(self, func, target, tunable):
        from tvm import s_tir, tirx

        if not isinstance(func, tirx.PrimFunc) or target.kind.name != "llvm":
            return None
        sch = s_tir.Schedule(func)
        try:
            blocks = sch.get_child_blocks(sch.get_sblock("root"))
        except Exception:  # no root block (already scheduled, or not a legalized function)
            return None
        if not blocks or any(set(_block_kinds(sch, b)) - {"S"} for b in blocks):
            return None
        lanes = vector_lanes(target)
        done = [_schedule_elementwise(sch, b, lanes) for b in blocks]
        return sch if any(done) else None


def _read_per_channel(sch, red, producer, vec: int) -> bool:
    """Whether the reduction reads `producer`'s output along its vector (output channel) axis: a depthwise
    convolution or pooling window, whose channel tile needs only its own channels of the padded input."""
    stmt = sch.get(red)
    written = sch.get(producer).writes[0].source
    vvar = stmt.iter_vars[vec].var
    return any(r.source.same_as(written) and _contiguous_in(r, vvar) for r in stmt.reads)


def _single_reduction(sch):
    """The function's one reduction block, if every other block is element-wise and every block has one loop
    per iterator (the form legalization produces); else None."""
    try:
        blocks = sch.get_child_blocks(sch.get_sblock("root"))
    except Exception:
        return None
    kinds = [_block_kinds(sch, b) for b in blocks]
    reds = [b for b, k in zip(blocks, kinds, strict=True) if "R" in k]
    if len(reds) != 1 or any(set(k) - {"S"} for k in kinds if "R" not in k):
        return None
    if not all(_one_loop_per_iter(sch, b) for b in blocks):
        return None
    return reds[0]


def _prepare_epilogue(sch, red):
    """Inline the prologue (but padding) into the reduction and the epilogue into its last block; returns that
    block, a cache_write copy of the accumulators when the reduction writes the output itself, or None when
    more than one output reads the accumulators. The epilogue may be a graph, not a chain: hardswish
    (x * relu6(x + 3) / 6) reads the biased conv output twice, and its intermediate blocks are inlined into
    every reader (MobileNetV3's conv + hardswish functions went to dlight's unvectorized Reduction before)."""
    for block in sch.get_producers(red):
        if not _is_padding(sch, block):
            sch.compute_inline(block)
    while True:
        consumers = sch.get_consumers(red)
        inner = [c for c in consumers if sch.get_consumers(c)]  # read by another block: not an output
        if not inner:
            break
        sch.compute_inline(inner[0])
    if not consumers:
        return sch.cache_write(red, 0, "global")
    return consumers[0] if len(consumers) == 1 else None  # two outputs read the accumulators: not this rule


def _read_sizes(sch, block) -> list[tuple[int, object, int]]:
    """(index, BufferRegion, bytes of the whole buffer) of each read of `block` whose buffer has a constant shape,
    leaving out its accumulator (written, not read from memory)."""
    stmt = sch.get(block)
    sizes = []
    for n, region in enumerate(stmt.reads):
        buf = region.source
        dims = [_int_value(d) for d in buf.shape]
        if not buf.same_as(stmt.writes[0].source) and None not in dims:
            sizes.append((n, region, math.prod(dims) * buf.dtype.bits // 8))
    return sizes


def _bytes_read(sch, block) -> int:
    """The bytes of the buffers `block` reads (whole buffers; its accumulator is written, not counted)."""
    return sum(nbytes for _, _, nbytes in _read_sizes(sch, block))


def _weight_and_input_bytes(sch, block, vec: int) -> tuple[int, int, list[int]]:
    """(bytes of the buffers no output pixel indexes: the weights; bytes of the others: the input; the indices of
    the weight reads) that the reduction `block` reads; `vec` is its vector (output channel) iterator."""
    stmt = sch.get(block)
    kinds = _block_kinds(sch, block)
    pixel = [iv.var for i, (iv, k) in enumerate(zip(stmt.iter_vars, kinds, strict=True)) if k == "S" and i != vec]
    weights = inputs = 0
    weight_reads = []
    for n, region, nbytes in _read_sizes(sch, block):
        if any(_uses(r.min, v) for r in region.region for v in pixel):
            inputs += nbytes
        else:
            weights += nbytes
            weight_reads.append(n)
    return weights, inputs, weight_reads


def _weight_stationary(sch, red, vec: int, exts: list[int], tile: Tile) -> int | None:
    """Whether the output-channel tiles loop outside the output pixels: when the weights are too big to stay in
    cache and streaming them once per pixel tile moves more bytes than reading the input once per channel tile
    (ResNet-18's 3x3 512 -> 512 on 7x7: 9.4 MB of weights streamed once per output row, 6.1 ms; a channel tile
    at a time with its 295 KB slice packed, 2.0 ms, 2 threads on a 2 MB-L2 Xeon). Returns the index of the weight
    read to pack, or None."""
    weights, inputs, reads = _weight_and_input_bytes(sch, red, vec)
    channel_tiles = exts[vec] // (tile.vectors * tile.lanes)
    if weights < WEIGHT_STATIONARY_MIN_BYTES or channel_tiles < 2 or len(reads) != 1:
        return None
    kinds = _block_kinds(sch, red)
    pixel_tiles = math.prod(e for i, (e, k) in enumerate(zip(exts, kinds, strict=True)) if k == "S" and i != vec)
    pixel_tiles //= tile.rows
    if pixel_tiles < STATIONARY_MIN_PIXEL_TILES:  # packing costs a pass over the weights: it needs reuse to pay
        return None
    # the input is read once per channel tile: free while it stays in L2, else weighed against the weights
    cached = inputs <= 2 * WEIGHT_STATIONARY_MIN_BYTES
    return reads[0] if cached or weights * pixel_tiles > inputs * channel_tiles else None


def _prepack_weight(sch, red, read: int, vec: int, tile: Tile) -> bool:
    """Lay the weight read `read` of `red` out channel tile by channel tile ([OC / T, ..., T], T the tile's
    output channels) once at build time, where the function's caller passes it a constant (its "layout_free_buffers"
    attribute, from AttachAttrLayoutFreeBuffers): a block marked as a layout-rewrite preprocess, which
    SplitLayoutRewritePreproc moves into a function of its own and FoldConstant runs on the constant. Each channel
    tile then reads one contiguous slice, and no tile copies it per run (the fallback's cache_read at the tile). On
    the Zen 4 VM, 2 threads, per function: 1x1 320->1280 on 7x7 197 -> 176 us, 3x3 512->512 on 7x7 1263 -> 1082 us,
    1x1 512->2048 528 -> 447 us, 1x1 2048->512 501 -> 447 us. False (nothing changed) where the weight is not a
    constant or its output-channel index is not its last dimension."""
    import tvm

    func = sch.mod["main"]
    free = func.attrs.get("layout_free_buffers") if func.attrs is not None else None
    region = sch.get(red).reads[read]
    buf = region.source
    names = [str(p.name) for p in func.params]
    if not free or buf.name not in names or names.index(buf.name) not in [int(i) for i in free]:
        return False
    vvar = sch.get(red).iter_vars[vec].var
    if not _contiguous_in(region, vvar) or len(buf.shape) < 2:
        return False
    width = tile.vectors * tile.lanes
    if _int_value(buf.shape[-1]) is None or _int_value(buf.shape[-1]) % width:
        return False
    block = sch.cache_read(red, read, "global")
    sch.annotate(block, "meta_schedule.layout_rewrite_preproc", tvm.tirx.const(1, "bool"))
    rank = len(buf.shape)
    sch.transform_layout(red, ("read", read), tvm.tirx.IndexMap.from_func(
        lambda *ix: [ix[-1] // width, *ix[:-1], ix[-1] % width], ndim=rank))
    return True


def _tile_reduction(sch, red, epilogue, axes, lanes: int, budget: int) -> tuple:
    """Split, reorder, parallelize and vectorize the reduction (module docstring); returns (the loop each tile's
    work sits under, the Tile)."""
    loops = sch.get_loops(red)
    kinds = _block_kinds(sch, red)
    exts = [_int_extent(sch, lp) for lp in loops]
    if None in exts:
        raise ValueError("symbolic loop extents")
    vec, reg = axes
    tile = choose_tile(exts[vec], exts[reg] if reg is not None else 1, lanes, budget)
    v_outer, v_unroll, v_lanes = sch.split(loops[vec], [None, tile.vectors, tile.lanes])
    outer = [loops[i] for i, k in enumerate(kinds) if k == "S" and i not in (vec, reg)]
    inner = [v_unroll, v_lanes]
    if reg is not None:
        r_outer, r_unroll = sch.split(loops[reg], [None, tile.rows])
        outer.append(r_outer)
        inner.insert(0, r_unroll)
    reductions = [loops[i] for i, k in enumerate(kinds) if k == "R"]
    big = math.prod(exts) >= PARALLEL_MIN_WORK or _bytes_read(sch, red) >= PARALLEL_MIN_BYTES
    stationary = _weight_stationary(sch, red, vec, exts, tile) if outer else None
    if stationary is not None:
        # channel tiles outermost and parallel; the tile's weight slice packed contiguously once per tile
        sch.reorder(v_outer, *outer, *reductions, *inner)
        pixels = sch.fuse(*outer) if len(outer) > 1 else outer[0]
        if big:
            sch.parallel(v_outer)
        if not _prepack_weight(sch, red, stationary, vec, tile):
            packed = sch.cache_read(red, stationary, "global")
            sch.compute_at(packed, v_outer)
            _vectorize_innermost(sch, packed, lanes, skip=0)
        sch.reverse_compute_at(epilogue, pixels)
        tile_loop = pixels
    else:
        outer.append(v_outer)
        sch.reorder(*outer, *reductions, *inner)
        fused = sch.fuse(*outer) if len(outer) > 1 else outer[0]
        if big and (_int_extent(sch, fused) or 0) > 1:
            sch.parallel(fused)
        sch.reverse_compute_at(epilogue, fused)
        tile_loop = fused
    _vectorize_innermost(sch, epilogue, lanes, skip=1)
    for loop in inner[:-1]:
        sch.unroll(loop)
    sch.vectorize(inner[-1])
    # after the annotations: the update block of a decomposed reduction may not be vectorized itself
    init = sch.decompose_reduction(red, reductions[0])
    _vectorize_innermost(sch, init, lanes, skip=1)
    return tile_loop, tile
