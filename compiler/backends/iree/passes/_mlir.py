"""Channels-last rewrite of the linalg ops IREE's own layout pass leaves behind.

torch-mlir emits PyTorch's NCHW layout. On CPUs, IREE's `iree-preprocessing-convert-conv-to-channels-last`
moves regular convolutions to NHWC, but it turns depthwise convolutions and pooling into generic ops that
vectorize badly: measured on the 2-core Zen 5 host, single thread, MobileNetV2's 3×3 depthwise layers took
2.1 ms each at 56×56×144 (14.9 ms the whole net) and ResNet-18's max-pool 1.35 ms. Rewritten here to their
named NHWC forms (`linalg.depthwise_conv_2d_nhwc_hwc`, `linalg.pooling_nhwc_max/sum`) between transposes, which
IREE's transpose propagation folds into the neighbouring NHWC convolutions, MobileNetV2 runs in 5.8 ms.

Strided 1x1 convolutions become a strided slice and a stride-1 convolution (see _subsample_1x1), and with
convolution data tiling on, few-channel strided stems go to space-to-depth form (space_to_depth_text).

The rewrite is textual on the printed linalg module, one op a line as torch-mlir prints them; an op in another
form is left as it was (correct, just slower). See benchmarks/host_vs_baselines.py for the measurements.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

_OP = re.compile(
    r"^(?P<ind>\s*)(?P<res>%[\w.]+) = linalg\.(?P<op>depthwise_conv_2d_nchw_chw|pooling_nchw_max|pooling_nchw_sum) "
    r"(?P<attrs>\{[^}]*\}) ins\((?P<x>%[\w.]+), (?P<w>%[\w.]+) : tensor<(?P<xs>[0-9x]+)x(?P<et>\w+)>, "
    r"tensor<(?P<ws>[0-9x]+)x(?P=et)>\) outs\((?P<o>%[\w.]+) : tensor<(?P<os>[0-9x]+)x(?P=et)>\) "
    r"-> tensor<(?P=os)x(?P=et)>\s*$")
_NHWC = {"depthwise_conv_2d_nchw_chw": "depthwise_conv_2d_nhwc_hwc", "pooling_nchw_max": "pooling_nhwc_max",
         "pooling_nchw_sum": "pooling_nhwc_sum"}


def _perm(dims: list[str], perm: list[int]) -> str:
    return "x".join(dims[p] for p in perm)


def _rewrite_op(m: re.Match, n: int) -> list[str]:
    ind, et, op = m["ind"], m["et"], m["op"]
    xs, ws, os_ = m["xs"].split("x"), m["ws"].split("x"), m["os"].split("x")
    k = f"%edgecc_nhwc{n}"

    def ty(shape: str) -> str:
        return f"tensor<{shape}x{et}>"

    def transpose(name: str, src: str, src_shape: str, dst_shape: str, perm: list[int]) -> list[str]:
        return [f"{ind}{name}_init = tensor.empty() : {ty(dst_shape)}",
                f"{ind}{name} = linalg.transpose ins({src} : {ty(src_shape)}) outs({name}_init : {ty(dst_shape)}) "
                f"permutation = {perm}"]

    to_nhwc = [0, 2, 3, 1]
    x_t, o_t = _perm(xs, to_nhwc), _perm(os_, to_nhwc)
    lines = transpose(f"{k}_x", m["x"], m["xs"], x_t, to_nhwc)
    lines += transpose(f"{k}_o", m["o"], m["os"], o_t, to_nhwc)
    w_name, w_t = m["w"], m["ws"]
    if op.startswith("depthwise"):  # filter CHW → HWC
        w_t = _perm(ws, [1, 2, 0])
        lines += transpose(f"{k}_w", m["w"], m["ws"], w_t, [1, 2, 0])
        w_name = f"{k}_w"
    lines.append(f"{ind}{k}_r = linalg.{_NHWC[op]} {m['attrs']} ins({k}_x, {w_name} : {ty(x_t)}, {ty(w_t)}) "
                 f"outs({k}_o : {ty(o_t)}) -> {ty(o_t)}")
    lines += [f"{ind}{k}_init = tensor.empty() : {ty(m['os'])}",
              f"{ind}{m['res']} = linalg.transpose ins({k}_r : {ty(o_t)}) outs({k}_init : {ty(m['os'])}) "
              f"permutation = [0, 3, 1, 2]"]
    return lines


_CONV = re.compile(
    r"^(?P<ind>\s*)(?P<res>%[\w.]+) = linalg\.conv_2d_nchw_fchw \{dilations = dense<1> : vector<2xi64>, "
    r"strides = dense<(?P<s>\d+)> : vector<2xi64>\} ins\((?P<x>%[\w.]+), (?P<w>%[\w.]+) : "
    r"tensor<(?P<xs>[0-9x]+)x(?P<et>\w+)>, tensor<(?P<ws>[0-9x]+)x(?P=et)>\) outs\((?P<o>%[\w.]+) : "
    r"tensor<(?P<os>[0-9x]+)x(?P=et)>\) -> tensor<(?P=os)x(?P=et)>\s*$")


def _dims(m: re.Match, key: str) -> list[int]:
    return [int(v) for v in m[key].split("x")]


# A strided 1x1 convolution reads one pixel in s*s: IREE fuses it with the residual add into a "reduction"
# dispatch that does not vectorize (ResNet-50's three downsample convolutions took 38 ms each, one thread, of a
# 148 ms run). As a strided slice of the input followed by a stride-1 1x1 convolution, it is a plain matmul-like
# dispatch: ResNet-50 148 -> 60 ms (ResNet-18: no change).
def _subsample_1x1(m: re.Match, n: int) -> list[str] | None:
    s = int(m["s"])
    (bn, c, _h, _w), (_, _f, oh, ow) = _dims(m, "xs"), _dims(m, "os")
    if s < 2 or _dims(m, "ws")[2:] != [1, 1]:
        return None
    ind, et, k = m["ind"], m["et"], f"%edgecc_sub{n}"
    sub = f"tensor<{bn}x{c}x{oh}x{ow}x{et}>"
    out = f"tensor<{m['os']}x{et}>"
    return [f"{ind}{k} = tensor.extract_slice {m['x']}[0, 0, 0, 0] [{bn}, {c}, {oh}, {ow}] [1, 1, {s}, {s}] : "
            f"tensor<{m['xs']}x{et}> to {sub}",
            f"{ind}{m['res']} = linalg.conv_2d_nchw_fchw {{dilations = dense<1> : vector<2xi64>, "
            f"strides = dense<1> : vector<2xi64>}} ins({k}, {m['w']} : {sub}, tensor<{m['ws']}x{et}>) "
            f"outs({m['o']} : {out}) -> {out}"]


def _apply(text: str, rules) -> tuple[str, int]:
    """Rewrite each line the first matching rule (needle, pattern, rewrite) turns into lines; (text, count)."""
    out, n = [], 0
    for line in text.splitlines():
        for needle, pattern, rewrite in rules:
            m = pattern.match(line) if needle in line else None
            lines = rewrite(m, n) if m else None
            if lines:
                out.extend(lines)
                n += 1
                break
        else:
            out.append(line)
    return "\n".join(out) + "\n", n


def _apply_file(path: Path, rewrite_text_fn) -> int:
    text, n = rewrite_text_fn(path.read_text())
    if n:
        path.write_text(text)
    return n


def rewrite_text(text: str) -> tuple[str, int]:
    """(rewritten module text, number of ops rewritten): NCHW depthwise convolutions and pooling to NHWC, strided
    1x1 convolutions to a strided slice and a stride-1 convolution."""
    return _apply(text, [("_nchw_", _OP, _rewrite_op), ("linalg.conv_2d_nchw_fchw", _CONV, _subsample_1x1)])


def rewrite_file(path: Path) -> int:
    return _apply_file(path, rewrite_text)


# --- Space-to-depth for strided convolutions with few input channels (the RGB stem) ------------------------------
#
# With convolution data tiling on (host.toml), IREE packs the input-channel dimension into tiles of the vector width
# (16 fp32 on AVX-512). A stem convolution with 3 input channels then does 16/3 = 5.3x the work: ResNet-18's
# 7x7/2 stem took 5.3 ms of a 24.5 ms single-thread run on the 2-core Zen 5 host. Rewritten as a stride-1
# convolution over a space-to-depth input (s*s*C channels, kernel padded to a multiple of s and folded), the same
# arithmetic has 12 of 16 lanes busy (fp32 only: what was measured).
S2D_MAX_CHANNELS = 16  # rewrite only when s*s*C stays within one 16-lane vector


def _ceil_to(v: int, m: int) -> int:
    return -(-v // m) * m


def _s2d_conv(m: re.Match, n: int) -> list[str] | None:
    ind, et, s = m["ind"], m["et"], int(m["s"])
    (bn, c, h, w), (f, c2, kh, kw), (_, f2, oh, ow) = _dims(m, "xs"), _dims(m, "ws"), _dims(m, "os")
    if et != "f32" or s < 2 or c2 != c or f2 != f or s * s * c > S2D_MAX_CHANNELS:
        return None
    k = f"%edgecc_s2d{n}"
    khp, kwp = _ceil_to(kh, s), _ceil_to(kw, s)  # kernel padded with zero taps to a multiple of s
    hp, wp = max(_ceil_to(h, s), _ceil_to(s * (oh - 1) + khp, s)), max(_ceil_to(w, s), _ceil_to(s * (ow - 1) + kwp, s))
    cc, kh2, kw2 = s * s * c, khp // s, kwp // s
    ih, iw = oh - 1 + kh2, ow - 1 + kw2  # input rows/cols of the stride-1 conv

    def ty(*dims: int) -> str:
        return "tensor<" + "x".join(map(str, dims)) + f"x{et}>"

    def pad(name: str, src: str, shape: tuple, high: tuple) -> list[str]:
        out = tuple(a + b for a, b in zip(shape, high, strict=True))
        idx = ", ".join(f"{name}_i{i}: index" for i in range(len(shape)))
        low, hi = ", ".join("0" * len(shape)), ", ".join(map(str, high))
        return [f"{ind}{name} = tensor.pad {src} low[{low}] high[{hi}] {{",
                f"{ind}^bb0({idx}):", f"{ind}  tensor.yield {k}_zero : {et}",
                f"{ind}}} : {ty(*shape)} to {ty(*out)}"]

    lines = [f"{ind}{k}_zero = arith.constant 0.000000e+00 : {et}"]
    x = m["x"]
    if (hp, wp) != (h, w):
        lines += pad(f"{k}_xp", x, (bn, c, h, w), (0, 0, hp - h, wp - w))
        x = f"{k}_xp"
    # NCHW in, NCHW out, like the op it replaces: IREE's channels-last pass then treats it as any other conv.
    # Channel order of the space-to-depth input is (row phase, column phase, c), the same for the filter.
    lines += [f"{ind}{k}_xe = tensor.expand_shape {x} [[0], [1], [2, 3], [4, 5]] output_shape "
              f"[{bn}, {c}, {hp // s}, {s}, {wp // s}, {s}] : {ty(bn, c, hp, wp)} "
              f"into {ty(bn, c, hp // s, s, wp // s, s)}",
              f"{ind}{k}_xt_init = tensor.empty() : {ty(bn, s, s, c, hp // s, wp // s)}",
              f"{ind}{k}_xt = linalg.transpose ins({k}_xe : {ty(bn, c, hp // s, s, wp // s, s)}) "
              f"outs({k}_xt_init : {ty(bn, s, s, c, hp // s, wp // s)}) permutation = [0, 3, 5, 1, 2, 4]",
              f"{ind}{k}_xc = tensor.collapse_shape {k}_xt [[0], [1, 2, 3], [4], [5]] : "
              f"{ty(bn, s, s, c, hp // s, wp // s)} into {ty(bn, cc, hp // s, wp // s)}"]
    x = f"{k}_xc"
    if (hp // s, wp // s) != (ih, iw):
        lines.append(f"{ind}{k}_xs = tensor.extract_slice {x}[0, 0, 0, 0] [{bn}, {cc}, {ih}, {iw}] [1, 1, 1, 1] : "
                     f"{ty(bn, cc, hp // s, wp // s)} to {ty(bn, cc, ih, iw)}")
        x = f"{k}_xs"
    wt = m["w"]
    if (khp, kwp) != (kh, kw):
        lines += pad(f"{k}_wp", wt, (f, c, kh, kw), (0, 0, khp - kh, kwp - kw))
        wt = f"{k}_wp"
    lines += [f"{ind}{k}_we = tensor.expand_shape {wt} [[0], [1], [2, 3], [4, 5]] output_shape "
              f"[{f}, {c}, {kh2}, {s}, {kw2}, {s}] : {ty(f, c, khp, kwp)} into {ty(f, c, kh2, s, kw2, s)}",
              f"{ind}{k}_wt_init = tensor.empty() : {ty(f, s, s, c, kh2, kw2)}",
              f"{ind}{k}_wt = linalg.transpose ins({k}_we : {ty(f, c, kh2, s, kw2, s)}) "
              f"outs({k}_wt_init : {ty(f, s, s, c, kh2, kw2)}) permutation = [0, 3, 5, 1, 2, 4]",
              f"{ind}{k}_wc = tensor.collapse_shape {k}_wt [[0], [1, 2, 3], [4], [5]] : "
              f"{ty(f, s, s, c, kh2, kw2)} into {ty(f, cc, kh2, kw2)}",
              f"{ind}{m['res']} = linalg.conv_2d_nchw_fchw {{dilations = dense<1> : vector<2xi64>, "
              f"strides = dense<1> : vector<2xi64>}} ins({x}, {k}_wc : {ty(bn, cc, ih, iw)}, {ty(f, cc, kh2, kw2)}) "
              f"outs({m['o']} : {ty(bn, f, oh, ow)}) -> {ty(bn, f, oh, ow)}"]
    return lines


def space_to_depth_text(text: str) -> tuple[str, int]:
    """(module text with few-channel strided convolutions in space-to-depth form, number rewritten)."""
    return _apply(text, [("linalg.conv_2d_nchw_fchw", _CONV, _s2d_conv)])


# --- Max pooling as the max of its window's strided slices, with convolution data tiling on ----------------------
#
# IREE's convolution data tiling takes pooling ops too: a max pool's input gets an encoding with no tiles, which is
# a copy of the whole input done by one workgroup (ResNet-18's 114x114x64 pool input: 0.22 ms single thread on the
# 2-core Zen 5 host, and no faster on two). Written as an elementwise max over the kh*kw strided slices of its
# input (into the same init, so the result is the pool's), it is one parallel dispatch and the copy is gone.
_MAXPOOL = re.compile(
    r"^(?P<ind>\s*)(?P<res>%[\w.]+) = linalg\.pooling_nhwc_max \{dilations = dense<1> : vector<2xi64>, "
    r"strides = dense<(?P<s>\d+)> : vector<2xi64>\} ins\((?P<x>%[\w.]+), %[\w.]+ : "
    r"tensor<(?P<xs>[0-9x]+)x(?P<et>\w+)>, tensor<(?P<ws>\d+x\d+)x(?P=et)>\) outs\((?P<o>%[\w.]+) : "
    r"tensor<(?P<os>[0-9x]+)x(?P=et)>\) -> tensor<(?P=os)x(?P=et)>\s*$")


_PARALLEL = '"parallel"'


def _max_pool_slices(m: re.Match, n: int) -> list[str] | None:
    ind, et, s = m["ind"], m["et"], int(m["s"])
    if et not in ("f32", "f16", "bf16"):  # arith.maximumf: floats only
        return None
    kh, kw = _dims(m, "ws")
    bn, oh, ow, c = _dims(m, "os")
    k, out = f"%edgecc_mps{n}", f"tensor<{m['os']}x{et}>"
    taps = [(i, j) for i in range(kh) for j in range(kw)]
    lines = [f"{ind}{k}_{i}_{j} = tensor.extract_slice {m['x']}[0, {i}, {j}, 0] [{bn}, {oh}, {ow}, {c}] "
             f"[1, {s}, {s}, 1] : tensor<{m['xs']}x{et}> to {out}" for i, j in taps]
    ident = "affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>"
    args = [f"{k}_a{t}: {et}" for t in range(len(taps) + 1)]
    lines += [f"{ind}{m['res']} = linalg.generic {{indexing_maps = [{', '.join([ident] * (len(taps) + 1))}], "
              f"iterator_types = [{', '.join([_PARALLEL] * 4)}]}} "
              f"ins({', '.join(f'{k}_{i}_{j}' for i, j in taps)} : {', '.join([out] * len(taps))}) "
              f"outs({m['o']} : {out}) {{",
              f"{ind}^bb0({', '.join(args)}):"]
    acc = f"{k}_a{len(taps)}"  # the init (the pool's -inf fill), then every tap
    for t in range(len(taps)):
        lines.append(f"{ind}  {k}_m{t} = arith.maximumf {acc}, {k}_a{t} : {et}")
        acc = f"{k}_m{t}"
    lines += [f"{ind}  linalg.yield {acc} : {et}", f"{ind}}} -> {out}"]
    return lines


def max_pool_slices_text(text: str) -> tuple[str, int]:
    """(module text with NHWC max pools as an elementwise max of strided slices, number rewritten); run after
    rewrite_text, which makes the NHWC pools."""
    return _apply(text, [("linalg.pooling_nhwc_max", _MAXPOOL, _max_pool_slices)])


def max_pool_slices_file(path: Path) -> int:
    return _apply_file(path, max_pool_slices_text)


_DW = re.compile(r"linalg\.depthwise_conv_2d_n(?P<layout>chw|hwc)_\w+ .*ins\(%[\w.]+, %[\w.]+ : tensor<[0-9x]+x\w+>, "
                 r"tensor<(?P<ws>[0-9x]+)x\w+>\) outs\(%[\w.]+ : tensor<(?P<os>[0-9x]+)x\w+>\)")


_MATMUL_SHAPES = re.compile(r"linalg\.matmul (?:\{[^}]*\} )?ins\(%[\w.]+, %[\w.]+ : tensor<(\d+)x(\d+)xf32>, "
                            r"tensor<\d+x(\d+)xf32>\)")


def spatial_conv_share(text: str) -> float:
    """Share of the module's convolution MACs done by dense convolutions with a kernel larger than 1x1.

    Those are the ones IREE's convolution data tiling speeds up; depthwise and 1x1 convolutions (also as the
    matmuls the channels-last graph makes of them) it does not: they are not data-tiled, or they pay for packing
    their neighbours' outputs. Used to decide `conv_data_tiling=auto`.
    """
    dense = other = 0
    for line in text.splitlines():
        if "linalg.conv_2d_nchw_fchw" in line and (m := _CONV.match(line)) and m["et"] == "f32":
            f, c, kh, kw = _dims(m, "ws")
            bn, _, oh, ow = _dims(m, "os")
            macs = bn * f * oh * ow * c * kh * kw
            if kh * kw > 1:
                dense += macs
            else:
                other += macs
        elif "linalg.depthwise_conv_2d" in line and (d := _DW.search(line)):
            taps = [int(v) for v in d["ws"].split("x")]
            taps = taps[1:] if d["layout"] == "chw" else taps[:-1]  # filter CHW or HWC: drop the channels
            other += math.prod([int(v) for v in d["os"].split("x")]) * math.prod(taps)
        elif "linalg.matmul" in line and (mm := _MATMUL_SHAPES.search(line)):
            other += math.prod(int(v) for v in mm.groups())  # 1x1 convolutions after the channels-last graph
    total = dense + other
    return dense / total if total else 0.0


def space_to_depth_file(path: Path) -> int:
    return _apply_file(path, space_to_depth_text)


# --- Data tiling for long-reduction matmuls only ----------------------------------------------------------------------
#
# After the channels-last graph rewrite (compiler/channels_last.py), 1x1 convolutions are linalg.matmul. IREE's
# default CPU tiling does the long-K, few-row ones badly (MobileNetV2's 49x160x960 projection: 52 GFLOP/s, one thread,
# Zen 5) and data tiling (packed operands + ukernels) does them well (0.28 -> 0.10 ms), but data-tiling every matmul
# packs the big early layers' activations too, which costs more than it saves (112x112x16->96: 0.20 -> 0.55 ms).
# IREE honours a per-op `iree.opt.data_tiling` hint, so only matmuls with K >= MATMUL_DATA_TILING_MIN_K get it,
# and with matmul_vector_n on, not the few-row ones that a wide vector tile does better (FEW_ROWS below).
MATMUL_DATA_TILING_MIN_K = 512
# a 2-D linalg.matmul without attributes (so without a data-tiling hint or a compilation_info yet)
_MATMUL = re.compile(r"^(?P<head>.*= linalg\.matmul) ins\(%[\w.]+, %[\w.]+ : "
                     r"tensor<(?P<m>\d+)x(?P<k>\d+)x(?P<lhs>\w+)>, tensor<\d+x(?P<n>\d+)x(?P<rhs>\w+)>\)")


def hint_matmul_data_tiling_text(text: str, min_k: int = MATMUL_DATA_TILING_MIN_K, wide_n: int = 0) -> tuple[str, int]:
    """(text, count): `iree.opt.data_tiling` on each 2-D linalg.matmul whose reduction is at least `min_k` long.
    With `wide_n`, few-row matmuls with N a multiple of it are left to widen_matmul_tiles_text (see FEW_ROWS)."""
    def hint(m: re.Match, _n: int) -> list[str] | None:
        if int(m["k"]) < min_k or (wide_n and int(m["m"]) <= FEW_ROWS and int(m["n"]) % wide_n == 0):
            return None
        return [m.string.replace(f"{m['head']} ins(", f"{m['head']} {{iree.opt.data_tiling}} ins(", 1)]

    return _apply(text, [("linalg.matmul ins(", _MATMUL, hint)])


def hint_matmul_data_tiling_file(path: Path, min_k: int = MATMUL_DATA_TILING_MIN_K, wide_n: int = 0) -> int:
    return _apply_file(path, lambda text: hint_matmul_data_tiling_text(text, min_k, wide_n))


# --- Wider vector tiles for the matmuls IREE tiles itself -------------------------------------------------------------
#
# The matmuls left to IREE's default CPU tiling (not data-tiled: K < MATMUL_DATA_TILING_MIN_K, or no matmul data tiling)
# get a vector tile one register wide in N ([7, 16] or [8, 16] for f32 on AVX-512): 7-8 FMAs per weight load. Two
# registers wide ([7, 32]) keeps 14 accumulators in registers and does 14 FMAs per 9 loads. Measured on the 2-core
# Zen 5 host (iree-benchmark-module, matmul + bias + clamp alone, 1 thread): 49x1280x320 0.270 -> 0.235 ms,
# 196x576x96 0.156 -> 0.137, 49x960x160 0.129 -> 0.113; it loses where the distribution tile is not a multiple of 32
# (196x96x384 with IREE's 48-wide tile: 0.120 -> 0.146), so those are left alone. IREE's own choice is read from
# `iree-compile --compile-to=executable-configurations` and only the vector N tile changes, as a per-op
# `compilation_info` (the distribution tiles, hence the workgroup counts, stay IREE's).
#
# Few-row matmuls (at most FEW_ROWS rows: the 7x7 stage, 49 rows) are the exception. With this tile they do better
# than data tiling, whose 16-row packed tiles pad 49 rows to 64, so they are not hinted for it; and they get one
# distribution tile over all rows, `vector_n` columns wide, instead of IREE's. MobileNetV2, one thread, per dispatch:
# 49x320x960 0.194 -> 0.131 ms (ONNX Runtime: 0.154), 49x160x960 0.100 -> 0.076, 49x160x576 0.061 -> 0.037; the whole
# net 3.73 -> 3.47 ms of dispatches, and 2.24 -> 2.14 ms at 2 threads (interleaved, 10 rounds).
FEW_ROWS = 64
_CONFIGURED_MATMUL = re.compile(
    r"linalg\.generic \{indexing_maps = \[affine_map<\(d0, d1, d2\) -> \(d0, d2\)>, "
    r"affine_map<\(d0, d1, d2\) -> \(d2, d1\)>, affine_map<\(d0, d1, d2\) -> \(d0, d1\)>\], "
    r'iterator_types = \["parallel", "parallel", "reduction"\]\} '
    r"ins\(%[\w.]+, %[\w.]+ : tensor<(?P<m>\d+)x(?P<k>\d+)xf32>, tensor<\d+x(?P<n>\d+)xf32>\) .*"
    r"lowering_config = #iree_cpu\.lowering_config<distribution = \[(?P<dm>\d+), (?P<dn>\d+), 0\], "
    r"vector_common_parallel = \[(?P<vm>\d+), (?P<vn>\d+), 0\], vector_reduction = \[0, 0, (?P<vk>\d+)\]>")


def plain_matmul_count(text: str) -> int:
    """How many 2-D f32 linalg.matmul ops with more than one row carry no attributes (so no data-tiling hint)."""
    return sum(1 for line in text.splitlines()
               if "= linalg.matmul ins(" in line and (m := _MATMUL.match(line)) and _f32(m) and int(m["m"]) > 1)


def _f32(m: re.Match) -> bool:
    return m["lhs"] == m["rhs"] == "f32"


def matmul_tile_configs(config_text: str) -> dict[tuple[int, int, int], tuple[int, int, int, int, int]]:
    """IREE's tiles for each f32 matmul shape, (M, N, K) -> (distribution M, N, vector M, N, vector K), read from
    the output of `iree-compile --compile-to=executable-configurations`. Only matmuls that are their dispatch's
    one distributed op and store their result as it is: ResNet-18's downsample matmuls, whose dispatch also packs
    their output for a data-tiled convolution (`iree_linalg_ext.map_store`), got slower with a wider tile
    (49x512x256: 0.24 -> 0.26 ms, one thread)."""
    configs = {}
    for dispatch in config_text.split("func.func @")[1:]:
        if dispatch.count("#iree_cpu.lowering_config<distribution") != 1 or "map_store" in dispatch \
                or "linalg.pack" in dispatch:
            continue
        for line in dispatch.splitlines():
            if "#iree_cpu.lowering_config<distribution" in line and (m := _CONFIGURED_MATMUL.search(line)):
                key = int(m["m"]), int(m["n"]), int(m["k"])
                configs[key] = tuple(int(m[g]) for g in ("dm", "dn", "vm", "vn", "vk"))
    return configs


def widen_matmul_tiles_text(text: str, configs: dict, vector_n: int) -> tuple[str, int]:
    """(text, count): each plain f32 linalg.matmul that IREE gave a vector N tile narrower than `vector_n` gets a
    `compilation_info` with IREE's own tiles but that vector N tile, when its distribution N tile is a multiple of
    it; with at most FEW_ROWS rows, the distribution tile becomes all rows by `vector_n` columns. Single-row matmuls
    (vector M tile 1) are left to IREE."""
    def widen(m: re.Match, _n: int) -> list[str] | None:
        rows, cols = int(m["m"]), int(m["n"])
        c = configs.get((rows, cols, int(m["k"]))) if _f32(m) else None
        if not c:
            return None
        dm, dn, vm, vn, vk = c
        if rows <= FEW_ROWS and cols % vector_n == 0:
            dm, dn = rows, vector_n
        if vm < 2 or vn >= vector_n or dn % vector_n:
            return None
        info = ("{compilation_info = #iree_codegen.compilation_info<lowering_config = #iree_cpu.lowering_config<"
                f"distribution = [{dm}, {dn}, 0], vector_common_parallel = [{vm}, {vector_n}, 0], "
                f"vector_reduction = [0, 0, {vk}]>, translation_info = #iree_codegen.translation_info<"
                "pipeline = #iree_cpu.pipeline<DoubleTilingExpert>>>}")
        return [m.string.replace(f"{m['head']} ins(", f"{m['head']} {info} ins(", 1)]

    return _apply(text, [("= linalg.matmul ins(", _MATMUL, widen)])


def widen_matmul_tiles_file(path: Path, config_path: Path, vector_n: int) -> int:
    configs = matmul_tile_configs(config_path.read_text())
    return _apply_file(path, lambda text: widen_matmul_tiles_text(text, configs, vector_n))


# --- Few-channel convolutions out of convolution data tiling -----------------------------------------------------
#
# IREE's convolution data tiling packs input channels in tiles of 16: the 3-channel 7x7 stride-2 stem of a ResNet is
# 5x padding (space_to_depth makes it a 12-channel 4x4 conv, still 1.79 ms + a 0.20 ms transform, one thread), while
# as a direct convolution with a two-register vector tile it takes 1.02 ms (ONNX Runtime: 0.91). Data tiling is all or
# nothing per build, except that once any op carries an `iree.opt.data_tiling` hint only hinted ops are packed. A
# hint on a named batch-1 convolution does not reach that point (the unit batch dimension is folded away and the op
# rebuilt without its attributes), so after IREE's channels-last pass each batch-1 NHWC convolution is written as the
# batchless linalg.generic it becomes anyway, with the hint on those with at least `min_channels` input channels.
# ResNet-18, 2 threads: 10.20 -> 9.65 ms (interleaved, 6 rounds).
_NHWC_CONV = re.compile(
    r"^(?P<ind>\s*)(?P<res>%[\w.]+) = linalg\.conv_2d_nhwc_hwcf \{dilations = dense<1> : vector<2xi64>, "
    r"strides = dense<(?P<s>\d+)> : vector<2xi64>\} ins\((?P<x>%[\w.]+), (?P<w>%[\w.]+) : "
    r"tensor<1x(?P<xs>[0-9x]+)xf32>, tensor<(?P<ws>[0-9x]+)xf32>\) outs\((?P<o>%[\w.]+) : "
    r"tensor<1x(?P<os>[0-9x]+)xf32>\) -> tensor<1x(?P=os)xf32>\s*$")


def few_channel_conv_count(text: str, min_channels: int) -> int:
    """How many f32 NCHW convolutions (as imported) have fewer than `min_channels` input channels."""
    return sum(1 for line in text.splitlines() if "linalg.conv_2d_nchw_fchw" in line and (m := _CONV.match(line))
               and m["et"] == "f32" and _dims(m, "xs")[1] < min_channels)


def _batchless_conv(min_channels: int):
    def rewrite(m: re.Match, n: int) -> list[str]:
        ind, k, s = m["ind"], f"%edgecc_cv{n}", m["s"]
        xs, os_ = m["xs"], m["os"]
        x3, o3, o4 = f"tensor<{xs}xf32>", f"tensor<{os_}xf32>", f"tensor<1x{os_}xf32>"
        hint = " attrs = {iree.opt.data_tiling}" if _dims(m, "xs")[2] >= min_channels else ""
        d6 = "affine_map<(d0, d1, d2, d3, d4, d5) -> "
        d4 = "affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>"
        return [f"{ind}{k}_x = tensor.collapse_shape {m['x']} [[0, 1], [2], [3]] : tensor<1x{xs}xf32> into {x3}",
                f"{ind}{k}_zero = arith.constant 0.000000e+00 : f32",
                f"{ind}{k}_empty = tensor.empty() : {o3}",
                f"{ind}{k}_init = linalg.fill ins({k}_zero : f32) outs({k}_empty : {o3}) -> {o3}",
                f"{ind}{k} = linalg.generic {{indexing_maps = [{d6}(d0 * {s} + d3, d1 * {s} + d4, d5)>, "
                f"{d6}(d3, d4, d5, d2)>, {d6}(d0, d1, d2)>], iterator_types = [\"parallel\", \"parallel\", "
                f"\"parallel\", \"reduction\", \"reduction\", \"reduction\"]}} ins({k}_x, {m['w']} : {x3}, "
                f"tensor<{m['ws']}xf32>) outs({k}_init : {o3}){hint} {{",
                f"{ind}^bb0({k}_a: f32, {k}_b: f32, {k}_c: f32):",
                f"{ind}  {k}_m = arith.mulf {k}_a, {k}_b : f32",
                f"{ind}  {k}_s = arith.addf {k}_c, {k}_m : f32",
                f"{ind}  linalg.yield {k}_s : f32",
                f"{ind}}} -> {o3}",
                f"{ind}{k}_4d = tensor.expand_shape {k} [[0, 1], [2], [3]] output_shape [1, {os_.replace('x', ', ')}] "
                f": {o3} into {o4}",
                f"{ind}{k}_out = tensor.empty() : {o4}",
                # the convolution's init (bias, or zeros) added afterwards: as the init of the batchless op it was
                # fused into the packed dispatches as one whole-output stack buffer, over IREE's 32 KB limit
                f"{ind}{m['res']} = linalg.generic {{indexing_maps = [{d4}, {d4}, {d4}], iterator_types = "
                f"[\"parallel\", \"parallel\", \"parallel\", \"parallel\"]}} ins({k}_4d, {m['o']} : {o4}, {o4}) "
                f"outs({k}_out : {o4}) {{",
                f"{ind}^bb0({k}_p: f32, {k}_q: f32, {k}_r: f32):",
                f"{ind}  {k}_sum = arith.addf {k}_p, {k}_q : f32",
                f"{ind}  linalg.yield {k}_sum : f32",
                f"{ind}}} -> {o4}"]
    return rewrite


def hint_conv_data_tiling_text(text: str, min_channels: int) -> tuple[str, int]:
    """(text, count): each batch-1 f32 NHWC convolution (after IREE's channels-last pass) as a batchless
    linalg.generic, with an `iree.opt.data_tiling` hint when it has at least `min_channels` input channels; `count`
    is how many were left without the hint. Unchanged (0) when every convolution would get it."""
    convs = [m for line in text.splitlines() if "linalg.conv_2d_nhwc_hwcf" in line and (m := _NHWC_CONV.match(line))]
    few = sum(1 for m in convs if _dims(m, "xs")[2] < min_channels)
    if not few:
        return text, 0
    text, _ = _apply(text, [("linalg.conv_2d_nhwc_hwcf", _NHWC_CONV, _batchless_conv(min_channels))])
    return text, few


def hint_conv_data_tiling_file(path: Path, min_channels: int) -> int:
    return _apply_file(path, lambda text: hint_conv_data_tiling_text(text, min_channels))


# --- Wider vector tiles for IREE's direct convolutions ------------------------------------------------------------
#
# IREE's direct (not data-tiled) f32 convolution config on AVX-512 is one output row, 7-8 output columns and one
# 16-wide register of output channels per vector tile. Two registers (32 channels) keep twice the accumulators per
# input broadcast: the 7x7 stride-2 stem 1.61 -> 1.02 ms, 56x56x64 3x3 1.40 -> 0.98 ms (one thread, in ResNet-18).
# The config is only visible after IREE rebuilds the op in codegen (a compilation_info on the input op is dropped
# with the unit batch dimension), so this rewrites the output of `--compile-to=executable-configurations`, which is
# then compiled `--compile-from=executable-configurations`.
_DIRECT_CONV_CONFIG = re.compile(
    r"distribution = \[0, (?P<dh>\d+), (?P<dw>\d+), (?P<dc>\d+), 0, 0, 0\], "
    r"vector_common_parallel = \[1, 1, (?P<vw>\d+), (?P<vc>\d+), 0, 0, 0\]")


def widen_conv_tiles_text(config_text: str, vector_n: int) -> tuple[str, int]:
    """(text, count): in each executable whose convolution uses IREE's ConvTileAndDecomposeExpert pipeline with a
    vector tile narrower than `vector_n` output channels and a distribution tile that is a multiple of it, that
    vector tile (and its fused consumers') becomes `vector_n` channels wide."""
    parts = re.split(r"(?=^\s*hal\.executable private @)", config_text, flags=re.M)
    n = 0
    for i, part in enumerate(parts):
        m = _DIRECT_CONV_CONFIG.search(part)
        if "ConvTileAndDecomposeExpert" not in part or not m or len(_DIRECT_CONV_CONFIG.findall(part)) != 1:
            continue
        vw, vc, dc = int(m["vw"]), int(m["vc"]), int(m["dc"])
        if vc >= vector_n or dc % vector_n:
            continue
        part = part.replace(m[0], m[0].replace(f"[1, 1, {vw}, {vc}, 0, 0, 0]", f"[1, 1, {vw}, {vector_n}, 0, 0, 0]"))
        parts[i] = part.replace(f"lowering_config<vector_common_parallel = [1, 1, {vw}, {vc}]>",
                                f"lowering_config<vector_common_parallel = [1, 1, {vw}, {vector_n}]>")
        n += 1
    return "".join(parts), n


def widen_conv_tiles_file(path: Path, vector_n: int) -> int:
    return _apply_file(path, lambda text: widen_conv_tiles_text(text, vector_n))
