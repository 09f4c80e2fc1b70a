"""When: convolution data tiling is on, some convolutions have fewer than `conv_data_tiling_min_channels` input
channels and space-to-depth is off; after IREE's channels-last pass (iree_opt_channels_last.py).
What: each batch-1 f32 NHWC convolution becomes the batchless linalg.generic IREE makes of it anyway, with an
`iree.opt.data_tiling` hint on those with enough input channels, so that only they are packed."""

from __future__ import annotations

import re
from pathlib import Path

from ._mlir import _CONV, _apply, _apply_file, _dims

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
