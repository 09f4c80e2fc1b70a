"""int8 in integers on x86 CPUs: a quantized graph (squeeze/quant) -> Relax calling integer TIR kernels.

The QDQ ONNX model TVM's frontend imports runs float convolutions between quantize/dequantize pairs: int8 values,
fp32 arithmetic, slower than fp32 (issue #22). Where the CPU has AVX-512 VNNI (`vpdpbusd`: 64 u8 x s8 products
summed into 16 int32 lanes an instruction, 4x the multiply-adds of an fp32 FMA), this module builds the graph
from the quantized graph itself, one TIR function an op, and computes it the way the micro backend's C kernels
do: int32 accumulation, TFLite's fixed-point requantization, TFLite's int8 add. It is bit-exact with the numpy
integer reference (`run_int8`), so the bundle is checked against it with no tolerance.

Layout: every activation is uint8 NHWC, the int8 value + 128 (vpdpbusd takes its first operand unsigned), zero
point + 128 with it; channels padded to a multiple of 16 (a conv's output-channel blocks; the graph input to 4).
A convolution's int8 weights are packed [OC/16, KH, KW, IC/4, 16, 4] at build time; its bias absorbs the input
zero point: sum (x - zp) w + b = sum x w + (b - zp sum w). Padding is the input's zero point, which adds 0.

    kernels:  conv (groups 1: vpdpbusd, 16 output channels x 4 input channels a step; a register tile of
              pixels x channel blocks; the requantization on each tile as it finishes), depthwise conv (int32
              multiply-adds across channels), dense (vpdpbusd), add, maxpool, global avgpool, flatten (a reshape)

    if int8_integer_supported(graph, tvm_target): mod = int8_relax_module(graph, tvm_target)
"""

from __future__ import annotations

import numpy as np

from edgecc.compiler.squeeze.quant import QGraph, activation_max

VNNI_INTRIN = "edgecc_dot_16x4_u8i8i32_vnni"
LANES = 16  # int32 accumulators of a zmm register: output channels a vpdpbusd step
GROUP = 4  # input channels a vpdpbusd lane sums
ACCUMULATORS = 15  # zmm registers a register tile takes (of 32). 15, not cpu_schedule's 16: a tile's int32 sums
# must stay under TVM's 1024-byte stack limit (kMaxStackAlloca), else each tile heap-allocates them through
# TVMBackendAllocWorkspace (a 1x1 conv over 16 channels: 0.83x the time at 15)
MAX_CHANNEL_BLOCKS = 2  # output-channel blocks of a register tile: the rest of the budget goes to pixels
DEPTHWISE_ROWS = 8  # output pixels a depthwise tile: 8 rows x 3 taps load 10 input vectors (Zen 4: 8 rows with
# unrolled taps 0.75x the time of 4 rows with rolled ones; 4 rows unrolled 1.45x)
OFFSET = 128  # uint8 activation = int8 value + OFFSET (vpdpbusd's first operand is unsigned)


