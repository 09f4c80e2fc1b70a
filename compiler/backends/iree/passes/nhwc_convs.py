"""When: `nhwc_rewrite` is on (targets/host.toml), right after the import.
What: NCHW depthwise convolutions and pooling become their named NHWC forms between transposes, and strided 1x1
convolutions a strided slice and a stride-1 convolution (strided_1x1.py).

torch-mlir emits PyTorch's NCHW layout. On CPUs, IREE's `iree-preprocessing-convert-conv-to-channels-last`
moves regular convolutions to NHWC, but it turns depthwise convolutions and pooling into generic ops that
vectorize badly: measured on the 2-core Zen 5 host, single thread, MobileNetV2's 3×3 depthwise layers took
2.1 ms each at 56×56×144 (14.9 ms the whole net) and ResNet-18's max-pool 1.35 ms. Rewritten here to their
named NHWC forms (`linalg.depthwise_conv_2d_nhwc_hwc`, `linalg.pooling_nhwc_max/sum`) between transposes, which
IREE's transpose propagation folds into the neighbouring NHWC convolutions, MobileNetV2 runs in 5.8 ms.

The rewrite is textual (passes/_mlir.py); see benchmarks/host_vs_baselines.py for the measurements.
"""

from __future__ import annotations

import re
from pathlib import Path

from ._mlir import _CONV, _apply, _apply_file
from .strided_1x1 import _subsample_1x1

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


def rewrite_text(text: str) -> tuple[str, int]:
    """(rewritten module text, number of ops rewritten): NCHW depthwise convolutions and pooling to NHWC, strided
    1x1 convolutions to a strided slice and a stride-1 convolution."""
    return _apply(text, [("_nchw_", _OP, _rewrite_op), ("linalg.conv_2d_nchw_fchw", _CONV, _subsample_1x1)])


def rewrite_file(path: Path) -> int:
    return _apply_file(path, rewrite_text)
