"""When: always with `nhwc_rewrite` (run by nhwc_convs.rewrite_text, in the same walk over the module).
What: each strided 1x1 NCHW convolution becomes a strided slice of its input and a stride-1 1x1 convolution."""

from __future__ import annotations

import re

from ._mlir import _dims


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
