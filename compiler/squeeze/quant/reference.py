"""The two references a quantized graph is checked against.

    run_int8           the integer reference in numpy: TFLite / CMSIS-NN arithmetic, bit-exact with the micro
                       backend's C kernels (runtime/c/src/int8_kernels.c)
    qdq_module         the quantized PyTorch reference: the same quantized weights, with fake quantization of
                       every activation (what IREE and TVM compute from the QDQ ONNX graph, onnx_export.py)
"""

from __future__ import annotations

import numpy as np

from edgecc.compiler.squeeze.quant.arithmetic import (
    ADD_LEFT_SHIFT,
    QMAX,
    QMIN,
    activation_max,
    dequantize_output,
    multiply_by_quantized_multiplier,
    quantize_input,
    wrap_int32,
)
from edgecc.compiler.squeeze.quant.graph import QGraph, QOp, float_op


def run_int8(g: QGraph, x: np.ndarray, return_int: bool = False):
    """The int8 graph on float input `x` (N, C, H, W): quantize, integer ops, dequantize. Bit-exact with the
    micro backend's C kernels. With return_int, also the dict of int8 tensors."""
    import torch
    import torch.nn.functional as F

    s, zp = g.qparams[g.input]
    env = {g.input: quantize_input(x, s, zp).astype(np.int64)}
    for op in g.ops:
        a = env[op.inputs[0]]
        s_in, zp_in = g.qparams[op.inputs[0]]
        s_out, zp_out = g.qparams[op.output]
        if op.kind in ("conv", "dense"):
            y = _int8_conv_dense(op, a, zp_in) + zp_out
        elif op.kind == "add":
            b = env[op.inputs[1]]
            zp_b = g.qparams[op.inputs[1]][1]
            a1 = multiply_by_quantized_multiplier((a - zp_in) << ADD_LEFT_SHIFT, op.multiplier[0], op.shift[0])
            b1 = multiply_by_quantized_multiplier((b - zp_b) << ADD_LEFT_SHIFT, op.multiplier[1], op.shift[1])
            y = multiply_by_quantized_multiplier(a1 + b1, op.multiplier[2], op.shift[2]) + zp_out
        elif op.kind == "maxpool":
            k, st, p = op.attrs["kernel"], op.attrs["stride"], op.attrs["padding"]
            y = F.max_pool2d(torch.from_numpy(a.astype(np.float64)), k, st, p).numpy().astype(np.int64)
        elif op.kind == "avgpool":
            acc = a.sum(axis=(2, 3), keepdims=True)
            count = a.shape[2] * a.shape[3]
            y = np.where(acc >= 0, (acc + count // 2) // count, -((-acc + count // 2) // count))
        else:
            y = a.reshape(a.shape[0], -1)
        lo = zp_out if op.relu else QMIN
        env[op.output] = np.clip(y, lo, activation_max(op.relu6, s_out, zp_out)).astype(np.int64)
    s, zp = g.qparams[g.output]
    out = dequantize_output(env[g.output], s, zp)
    return (out, env) if return_int else out


def _int8_conv_dense(op: QOp, a: np.ndarray, zp_in: int) -> np.ndarray:
    """int32 accumulation of a conv / dense on int8 input `a`, requantized (before the output zero point)."""
    import torch
    import torch.nn.functional as F

    xa = torch.from_numpy((a - zp_in).astype(np.float64))
    w = torch.from_numpy(op.w_q.astype(np.float64))
    if op.kind == "conv":  # float64 holds these integer sums exactly (|acc| < 2^53)
        acc = F.conv2d(xa, w, None, op.attrs["stride"], op.attrs["padding"], 1, op.attrs["groups"])
        bshape = (1, -1, 1, 1)
    else:
        acc = F.linear(xa, w)
        bshape = (1, -1)
    acc = acc.numpy().astype(np.int64) + op.b_q.astype(np.int64).reshape(bshape)
    acc = wrap_int32(acc)
    return multiply_by_quantized_multiplier(acc, op.multiplier.reshape(bshape), op.shift.reshape(bshape))


def qdq_module(g: QGraph):
    """The quantized PyTorch reference: an nn.Module with int8-valued weights and fake-quantized activations."""
    import torch

    class QDQModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.g = g
            for i, op in enumerate(g.ops):
                if op.w_q is not None:
                    s_in = g.qparams[op.inputs[0]][0]
                    shape = (-1,) + (1,) * (op.w_q.ndim - 1)
                    w = op.w_q.astype(np.float32) * op.w_scale.reshape(shape)
                    b = (op.b_q.astype(np.float64) * s_in * op.w_scale.astype(np.float64)).astype(np.float32)
                    self.register_buffer(f"w{i}", torch.from_numpy(w))
                    self.register_buffer(f"b{i}", torch.from_numpy(b))

        def fq(self, t, name):
            s, zp = self.g.qparams[name]
            return torch.fake_quantize_per_tensor_affine(t, s, zp, QMIN, QMAX)

        def forward(self, x):
            env = {self.g.input: self.fq(x, self.g.input)}
            for i, op in enumerate(self.g.ops):
                weights = (getattr(self, f"w{i}"), getattr(self, f"b{i}")) if op.kind in ("conv", "dense") else ()
                y = float_op(op, env, *weights)
                env[op.output] = y if op.kind in ("maxpool", "flatten") else self.fq(y, op.output)
            return env[self.g.output]

    return QDQModule().eval()