def int8_integer_supported(g: QGraph, tvm_target: dict) -> str:
    """'' when this module builds `g` for `tvm_target`; else why not (a CPU without VNNI, an op it lacks)."""
    import tvm
    from tvm.target.codegen import target_has_features

    if tvm_target.get("kind") != "llvm":
        return f"not an LLVM CPU target ({tvm_target.get('kind')})"
    triple = str(tvm_target.get("mtriple", ""))
    if triple and not triple.startswith("x86_64"):
        return f"integer int8 kernels are x86-64 only (target {triple})"
    try:
        if not target_has_features("avx512vnni", tvm.target.Target(tvm_target)):
            return f"the CPU {tvm_target.get('mcpu', '')!r} has no AVX-512 VNNI"
    except Exception as e:  # an LLVM that does not know the CPU name
        return f"CPU features of {tvm_target.get('mcpu', '')!r} unknown: {e}"
    for op in g.ops:
        if op.kind == "conv" and op.attrs["groups"] != 1:
            cin, cout = g.shapes[op.inputs[0]][1], op.weight.shape[0]
            if not (op.attrs["groups"] == cin == cout):
                return f"a grouped convolution ({op.attrs['groups']} groups) other than depthwise"
    return ""


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _register_intrin() -> None:
    """vpdpbusd as a tensor intrinsic: 16 int32 sums += 4 uint8 x (16 x 4) int8. TVM's own (`dot_16x4_vnni`) calls
    it with <16 x i32> operands, which the LLVM in TVM 0.27 rejects ("Call parameter type does not match"): it takes
    <64 x i8> now. Written here also because importing tvm.s_tir.tensor_intrin parses every target's intrinsics
    (70 s on this 2-core VM)."""
    from tvm import s_tir
    from tvm.script import tirx as T

    global _REGISTERED
    if _REGISTERED:
        return

    @T.prim_func(s_tir=True)
    def desc(a: T.Buffer((4,), "uint8", offset_factor=1), b: T.Buffer((16, 4), "int8", offset_factor=1),
             c: T.Buffer((16,), "int32", offset_factor=1)) -> None:
        with T.sblock("root"):
            T.reads(c[0:16], a[0:4], b[0:16, 0:4])
            T.writes(c[0:16])
            for i in T.serial(0, 16):
                for k in T.serial(0, 4):
                    with T.sblock("update"):
                        vi, vk = T.axis.remap("SR", [i, k])
                        c[vi] = c[vi] + T.cast(a[vk], "int32") * T.cast(b[vi, vk], "int32")

    @T.prim_func(s_tir=True)
    def impl(a: T.Buffer((4,), "uint8", offset_factor=1), b: T.Buffer((16, 4), "int8", offset_factor=1),
             c: T.Buffer((16,), "int32", offset_factor=1)) -> None:
        with T.sblock("root"):
            T.reads(c[0:16], a[0:4], b[0:16, 0:4])
            T.writes(c[0:16])
            c[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.x86.avx512.vpdpbusd.512"), c.vload([0], dtype="int32x16"),
                T.reinterpret(T.broadcast(T.reinterpret(a.vload([0], "uint8x4"), dtype="int32"), 16),
                                          dtype="uint8x64"), b.vload([0, 0], dtype="int8x64"),
                dtype="int32x16")

    s_tir.TensorIntrin.register(VNNI_INTRIN, desc, impl, override=True)
    _REGISTERED = True


_REGISTERED = False


# ---------------------------------------------------------------- TFLite arithmetic in TIR

def _mbqm(x, mult, left, right):
    """MultiplyByQuantizedMultiplier (arithmetic.py) on int32 TIR values, `mult` >= 0 (quantize_multiplier's):
    x << left (wrapping), the rounding doubling high multiply by `mult`, the rounding divide by 2^right.

    With mult >= 0 the high multiply never saturates, and gemmlowp's nudge-then-truncate (ties up for positive
    products, toward zero for negative ones) is floor((ab + 2^30) / 2^31) for either sign: one 64-bit add and
    arithmetic shift, no selects (LLVM makes the product vpmuldq). The divide rounds ties away from zero: the
    remainder against half the divisor, one more for negative values. The epilogue is most of a 1x1 convolution
    over few input channels. `x` appears once: a larger expression is fine."""
    from tvm import tirx

    i64, i32 = "int64", "int32"
    high = tirx.Cast(i32, (tirx.Cast(i64, x << left) * tirx.Cast(i64, mult) + tirx.const(1 << 30, i64))
                     >> tirx.const(31, i64))
    mask = (tirx.const(1, i32) << right) - 1
    threshold = (mask >> 1) - (high >> 31)  # high >> 31: -1 for a negative value
    return (high >> right) + tirx.Cast(i32, (high & mask) > threshold)


def _clamped(y, lo: int, hi: int = 127):
    """An int32 value clamped to [lo, hi]: the int8 value of an op's output."""
    from tvm import tirx

    return tirx.max(tirx.min(y, hi), lo)


def _to_u8(v):
    """An int8 value (as int32) as the uint8 activation (int8 + 128)."""
    from tvm import tirx

    return tirx.Cast("uint8", v + OFFSET)


def _store_u8(y, lo: int, hi: int = 127):
    """An int32 value clamped to [lo, hi] as the uint8 activation (int8 + 128)."""
    return _to_u8(_clamped(y, lo, hi))


def _add_terms(a, b, params):
    """The sum of TFLite's int8 add's two rescaled terms, for int8 values a and b (int32 expressions). params:
    (zp_a, zp_b, zp_out, (lo, hi), (mult, left, right) of a, of b, of the sum), from `_Builder._add_params`."""
    from edgecc.compiler.squeeze.quant import ADD_LEFT_SHIFT

    zp_a, zp_b, _, _, ma, mb, _ = params
    return _mbqm((a - zp_a) << ADD_LEFT_SHIFT, *_consts(ma)) + _mbqm((b - zp_b) << ADD_LEFT_SHIFT, *_consts(mb))


