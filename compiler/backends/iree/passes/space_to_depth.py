"""When: convolution data tiling is on and `space_to_depth` is (by default: unless few-channel convolutions
are to stay direct, see conv_data_tiling_hints.py).
What: each few-channel strided f32 convolution (the RGB stem) becomes a stride-1 convolution over a space-to-depth
input, its kernel padded to a multiple of the stride and folded."""

from __future__ import annotations

import re
from pathlib import Path

from ._mlir import _CONV, _apply, _apply_file, _dims

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



def space_to_depth_file(path: Path) -> int:
    return _apply_file(path, space_to_depth_text)
