"""Static post-training int8 quantization (the "squeeze" stage), one quantized graph for every backend.

    capture_graph      torch.fx trace -> a small graph of conv / dense / add / maxpool / avgpool / flatten,
                       BatchNorm folded into the conv before it, ReLU fused into the op before it
    calibrate          run the fp32 graph on calibration samples, min/max of every activation
    quantize_graph     per-channel symmetric int8 weights (scale max|w|/127, zero point 0), per-tensor asymmetric
                       int8 activations (scale (max-min)/255, range widened to hold 0), int32 biases at
                       scale s_in*s_w, fixed-point requantization multipliers (TFLite's QuantizeMultiplier)
    run_int8           the integer reference in numpy: TFLite / CMSIS-NN arithmetic, bit-exact with the micro
                       backend's C kernels (runtime/c/src/int8_kernels.c)
    QDQModule          the quantized PyTorch reference: the same quantized weights, with fake quantization of
                       every activation (what IREE and TVM compute from the QDQ ONNX graph, qdq_onnx.py)

TFLite arithmetic (gemmlowp): requantize(acc) = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(
acc << max(shift, 0), multiplier), max(-shift, 0)); add rescales both inputs by 2^20 first. Quantizing a float
rounds half away from zero (TfLiteRound); the QDQ reference and ONNX round half to even, which is why a backend
is compared with the quantized reference within a few output quantization steps, not bit for bit.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import numpy as np

from edgecc.errors import UnsupportedOpError

QMIN, QMAX = -128, 127
ADD_LEFT_SHIFT = 20  # TFLite's int8 ADD: inputs are scaled up by 2^20 before rescaling


# ---------------------------------------------------------------- fixed-point arithmetic (TFLite semantics)

def quantize_multiplier(real: float) -> tuple[int, int]:
    """(multiplier Q31, shift) with real ~= multiplier * 2^(shift - 31); TFLite's QuantizeMultiplier."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)  # real = q * 2^shift, q in [0.5, 1)
    q_fixed = int(math.floor(q * (1 << 31) + 0.5))  # TfLiteRound: half away from zero (q > 0)
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def srdhm(a, b):
    """SaturatingRoundingDoublingHighMul of int32 arrays (gemmlowp), vectorized, exact in int64."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    t = ab + nudge
    res = np.where(t >= 0, t >> 31, -((-t) >> 31))  # C division by 2^31: truncation toward zero
    overflow = (a == b) & (a == -(1 << 31))
    return np.where(overflow, (1 << 31) - 1, res).astype(np.int64)


def rounding_divide_by_pot(x, exponent):
    """RoundingDivideByPOT (gemmlowp): x / 2^exponent rounded half away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite MultiplyByQuantizedMultiplier on int32 values (the product x * 2^left wraps like int32 in C)."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = _wrap32(np.asarray(x, dtype=np.int64) << left)
    return rounding_divide_by_pot(srdhm(shifted, multiplier), right)


