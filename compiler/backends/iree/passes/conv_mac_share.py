"""When: `conv_data_tiling=auto`, on the imported module.
What: nothing is rewritten; the share of convolution MACs in dense k>1 convolutions decides whether data tiling is
on."""

from __future__ import annotations

import math
import re

from ._mlir import _CONV, _dims

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
