"""When: convolution data tiling is off (`few_channel_im2col`, on by default there).
What: each f32 convolution with at most IM2COL_MAX_CHANNELS input channels becomes an im2col patch copy and a
matmul, [N*OH*OW, C*KH*KW] x [C*KH*KW, F], accumulating into the convolution's own init (its bias)."""

from __future__ import annotations

import re
from pathlib import Path

from ._mlir import _CONV, _apply, _apply_file, _dims

# IREE 3.13's direct convolution vectorizes over input channels: with one (DS-CNN's 10x4/2 stem over a 49x10
# spectrogram, 320 K MACs) it ran at ~2.4 GMAC/s, 140 us of a 190 us inference on the Zen 4 host, and space-to-
# depth (4 channels) did not help. As im2col + matmul (125 x 40 x 64) it is a matmul IREE tiles well. IREE's own
# --iree-global-opt-use-im2col-for-convs rewrites every convolution, depthwise ones too, and made DS-CNN slower
# (0.19 -> 0.31 ms).
IM2COL_MAX_CHANNELS = 2


def _im2col_conv(m: re.Match, n: int) -> list[str] | None:
    ind, et, s = m["ind"], m["et"], int(m["s"])
    (bn, c, h, w), (f, c2, kh, kw), (_, f2, oh, ow) = _dims(m, "xs"), _dims(m, "ws"), _dims(m, "os")
    if et != "f32" or c2 != c or f2 != f or c > IM2COL_MAX_CHANNELS or kh * kw == 1:
        return None
    k = f"%edgecc_i2c{n}"
    rows, depth = bn * oh * ow, c * kh * kw

    def ty(*dims: int) -> str:
        return "tensor<" + "x".join(map(str, dims)) + f"x{et}>"

    maps = (f"affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d3, d1 * {s} + d4, d2 * {s} + d5)>, "
            "affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3, d4, d5)>")
    patches = ty(bn, oh, ow, c, kh, kw)
    parallel = ", ".join(['"parallel"'] * 6)
    return [
        f"{ind}{k}_p0 = tensor.empty() : {patches}",
        f"{ind}{k}_p = linalg.generic {{indexing_maps = [{maps}], iterator_types = [{parallel}]}} "
        f"ins({m['x']} : {ty(bn, c, h, w)}) outs({k}_p0 : {patches}) {{",
        f"{ind}^bb0({k}_in: {et}, {k}_out: {et}):",
        f"{ind}  linalg.yield {k}_in : {et}",
        f"{ind}}} -> {patches}",
        f"{ind}{k}_pc = tensor.collapse_shape {k}_p [[0, 1, 2], [3, 4, 5]] : {patches} into {ty(rows, depth)}",
        f"{ind}{k}_wc = tensor.collapse_shape {m['w']} [[0], [1, 2, 3]] : {ty(f, c, kh, kw)} into {ty(f, depth)}",
        f"{ind}{k}_wt0 = tensor.empty() : {ty(depth, f)}",
        f"{ind}{k}_wt = linalg.transpose ins({k}_wc : {ty(f, depth)}) outs({k}_wt0 : {ty(depth, f)}) "
        f"permutation = [1, 0]",
        f"{ind}{k}_ot0 = tensor.empty() : {ty(bn, oh, ow, f)}",
        f"{ind}{k}_ot = linalg.transpose ins({m['o']} : {ty(bn, f, oh, ow)}) outs({k}_ot0 : {ty(bn, oh, ow, f)}) "
        f"permutation = [0, 2, 3, 1]",
        f"{ind}{k}_oc = tensor.collapse_shape {k}_ot [[0, 1, 2], [3]] : {ty(bn, oh, ow, f)} into {ty(rows, f)}",
        f"{ind}{k}_mm = linalg.matmul ins({k}_pc, {k}_wt : {ty(rows, depth)}, {ty(depth, f)}) "
        f"outs({k}_oc : {ty(rows, f)}) -> {ty(rows, f)}",
        f"{ind}{k}_me = tensor.expand_shape {k}_mm [[0, 1, 2], [3]] output_shape [{bn}, {oh}, {ow}, {f}] : "
        f"{ty(rows, f)} into {ty(bn, oh, ow, f)}",
        f"{ind}{k}_r0 = tensor.empty() : {ty(bn, f, oh, ow)}",
        f"{ind}{m['res']} = linalg.transpose ins({k}_me : {ty(bn, oh, ow, f)}) outs({k}_r0 : {ty(bn, f, oh, ow)}) "
        f"permutation = [0, 3, 1, 2]",
    ]


def few_channel_im2col_text(text: str) -> tuple[str, int]:
    """(module text with few-input-channel convolutions as im2col + matmul, number rewritten)."""
    return _apply(text, [("linalg.conv_2d_nchw_fchw", _CONV, _im2col_conv)])


def few_channel_im2col_file(path: Path) -> int:
    return _apply_file(path, few_channel_im2col_text)