def _wrap32(x):
    return ((np.asarray(x, dtype=np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def quantize_input(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """float -> int8 the way the C runtime does it: float32 x / scale, round half away from zero, clamp."""
    v = np.asarray(x, dtype=np.float32) / np.float32(scale)
    v = np.clip(v, np.float32(-512.0), np.float32(512.0))
    r = np.where(v >= 0, np.trunc(v + np.float32(0.5)), np.trunc(v - np.float32(0.5))).astype(np.int64)
    return np.clip(r + zp, QMIN, QMAX).astype(np.int8)


def dequantize_output(q: np.ndarray, scale: float, zp: int) -> np.ndarray:
    return (np.asarray(q, dtype=np.int32) - zp).astype(np.float32) * np.float32(scale)


def activation_qparams(lo: float, hi: float) -> tuple[float, int]:
    """Per-tensor asymmetric int8 (scale, zero point) covering [min(lo, 0), max(hi, 0)]: 0.0 is exact."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-8:
        hi = lo + 1e-8
    scale = float(np.float32((hi - lo) / (QMAX - QMIN)))
    zp = int(np.clip(round(QMIN - lo / scale), QMIN, QMAX))
    return scale, zp


def weight_qparams(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (axis 0) symmetric int8: (int8 weights in [-127, 127], float32 scales)."""
    flat = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    scale = np.where(flat > 0, flat / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.round(w / scale.reshape(-1, *([1] * (w.ndim - 1)))), -127, 127).astype(np.int8)
    return q, scale


# ---------------------------------------------------------------- the graph

@dataclass
class QOp:
    """One op of the quantizable graph. kind: conv | dense | add | maxpool | avgpool | flatten."""

    kind: str
    inputs: list[str]
    output: str
    attrs: dict = field(default_factory=dict)  # conv: stride, padding, groups; pools: kernel, stride, padding
    relu: bool = False
    weight: np.ndarray | None = None  # float (BN folded); conv OIHW, dense [out, in]
    bias: np.ndarray | None = None
    # filled by quantize_graph
    w_q: np.ndarray | None = None
    w_scale: np.ndarray | None = None
    b_q: np.ndarray | None = None
    multiplier: np.ndarray | None = None  # per output channel (conv/dense), or [in1, in2, out] for add
    shift: np.ndarray | None = None


@dataclass
class QGraph:
    """The captured graph: NCHW shapes of every tensor, ops in execution order, activation qparams."""

    input: str
    output: str
    ops: list[QOp]
    shapes: dict[str, tuple[int, ...]]
    qparams: dict[str, tuple[float, int]] = field(default_factory=dict)

    def weight_bytes(self) -> int:
        """Bytes of the quantized parameters: int8 weights, int32 biases and multipliers, int8 shifts."""
        n = 0
        for op in self.ops:
            if op.w_q is not None:
                n += op.w_q.size + 4 * op.b_q.size + 4 * op.multiplier.size + op.shift.size
        return n

    def fp32_weight_bytes(self) -> int:
        return sum(4 * (op.weight.size + op.bias.size) for op in self.ops if op.weight is not None)


def capture_graph(module, example_input) -> QGraph:
    """Trace `module` (an nn.Module) with torch.fx into a QGraph: BN folded into convs, ReLUs fused.

    Example: `g = capture_graph(resnet8, torch.randn(1, 3, 32, 32)); [op.kind for op in g.ops]`.
    """
    import torch
    from torch import nn
    from torch.fx.passes.shape_prop import ShapeProp

    gm = torch.fx.symbolic_trace(module)
    ShapeProp(gm).propagate(example_input)
    mods = dict(gm.named_modules())
    ops: list[QOp] = []
    name_of: dict[str, str] = {}  # fx node name -> tensor name
    producer: dict[str, QOp] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    graph_in = graph_out = None

    def shape(node):
        return tuple(int(d) for d in node.meta["tensor_meta"].shape)

    def new(node, kind, inputs, **kw):
        out = f"t{len(ops)}"
        op = QOp(kind, [name_of[a.name] for a in inputs], out, **kw)
        ops.append(op)
        name_of[node.name] = out
        producer[out] = op
        shapes[out] = shape(node)
        return op

    def fuse_into_producer(node, arg, what):
        src = name_of[arg.name]
        op = producer.get(src)
        if op is None or len(arg.users) != 1 or op.relu:
            raise UnsupportedOpError(what, "int8 quantization", "quantize a model whose " + what +
                                     " follows a conv/linear/add used only there")
        return op, src

    def as_relu(node, arg):
        op, src = fuse_into_producer(node, arg, "relu")
        if op.kind not in ("conv", "dense", "add"):
            raise UnsupportedOpError("relu", "int8 quantization", detail=f"after {op.kind}, not a conv/linear/add")
        op.relu = True
        name_of[node.name] = src

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if graph_in is not None:
                raise UnsupportedOpError("second input", "int8 quantization", detail="one-input models only")
            graph_in = name_of[node.name] = "input"
            shapes["input"] = shape(node)
        elif node.op == "output":
            res = node.args[0]
            if isinstance(res, (tuple, list)):
                if len(res) != 1:
                    raise UnsupportedOpError("several outputs", "int8 quantization")
                res = res[0]
            graph_out = name_of[res.name]
        elif node.op == "call_module":
            m = mods[node.target]
            x = node.args[0]
            if isinstance(m, nn.Conv2d):
                if m.padding_mode != "zeros" or m.dilation != (1, 1) or isinstance(m.padding, str):
                    raise UnsupportedOpError("conv2d (dilation / padding mode)", "int8 quantization")
                bias = m.bias.detach().numpy() if m.bias is not None else np.zeros(m.out_channels, np.float32)
                new(node, "conv", [x], attrs={"stride": tuple(m.stride), "padding": tuple(m.padding),
                                             "groups": m.groups},
                    weight=m.weight.detach().numpy().astype(np.float64), bias=bias.astype(np.float64))
            elif isinstance(m, nn.BatchNorm2d):
                op, src = fuse_into_producer(node, x, "batchnorm")
                if op.kind != "conv":
                    raise UnsupportedOpError("batchnorm", "int8 quantization", detail="not after a conv")
                g = (m.weight.detach().numpy() / np.sqrt(m.running_var.numpy() + m.eps)).astype(np.float64)
                op.weight = op.weight * g[:, None, None, None]
                op.bias = (op.bias - m.running_mean.numpy()) * g + m.bias.detach().numpy()
                name_of[node.name] = src
            elif isinstance(m, nn.ReLU):
                as_relu(node, x)
            elif isinstance(m, nn.Linear):
                bias = m.bias.detach().numpy() if m.bias is not None else np.zeros(m.out_features, np.float32)
                new(node, "dense", [x], weight=m.weight.detach().numpy().astype(np.float64),
                    bias=bias.astype(np.float64))
            elif isinstance(m, nn.MaxPool2d):
                k, s, p = (_pair(v) for v in (m.kernel_size, m.stride or m.kernel_size, m.padding))
                if m.dilation not in (1, (1, 1)) or m.ceil_mode:
                    raise UnsupportedOpError("max_pool2d (dilation / ceil_mode)", "int8 quantization")
                new(node, "maxpool", [x], attrs={"kernel": k, "stride": s, "padding": p})
            elif isinstance(m, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)) and _is_global_pool(m, shape(x)):
                new(node, "avgpool", [x])
            elif isinstance(m, nn.Flatten) and m.start_dim == 1 and m.end_dim == -1:
                new(node, "flatten", [x])
            elif isinstance(m, (nn.Identity, nn.Dropout)):
                name_of[node.name] = name_of[x.name]
            else:
                raise UnsupportedOpError(type(m).__name__, "int8 quantization",
                                         "compile it in fp32 (without --quantize)")
        elif node.op == "call_function" and node.target is torch.nn.functional.max_pool2d:
            kw_ = dict(zip(("kernel_size", "stride", "padding", "dilation", "ceil_mode"), node.args[1:],
                           strict=False), **node.kwargs)
            k = _pair(kw_["kernel_size"])
            if _pair(kw_.get("dilation", 1)) != (1, 1) or kw_.get("ceil_mode") or kw_.get("return_indices"):
                raise UnsupportedOpError("max_pool2d (dilation / ceil_mode)", "int8 quantization")
            new(node, "maxpool", [node.args[0]], attrs={"kernel": k, "stride": _pair(kw_.get("stride") or k),
                                                        "padding": _pair(kw_.get("padding", 0))})
        elif node.op == "call_function" and node.target is torch.nn.functional.adaptive_avg_pool2d and \
                _pair(node.args[1] if len(node.args) > 1 else node.kwargs["output_size"]) == (1, 1):
            new(node, "avgpool", [node.args[0]])
        elif node.op == "call_function" and node.target in (operator.add, torch.add):
            a, b = node.args[:2]
            if not all(isinstance(v, torch.fx.Node) for v in (a, b)) or shape(a) != shape(b):
                raise UnsupportedOpError("add (broadcast or with a constant)", "int8 quantization")
            new(node, "add", [a, b])
        elif (node.op == "call_function" and node.target is torch.flatten) or (
                node.op == "call_method" and node.target in ("flatten", "view", "reshape")):
            if len(shape(node)) != 2 or shape(node)[0] != shape(node.args[0])[0]:
                raise UnsupportedOpError(f"{node.target} (not a flatten to 2-D)", "int8 quantization")
            new(node, "flatten", [node.args[0]])
        elif (node.op == "call_function" and node.target in (torch.relu, torch.nn.functional.relu)) or (
                node.op == "call_method" and node.target in ("relu", "relu_")):
            as_relu(node, node.args[0])
        else:
            raise UnsupportedOpError(str(getattr(node.target, "__name__", node.target)), "int8 quantization",
                                     "compile it in fp32 (without --quantize)")
    if graph_out not in producer:
        raise UnsupportedOpError("identity output", "int8 quantization")
    for op in ops:
        if op.weight is not None:
            op.weight, op.bias = op.weight.astype(np.float32), op.bias.astype(np.float32)
    return QGraph(graph_in, graph_out, ops, shapes)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _is_global_pool(m, in_shape) -> bool:
    from torch import nn

    if isinstance(m, nn.AdaptiveAvgPool2d):
        return _pair(m.output_size) == (1, 1)
    return _pair(m.kernel_size) == tuple(in_shape[2:]) and m.padding in (0, (0, 0))


# ---------------------------------------------------------------- fp32 run, calibration, quantization

def run_float(g: QGraph, x) -> dict:
    """Every tensor of the fp32 graph on a batch `x` (torch float32 NCHW)."""
    import torch

    env = {g.input: x}
    with torch.no_grad():
        for op in g.ops:
            weights = (torch.from_numpy(op.weight), torch.from_numpy(op.bias)) if op.kind in ("conv", "dense") else ()
            env[op.output] = _float_op(op, env, *weights)
    return env


def _float_op(op, env: dict, weight=None, bias=None):
    """One op of the graph in float (PyTorch), ReLU fused as in the graph."""
    import torch
    import torch.nn.functional as F

    a = env[op.inputs[0]]
    if op.kind == "conv":
        y = F.conv2d(a, weight, bias, op.attrs["stride"], op.attrs["padding"], 1, op.attrs["groups"])
    elif op.kind == "dense":
        y = F.linear(a, weight, bias)
    elif op.kind == "add":
        y = a + env[op.inputs[1]]
    elif op.kind == "maxpool":
        y = F.max_pool2d(a, op.attrs["kernel"], op.attrs["stride"], op.attrs["padding"])
    elif op.kind == "avgpool":
        y = a.mean(dim=(2, 3), keepdim=True)
    else:
        y = a.flatten(1)
    return torch.relu(y) if op.relu else y


def calibrate(g: QGraph, samples: np.ndarray, batch: int = 256) -> dict[str, tuple[float, float]]:
    """(min, max) of the input and of every op output over the calibration samples."""
    import torch

    ranges: dict[str, list[float]] = {}
    for i in range(0, len(samples), batch):
        env = run_float(g, torch.from_numpy(np.ascontiguousarray(samples[i:i + batch], dtype=np.float32)))
        for k, v in env.items():
            lo, hi = float(v.min()), float(v.max())
            r = ranges.setdefault(k, [lo, hi])
            r[0], r[1] = min(r[0], lo), max(r[1], hi)
    return {k: (v[0], v[1]) for k, v in ranges.items()}


def quantize_graph(g: QGraph, ranges: dict[str, tuple[float, float]]) -> QGraph:
    """Fill activation qparams, int8 weights, int32 biases and requantization multipliers (in place)."""
    qp = g.qparams
    qp[g.input] = activation_qparams(*ranges[g.input])
    for op in g.ops:
        s_in, _ = qp[op.inputs[0]]
        if op.kind in ("maxpool", "avgpool", "flatten"):
            qp[op.output] = qp[op.inputs[0]]  # TFLite: pools and reshapes keep their input's quantization
            continue
        qp[op.output] = activation_qparams(*ranges[op.output])
        s_out, _ = qp[op.output]
        if op.kind in ("conv", "dense"):
            op.w_q, op.w_scale = weight_qparams(op.weight)
            acc_scale = np.float64(s_in) * op.w_scale.astype(np.float64)
            op.b_q = np.clip(np.round(op.bias / acc_scale), -(2 ** 31), 2 ** 31 - 1).astype(np.int32)
            mults = [quantize_multiplier(float(s)) for s in acc_scale / s_out]
        else:  # add
            s2 = qp[op.inputs[1]][0]
            twice_max = 2.0 * max(s_in, s2)
            mults = [quantize_multiplier(s_in / twice_max), quantize_multiplier(s2 / twice_max),
                     quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * s_out))]
        op.multiplier = np.array([m for m, _ in mults], dtype=np.int32)
        op.shift = np.array([s for _, s in mults], dtype=np.int8)
    return g


# ---------------------------------------------------------------- the integer reference (TFLite arithmetic)

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
            xa = torch.from_numpy((a - zp_in).astype(np.float64))
            w = torch.from_numpy(op.w_q.astype(np.float64))
            if op.kind == "conv":  # float64 holds these integer sums exactly (|acc| < 2^53)
                acc = F.conv2d(xa, w, None, op.attrs["stride"], op.attrs["padding"], 1, op.attrs["groups"])
                bshape = (1, -1, 1, 1)
            else:
                acc = F.linear(xa, w)
                bshape = (1, -1)
            acc = acc.numpy().astype(np.int64) + op.b_q.astype(np.int64).reshape(bshape)
            acc = _wrap32(acc)
            y = multiply_by_quantized_multiplier(acc, op.multiplier.reshape(bshape), op.shift.reshape(bshape))
            y = y + zp_out
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
        env[op.output] = np.clip(y, lo, QMAX).astype(np.int64)
    s, zp = g.qparams[g.output]
    out = dequantize_output(env[g.output], s, zp)
    return (out, env) if return_int else out


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
                y = _float_op(op, env, *weights)
                env[op.output] = y if op.kind in ("maxpool", "flatten") else self.fq(y, op.output)
            return env[self.g.output]

    return QDQModule().eval()
