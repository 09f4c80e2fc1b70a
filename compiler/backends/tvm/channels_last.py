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


def channels_last(mod):
    """`mod` with BatchNorm folded into the layers before it and the 2-D convolutions in NHWC (their weights
    HWIO, transposed once at compile time by FoldConstant), the ops after them following."""
    from tvm import relax

    mod = relax.transform.ConvertToDataflow()(fold_batchnorm(mod))
    return relax.transform.ConvertLayout(DESIRED_LAYOUTS)(mod)
