"""Channels-last graph for the CPU default schedules: BatchNorm folded, convolutions NHWC with HWIO weights.

In NCHW a convolution's output channels are the weight's outermost dimension, so the only contiguous vector
axis is the output row, which strided convolutions read with gathers and 7-wide rows waste. In NHWC / HWIO
every convolution, depthwise or not, strided or not, reads its weights contiguously along the output channels
and its input as one broadcast scalar per multiply-add: `cpu_schedule.RegisterTiledReduction`'s register tile.
Pooling and element-wise ops follow their input, so only the model's input and output (and ops ConvertLayout
does not know) are transposed. Folding BatchNorm first lets
FuseOps fuse `conv2d + bias + ReLU` into one function (Relax keeps a BatchNorm call apart: its legalized form
returns a tuple).

    mod = channels_last(mod)   # Relax module from import_relax; constants folded, layouts converted
"""

from __future__ import annotations

from edgecc.compiler.backends.tvm.fold_batchnorm import fold_batchnorm

# Pools and element-wise ops take their input's layout (naming a pool here fails TVM 0.27's ConvertLayout check
# `NoDesiredLayout`). Transposed convolutions stay NCHW: they would follow an NHWC input too, and TVM 0.27
# legalizes conv2d_transpose in NCHW only (U-Net's up-convolutions reached the VM unlowered).
DESIRED_LAYOUTS = {"relax.nn.conv2d": ["NHWC", "HWIO"], "relax.nn.conv2d_transpose": ["NCHW", "IOHW"]}


def clip_as_min_max(mod):
    """`clip(x, lo, hi)` (ReLU6, hardtanh) as `minimum(maximum(x, lo), hi)`: TVM 0.27's ConvertLayout has no
    layout rule for clip and wrapped each MobileNetV2 ReLU6 in two transposes (a third of its time), while
    element-wise maximum / minimum follow the NHWC convolution and fuse into it."""
    import math

    import tvm
    from tvm import relax
    from tvm.relax.dpl import is_op, rewrite_call, wildcard

    pattern = is_op("relax.clip")(wildcard(), wildcard(), wildcard())

    def rewrite(call, _matches):
        x, lo, hi = call.args  # TVM 0.27: the bounds are FloatImm / IntImm
        if not all(hasattr(b, "value") and isinstance(b.value, (int, float)) for b in (lo, hi)):
            return call
        dtype = str(x.ty.dtype)
        out = x
        if not math.isinf(float(lo.value)):
            out = relax.op.maximum(out, relax.const(float(lo.value), dtype))
        if not math.isinf(float(hi.value)):
            out = relax.op.minimum(out, relax.const(float(hi.value), dtype))
        return out

    out = tvm.IRModule()
    for gv, func in mod.functions.items():
        out[gv] = rewrite_call(pattern, rewrite, func) if isinstance(func, relax.Function) else func
    return out.with_attrs(mod.attrs) if mod.attrs else out


def channels_last(mod):
    """`mod` with BatchNorm folded into the layers before it and the 2-D convolutions in NHWC (their weights
    HWIO, transposed once at compile time by FoldConstant), the ops after them following."""
    from tvm import relax

    mod = relax.transform.ConvertToDataflow()(clip_as_min_max(fold_batchnorm(mod)))
    return relax.transform.ConvertLayout(DESIRED_LAYOUTS)(mod)