def _add_result(total, params):
    """TFLite's int8 add from the sum of its terms (`_add_terms`), as the uint8 activation."""
    _, _, zp_out, clamp, _, _, mo = params
    return _store_u8(_mbqm(total, *_consts(mo)) + zp_out, *clamp)


def _consts(values):
    from tvm import tirx

    return [tirx.const(int(v), "int32") for v in values]


def _as_int(x):
    """The int8 value of a uint8 activation, as int32."""
    from tvm import tirx

    return tirx.Cast("int32", x) - OFFSET


def _out_hw(h: int, w: int, kernel, stride, pad) -> tuple[int, int]:
    """Output height and width of a window op (conv, pool) on an h x w map, symmetric padding."""
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip((h, w), kernel, stride, pad, strict=True))


def _split_shift(shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(shift, dtype=np.int32)
    return np.maximum(s, 0).astype(np.int32), np.maximum(-s, 0).astype(np.int32)


# ---------------------------------------------------------------- the kernels (TE compute + schedule)

class _Kernels:
    """TIR functions for the graph's ops, scheduled for an x86 CPU with AVX-512 VNNI."""

    def __init__(self):
        from edgecc.compiler.backends.tvm.cpu_schedule import PARALLEL_MIN_BYTES, PARALLEL_MIN_WORK

        self.min_work, self.min_bytes = PARALLEL_MIN_WORK, PARALLEL_MIN_BYTES

    def _finish(self, sch):
        func = sch.mod["main"].with_attr("tir.is_scheduled", True).with_attr("op_pattern", 8)  # opaque: unfused
        return func.with_attr("tir.noalias", True)

    def _padded(self, x, ph: int, pw: int, value: int, name: str):
        from tvm import te, tirx

        if ph == 0 and pw == 0:
            return x
        n, h, w, c = (int(d) for d in x.shape)
        return te.compute((n, h + 2 * ph, w + 2 * pw, c), lambda i, y, z, k: tirx.if_then_else(
            tirx.all(y >= ph, y < h + ph, z >= pw, z < w + pw), x[i, y - ph, z - pw, k],
            tirx.const(value, "uint8")), name=name)

    def conv(self, shape_in, w_packed, stride, pad, zp_in: int, zp_out: int, clamp: tuple[int, int], ow: int,
             oh: int, residual: tuple | None = None):
        """uint8 NHWC [N, H, W, ICp] * packed int8 weights -> uint8 [N, OH, OW, OCp], requantized. With
        `residual` (a fused add's params: `_Builder._add_params`), the add of a uint8 [N, OH, OW, OCp] input
        follows the requantization in the same tile, so the conv's own output is never stored."""
        from tvm import s_tir, te

        _register_intrin()
        n, h, w, icp = shape_in
        ocb, kh_, kw_, icb_, _, _ = w_packed.shape
        (sh, sw), (ph, pw) = stride, pad
        x = te.placeholder(shape_in, "uint8", name="x")
        wt = te.placeholder(w_packed.shape, "int8", name="w")
        bias, mult, left, right = (te.placeholder((ocb * LANES,), "int32", name=s) for s in ("b", "m", "l", "r"))
        res = te.placeholder((n, oh, ow, ocb * LANES), "uint8", name="res") if residual else None
        xp = self._padded(x, ph, pw, zp_in + OFFSET, "pad")
        kh, kw = te.reduce_axis((0, kh_), "kh"), te.reduce_axis((0, kw_), "kw")
        icb, ici = te.reduce_axis((0, icb_), "icb"), te.reduce_axis((0, GROUP), "ici")
        acc = te.compute((n, oh, ow, ocb, LANES), lambda i, y, z, ob, oi: te.sum(
            xp[i, y * sh + kh, z * sw + kw, icb * GROUP + ici].astype("int32")
            * wt[ob, kh, kw, icb, oi, ici].astype("int32"), axis=[kh, kw, icb, ici]), name="acc")

        shape = (n, oh, ow, ocb * LANES)

        def requant(i, y, z, c):
            return _clamped(_mbqm(acc[i, y, z, c // LANES, c % LANES] + bias[c], mult[c], left[c], right[c])
                            + zp_out, *clamp)

        if residual:  # each requantization reads a tensor element (a stage of its own, computed in the tile)
            conv = te.compute(shape, requant, name="conv")
            total = te.compute(shape, lambda *i: _add_terms(conv[i], _as_int(res[i]), residual), name="total")
            out = te.compute(shape, lambda *i: _add_result(total[i], residual), name="out")
        else:
            out = te.compute(shape, lambda *i: _to_u8(requant(*i)), name="out")
        params = [x, wt, bias, mult, left, right, *([res] if res is not None else []), out]
        sch = s_tir.Schedule(te.create_prim_func(params))
        blk = sch.get_sblock("acc")
        li, ly, lz, lob, loi, lkh, lkw, licb, lici = sch.get_loops(blk)
        vectors = max(d for d in range(1, MAX_CHANNEL_BLOCKS + 1) if ocb % d == 0)
        rows = max(d for d in range(1, ACCUMULATORS // vectors + 1) if ow % d == 0)
        zo, zi = sch.split(lz, [None, rows])
        obo, obi = sch.split(lob, [None, vectors])
        sch.reorder(li, ly, zo, obo, lkh, lkw, licb, zi, obi, loi, lici)
        epilogue = ("conv", "total", "out") if residual else ("out",)
        for name in epilogue:
            sch.reverse_compute_at(sch.get_sblock(name), obo)
        outer = sch.fuse(li, ly, zo, obo)
        if n * oh * ow * ocb * LANES * kh_ * kw_ * icb_ * GROUP >= self.min_work:
            sch.parallel(outer)
        init = sch.decompose_reduction(blk, lkh)
        sch.vectorize(sch.get_loops(init)[-1])
        sch.tensorize(loi, VNNI_INTRIN)
        sch.unroll(zi)
        sch.unroll(obi)
        for name in epilogue:
            _, lanes = sch.split(sch.get_loops(sch.get_sblock(name))[-1], [None, LANES])
            sch.vectorize(lanes)
        if xp is not x:
            self._pad_loops(sch, shape_in[3])
        return self._finish(sch)

    def _pad_loops(self, sch, channels: int):
        blk = sch.get_sblock("pad")
        loops = sch.get_loops(blk)
        sch.parallel(sch.fuse(*loops[:2]))
        if channels % LANES == 0:
            _, inner = sch.split(loops[-1], [None, LANES])
            sch.vectorize(inner)

    def depthwise(self, shape_in, w_hwc, stride, pad, zp_in: int, zp_out: int, clamp: tuple[int, int], ow: int,
                  oh: int):
        """uint8 NHWC [N, H, W, Cp] * int8 weights [KH, KW, Cp] -> uint8 [N, OH, OW, Cp], int32 multiply-adds."""
        from tvm import s_tir, te

        n, h, w, cp = shape_in
        kh_, kw_, _ = w_hwc.shape
        (sh, sw), (ph, pw) = stride, pad
        x = te.placeholder(shape_in, "uint8", name="x")
        wt = te.placeholder(w_hwc.shape, "int8", name="w")
        bias, mult, left, right = (te.placeholder((cp,), "int32", name=s) for s in ("b", "m", "l", "r"))
        xp = self._padded(x, ph, pw, zp_in + OFFSET, "pad")
        kh, kw = te.reduce_axis((0, kh_), "kh"), te.reduce_axis((0, kw_), "kw")
        acc = te.compute((n, oh, ow, cp), lambda i, y, z, c: te.sum(
            xp[i, y * sh + kh, z * sw + kw, c].astype("int32") * wt[kh, kw, c].astype("int32"), axis=[kh, kw]),
            name="acc")
        out = te.compute((n, oh, ow, cp), lambda i, y, z, c: _store_u8(
            _mbqm(acc[i, y, z, c] + bias[c], mult[c], left[c], right[c]) + zp_out, *clamp), name="out")
        sch = s_tir.Schedule(te.create_prim_func([x, wt, bias, mult, left, right, out]))
        blk = sch.get_sblock("acc")
        li, ly, lz, lc, lkh, lkw = sch.get_loops(blk)
        rows = max(d for d in range(1, DEPTHWISE_ROWS + 1) if ow % d == 0)
        zo, zi = sch.split(lz, [None, rows])
        co, ci = sch.split(lc, [None, LANES])
        sch.reorder(li, ly, zo, co, lkh, lkw, zi, ci)
        sch.reverse_compute_at(sch.get_sblock("out"), co)
        outer = sch.fuse(li, ly)
        if n * oh * ow * cp * kh_ * kw_ >= self.min_work:
            sch.parallel(outer)
        sch.unroll(zi)
        sch.vectorize(ci)
        sch.unroll(lkw)  # the taps unrolled: neighbouring pixels' taps share one input load
        sch.unroll(lkh)
        sch.decompose_reduction(blk, lkh)
        sch.vectorize(sch.get_loops(sch.get_sblock("out"))[-1])
        if xp is not x:
            self._pad_loops(sch, cp)
        return self._finish(sch)

    def dense(self, n: int, k: int, w_packed, zp_out: int, clamp: tuple[int, int]):
        """uint8 [N, K] x packed int8 weights [OC/16, K/4, 16, 4] -> uint8 [N, OC/16, 16]."""
        from tvm import s_tir, te

        _register_intrin()
        ocb = w_packed.shape[0]
        x = te.placeholder((n, k), "uint8", name="x")
        wt = te.placeholder(w_packed.shape, "int8", name="w")
        bias, mult, left, right = (te.placeholder((ocb * LANES,), "int32", name=s) for s in ("b", "m", "l", "r"))
        kb, ki = te.reduce_axis((0, k // GROUP), "kb"), te.reduce_axis((0, GROUP), "ki")
        acc = te.compute((n, ocb, LANES), lambda i, ob, oi: te.sum(
            x[i, kb * GROUP + ki].astype("int32") * wt[ob, kb, oi, ki].astype("int32"), axis=[kb, ki]), name="acc")

        def requant(i, ob, oi):
            c = ob * LANES + oi
            return _store_u8(_mbqm(acc[i, ob, oi] + bias[c], mult[c], left[c], right[c]) + zp_out, *clamp)

        out = te.compute((n, ocb, LANES), requant, name="out")
        sch = s_tir.Schedule(te.create_prim_func([x, wt, bias, mult, left, right, out]))
        blk = sch.get_sblock("acc")
        li, lob, loi, lkb, lki = sch.get_loops(blk)
        vectors = max(d for d in range(1, 9) if ocb % d == 0)  # a matrix-vector product: independent sums
        obo, obi = sch.split(lob, [None, vectors])
        sch.reorder(li, obo, lkb, obi, loi, lki)
        sch.reverse_compute_at(sch.get_sblock("out"), obo)
        outer = sch.fuse(li, obo)
        if int(np.prod(w_packed.shape)) >= self.min_bytes or n * ocb * LANES * k >= self.min_work:
            sch.parallel(outer)
        init = sch.decompose_reduction(blk, lkb)
        sch.vectorize(sch.get_loops(init)[-1])
        sch.tensorize(loi, VNNI_INTRIN)
        sch.unroll(obi)
        sch.vectorize(sch.get_loops(sch.get_sblock("out"))[-1])
        return self._finish(sch)

    def simple(self, in_specs, fn):
        """A TIR function of `fn(placeholders) -> te.Tensor` (quantize, add, pools, dequantize): the outer loops
        fused and parallel where big enough, the innermost vectorized where it is a multiple of 16."""
        from tvm import s_tir, te

        from edgecc.compiler.backends.tvm.cpu_schedule import PARALLEL_MIN_ELEMENTS

        ins = [te.placeholder(shape, dtype, name=f"x{i}") for i, (shape, dtype) in enumerate(in_specs)]
        out = fn(*ins)
        sch = s_tir.Schedule(te.create_prim_func([*ins, out]))
        for blk in sch.get_child_blocks(sch.get_sblock("root")):
            if sch.get(blk).name_hint == "pad":
                sch.compute_inline(blk)
        for blk in sch.get_child_blocks(sch.get_sblock("root")):
            loops = sch.get_loops(blk)
            spatial = [lp for lp, iv in zip(loops, sch.get(blk).iter_vars, strict=False) if iv.iter_type == 0]
            if int(sch.get(loops[-1]).extent) % LANES == 0 and len(spatial) == len(loops):
                _, inner = sch.split(loops[-1], [None, LANES])
                sch.vectorize(inner)
            if len(spatial) > 1 and int(np.prod([int(d) for d in out.shape])) >= PARALLEL_MIN_ELEMENTS:
                sch.parallel(sch.fuse(*spatial[:-1]))
        return self._finish(sch)


# ---------------------------------------------------------------- the graph

class _Tensor:
    """An activation as the module holds it: its Relax value, uint8 shape, real channels (or features), and for a
    2-D tensor flattened from a map the map's (H, W, C, Cp), which orders a dense layer's weight columns."""

    def __init__(self, value, shape, real: int, flat_from=None):
        self.value, self.shape, self.real, self.flat_from = value, tuple(shape), real, flat_from


def int8_relax_module(g: QGraph, tvm_target: dict):
    """The quantized graph `g` as a Relax module: float32 input and output (as the QDQ model's), integer inside."""
    from tvm import relax

    bb = relax.BlockBuilder()
    in_shape = tuple(int(d) for d in g.shapes[g.input])
    x = relax.Var("input", relax.TensorType(in_shape, "float32"))
    built = _Builder(g, bb, _Kernels())
    with bb.function("main", [x]):
        with bb.dataflow():
            env = {g.input: built.quantize_input(x, in_shape)}
            fused_adds = {j: i for i, j in built.fused.items()}
            for i, op in enumerate(g.ops):
                if i in fused_adds:
                    continue  # done by its conv
                env[g.ops[built.fused[i]].output if i in built.fused else op.output] = built.op(i, op, env)
            out = bb.emit_output(built.dequantize_output(env[g.output]))
        bb.emit_func_output(out)
    return bb.get()


class _Builder:
    """Emits one call_tir an op into the BlockBuilder's dataflow block."""

    def __init__(self, g: QGraph, bb, kernels: _Kernels):
        from edgecc.compiler.micro.int8_fusion import residual_fusions

        self.g, self.bb, self.k = g, bb, kernels
        self.count = 0
        # {conv index: add index}: residual adds done in the conv's epilogue (the micro backend's rule)
        self.fused = residual_fusions(g)

    def call(self, func, name: str, args, shape, dtype="uint8"):
        from tvm import relax

        name = f"q8_{name}{self.count}"
        self.count += 1
        gv = self.bb.add_func(func.with_attr("global_symbol", name), name)
        return self.bb.emit(relax.call_tir(gv, args, relax.TensorType(shape, dtype)))

    @staticmethod
    def const(a):
        from tvm import relax

        return relax.const(np.ascontiguousarray(a))

    def quantize_input(self, x, shape):
        from tvm import te, tirx

        s, zp = self.g.qparams[self.g.input]
        n, c = shape[:2]
        cp = _round_up(c, GROUP)
        out_shape = (n, *shape[2:], cp)

        def fn(xin):
            def q(*idx):
                ch = idx[-1]
                src = xin[(idx[0], tirx.min(ch, c - 1), *idx[1:-1])]
                v = tirx.max(tirx.min(src / tirx.const(s, "float32"), tirx.const(512.0, "float32")),
                             tirx.const(-512.0, "float32"))
                r = tirx.Cast("int32", tirx.Select(v >= tirx.const(0.0, "float32"),
                                                   tirx.trunc(v + tirx.const(0.5, "float32")),
                                                   tirx.trunc(v - tirx.const(0.5, "float32"))))
                return tirx.if_then_else(ch < c, _store_u8(r + zp, -128), tirx.const(zp + OFFSET, "uint8"))
            return te.compute(out_shape, q, name="quantize")

        func = self.k.simple([(shape, "float32")], fn)
        return _Tensor(self.call(func, "quantize", [x], out_shape), out_shape, c)

    def dequantize_output(self, t: _Tensor):
        from tvm import te, tirx

        s, zp = self.g.qparams[self.g.output]
        real_shape = (t.shape[0], t.real, *t.shape[1:-1])

        def fn(q):
            def dq(*idx):
                v = q[(idx[0], *idx[2:], idx[1])]
                return tirx.Cast("float32", _as_int(v) - zp) * tirx.const(s, "float32")
            return te.compute(real_shape, dq, name="dequantize")

        return self.call(self.k.simple([(t.shape, "uint8")], fn), "dequantize", [t.value], real_shape, "float32")

    def op(self, i: int, op, env) -> _Tensor:
        a = env[op.inputs[0]]
        if op.kind == "conv":
            return self.depthwise(op, a) if op.attrs["groups"] != 1 else self.conv(i, op, a, env)
        if op.kind == "dense":
            return self.dense(op, a)
        if op.kind == "add":
            return self.add(op, a, env[op.inputs[1]])
        if op.kind == "maxpool":
            return self.maxpool(op, a)
        if op.kind == "avgpool":
            return self.avgpool(op, a)
        return self.flatten(a)

    def _requant_consts(self, op, cp: int, bias: np.ndarray):
        left, right = _split_shift(op.shift)
        pad = cp - len(op.multiplier)
        arrs = [bias.astype(np.int64), op.multiplier.astype(np.int64), left, right]
        return [self.const(np.pad(v, (0, pad)).astype(np.int32)) for v in arrs]

    def _clamp(self, op) -> tuple[int, int]:
        """(low, high) of op's int8 output: its 0.0 after a ReLU, its 6.0 after a ReLU6, else the int8 range."""
        s_out, zp_out = self.g.qparams[op.output]
        return zp_out if op.relu else -128, activation_max(op.relu6, s_out, zp_out)

    def _qp(self, op):
        """(input zero point, output zero point, `_clamp`)."""
        return self.g.qparams[op.inputs[0]][1], self.g.qparams[op.output][1], self._clamp(op)

    @staticmethod
    def _folded_bias(op, zp_in: int) -> np.ndarray:
        """op's int32 bias with the uint8 input's zero point folded in: b - (zp + 128) sum w, per output channel."""
        w = op.w_q.reshape(len(op.w_q), -1).astype(np.int64)
        return op.b_q.astype(np.int64) - (zp_in + OFFSET) * w.sum(1)

    def conv(self, i: int, op, a: _Tensor, env) -> _Tensor:
        n, h, w, icp = a.shape
        zp_in, zp_out, clamp = self._qp(op)
        oc, ic, kh, kw = op.w_q.shape
        ocp = _round_up(oc, LANES)
        wq = np.zeros((ocp, icp, kh, kw), np.int8)
        wq[:oc, :ic] = op.w_q
        packed = wq.transpose(0, 2, 3, 1).reshape(ocp // LANES, LANES, kh, kw, icp // GROUP, GROUP) \
            .transpose(0, 2, 3, 4, 1, 5)
        bias = self._folded_bias(op, zp_in)
        (sh, sw), (ph, pw) = op.attrs["stride"], op.attrs["padding"]
        oh, ow = _out_hw(h, w, (kh, kw), (sh, sw), (ph, pw))
        add = self.fused.get(i)  # a residual add this conv's epilogue does: its output is the add's
        res = env[next(t for t in self.g.ops[add].inputs if t != op.output)] if add is not None else None
        params = self._add_params(self.g.ops[add], op.output) if add is not None else None
        func = self.k.conv(a.shape, packed, (sh, sw), (ph, pw), zp_in, zp_out, clamp, ow, oh, params)
        shape = (n, oh, ow, ocp)
        args = [a.value, self.const(packed), *self._requant_consts(op, ocp, bias), *([res.value] if res else [])]
        return _Tensor(self.call(func, "conv_add" if res else "conv", args, shape), shape, oc)

    def _reshaped(self, value, shape, real: int, flat_from=None) -> _Tensor:
        from tvm import relax

        return _Tensor(self.bb.emit(relax.op.reshape(value, shape)), shape, real, flat_from)

    def depthwise(self, op, a: _Tensor) -> _Tensor:
        n, h, w, cp = a.shape
        zp_in, zp_out, clamp = self._qp(op)
        c, _, kh, kw = op.w_q.shape
        wq = np.zeros((kh, kw, cp), np.int8)
        wq[:, :, :c] = op.w_q[:, 0].transpose(1, 2, 0)
        bias = self._folded_bias(op, zp_in)
        (sh, sw), (ph, pw) = op.attrs["stride"], op.attrs["padding"]
        oh, ow = _out_hw(h, w, (kh, kw), (sh, sw), (ph, pw))
        func = self.k.depthwise(a.shape, wq, (sh, sw), (ph, pw), zp_in, zp_out, clamp, ow, oh)
        shape = (n, oh, ow, cp)
        return _Tensor(self.call(func, "depthwise", [a.value, self.const(wq), *self._requant_consts(op, cp, bias)],
                                 shape), shape, c)

    def dense(self, op, a: _Tensor) -> _Tensor:
        n, kp = a.shape
        zp_in, zp_out, clamp = self._qp(op)
        oc, k = op.w_q.shape
        ocp = _round_up(oc, LANES)
        if a.flat_from is not None:  # columns in the map's NHWC order, padded channels included
            h, w, c, cp = a.flat_from
            cols = np.zeros((oc, h, w, cp), np.int8)
            cols[..., :c] = op.w_q.reshape(oc, c, h, w).transpose(0, 2, 3, 1)
            cols = cols.reshape(oc, kp)
        else:
            cols = np.zeros((oc, kp), np.int8)
            cols[:, :k] = op.w_q
        wq = np.zeros((ocp, kp), np.int8)
        wq[:oc] = cols
        packed = wq.reshape(ocp // LANES, LANES, kp // GROUP, GROUP).transpose(0, 2, 1, 3)
        bias = self._folded_bias(op, zp_in)
        func = self.k.dense(n, kp, packed, zp_out, clamp)
        y = self.call(func, "dense", [a.value, self.const(packed), *self._requant_consts(op, ocp, bias)],
                      (n, ocp // LANES, LANES))
        return self._reshaped(y, (n, ocp), oc)

    def _add_params(self, op, first: str) -> tuple:
        """`_add_terms` / `_add_result`'s params for add `op` with its operand `first` as a (the sum of the two
        rescaled terms does not depend on the order)."""
        k = op.inputs.index(first)
        zps = [self.g.qparams[t][1] for t in op.inputs]
        left, right = _split_shift(op.shift)
        terms = [(int(op.multiplier[j]), int(left[j]), int(right[j])) for j in (k, 1 - k, 2)]
        return (zps[k], zps[1 - k], self.g.qparams[op.output][1], self._clamp(op), *terms)

    def add(self, op, a: _Tensor, b: _Tensor) -> _Tensor:
        from tvm import te

        params = self._add_params(op, op.inputs[0])

        def fn(xa, xb):
            total = te.compute(a.shape, lambda *i: _add_terms(_as_int(xa[i]), _as_int(xb[i]), params), name="total")
            return te.compute(a.shape, lambda *i: _add_result(total[i], params), name="add")

        func = self.k.simple([(a.shape, "uint8"), (b.shape, "uint8")], fn)
        return _Tensor(self.call(func, "add", [a.value, b.value], a.shape), a.shape, a.real)

    def maxpool(self, op, a: _Tensor) -> _Tensor:
        from tvm import te

        n, h, w, cp = a.shape
        (kh, kw), (sh, sw), (ph, pw) = op.attrs["kernel"], op.attrs["stride"], op.attrs["padding"]
        oh, ow = _out_hw(h, w, (kh, kw), (sh, sw), (ph, pw))

        def fn(x):
            xp = self.k._padded(x, ph, pw, 0, "pad")  # uint8 0 is below every value: max ignores it
            rh, rw = te.reduce_axis((0, kh), "rh"), te.reduce_axis((0, kw), "rw")
            return te.compute((n, oh, ow, cp), lambda i, y, z, c: te.max(
                xp[i, y * sh + rh, z * sw + rw, c], axis=[rh, rw]), name="maxpool")

        shape = (n, oh, ow, cp)
        return _Tensor(self.call(self.k.simple([(a.shape, "uint8")], fn), "maxpool", [a.value], shape), shape,
                       a.real)

    def avgpool(self, op, a: _Tensor) -> _Tensor:
        from tvm import te, tirx

        n, h, w, cp = a.shape
        count = h * w

        def fn(x):
            rh, rw = te.reduce_axis((0, h), "rh"), te.reduce_axis((0, w), "rw")
            acc = te.compute((n, 1, 1, cp), lambda i, y, z, c: te.sum(_as_int(x[i, rh, rw, c]), axis=[rh, rw]),
                             name="sum")

            def mean(i, y, z, c):
                v = acc[i, y, z, c]
                half = tirx.const(count // 2, "int32")
                r = tirx.Select(v >= 0, tirx.floordiv(v + half, count),
                                tirx.const(0, "int32") - tirx.floordiv(tirx.const(0, "int32") - v + half, count))
                return _store_u8(r, -128)
            return te.compute((n, 1, 1, cp), mean, name="avgpool")

        shape = (n, 1, 1, cp)
        return _Tensor(self.call(self.k.simple([(a.shape, "uint8")], fn), "avgpool", [a.value], shape), shape,
                       a.real)

    def flatten(self, a: _Tensor) -> _Tensor:
        if len(a.shape) == 2:
            return a
        n, h, w, cp = a.shape
        return self._reshaped(a.value, (n, h * w * cp), a.real * h * w, flat_from=(h, w, a.real, cp))
