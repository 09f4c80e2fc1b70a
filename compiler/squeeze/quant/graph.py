"""The quantizable graph: captured from PyTorch with torch.fx, BatchNorm folded, ReLU fused, then quantized.

    capture_graph      torch.fx trace -> a small graph of conv / dense / add / maxpool / avgpool / flatten,
                       BatchNorm folded into the conv before it, ReLU fused into the op before it
    run_float          the captured graph in fp32 (what calibration observes)
    quantize_graph     per-channel symmetric int8 weights (scale max|w|/127, zero point 0), per-tensor asymmetric
                       int8 activations (scale (max-min)/255, range widened to hold 0), int32 biases at
                       scale s_in*s_w, fixed-point requantization multipliers (TFLite's QuantizeMultiplier)
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np

from edgecc.compiler.squeeze.quant.arithmetic import (
    ADD_LEFT_SHIFT,
    activation_qparams,
    quantize_multiplier,
    weight_qparams,
)
from edgecc.errors import UnsupportedOpError


@dataclass
class QOp:
    """One op of the quantizable graph. kind: conv | dense | add | maxpool | avgpool | flatten."""

    kind: str
    inputs: list[str]
    output: str
    attrs: dict = field(default_factory=dict)  # conv: stride, padding, groups; pools: kernel, stride, padding
    relu: bool = False
    relu6: bool = False  # with relu: the output also clamped at 6.0 (ReLU6), at its quantized value in int8
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


# ---------------------------------------------------------------- capture (torch.fx)

def capture_graph(module, example_input) -> QGraph:
    """Trace `module` (an nn.Module) with torch.fx into a QGraph: BN folded into convs, ReLUs fused.

    Example: `g = capture_graph(resnet8, torch.randn(1, 3, 32, 32)); [op.kind for op in g.ops]`.
    """
    import torch
    from torch.fx.passes.shape_prop import ShapeProp

    gm = torch.fx.symbolic_trace(module)
    ShapeProp(gm).propagate(example_input)
    capture = _Capture(dict(gm.named_modules()))
    for node in gm.graph.nodes:
        capture.visit(node)
    return capture.graph()


def _shape(node) -> tuple[int, ...]:
    return tuple(int(d) for d in node.meta["tensor_meta"].shape)


class _Capture:
    """One capture in progress: the ops so far and which graph tensor each fx node became (folded BatchNorms and
    fused ReLUs become the tensor of the op they were folded into)."""

    def __init__(self, modules: dict):
        self.modules = modules
        self.ops: list[QOp] = []
        self.name_of: dict[str, str] = {}  # fx node name -> tensor name
        self.producer: dict[str, QOp] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.graph_in = self.graph_out = None

    def graph(self) -> QGraph:
        if self.graph_out not in self.producer:
            raise UnsupportedOpError("identity output", "int8 quantization")
        for op in self.ops:
            if op.weight is not None:
                op.weight, op.bias = op.weight.astype(np.float32), op.bias.astype(np.float32)
        return QGraph(self.graph_in, self.graph_out, self.ops, self.shapes)

    def new(self, node, kind, inputs, **kw) -> QOp:
        out = f"t{len(self.ops)}"
        op = QOp(kind, [self.name_of[a.name] for a in inputs], out, **kw)
        self.ops.append(op)
        self.name_of[node.name] = out
        self.producer[out] = op
        self.shapes[out] = _shape(node)
        return op

    def fuse_into_producer(self, arg, what):
        src = self.name_of[arg.name]
        op = self.producer.get(src)
        if op is None or len(arg.users) != 1 or op.relu:
            raise UnsupportedOpError(what, "int8 quantization", "quantize a model whose " + what +
                                     " follows a conv/linear/add used only there")
        return op, src

    def as_relu(self, node, arg, six: bool = False) -> None:
        what = "relu6" if six else "relu"
        op, src = self.fuse_into_producer(arg, what)
        if op.kind not in ("conv", "dense", "add"):
            raise UnsupportedOpError(what, "int8 quantization", detail=f"after {op.kind}, not a conv/linear/add")
        op.relu, op.relu6 = True, six
        self.name_of[node.name] = src

    def visit(self, node) -> None:
        if node.op == "placeholder":
            if self.graph_in is not None:
                raise UnsupportedOpError("second input", "int8 quantization", detail="one-input models only")
            self.graph_in = self.name_of[node.name] = "input"
            self.shapes["input"] = _shape(node)
        elif node.op == "output":
            res = node.args[0]
            if isinstance(res, (tuple, list)):
                if len(res) != 1:
                    raise UnsupportedOpError("several outputs", "int8 quantization")
                res = res[0]
            self.graph_out = self.name_of[res.name]
        elif node.op == "call_module":
            self.call_module(node, self.modules[node.target], node.args[0])
        elif not self.call_function(node):
            raise UnsupportedOpError(str(getattr(node.target, "__name__", node.target)), "int8 quantization",
                                     "compile it in fp32 (without --quantize)")

    def call_module(self, node, m, x) -> None:
        from torch import nn

        if isinstance(m, nn.Conv2d):
            self.conv(node, m, x)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            self.fold_batchnorm(node, m, x)
        elif isinstance(m, nn.ReLU):
            self.as_relu(node, x)
        elif isinstance(m, nn.ReLU6) or (isinstance(m, nn.Hardtanh) and (m.min_val, m.max_val) == (0.0, 6.0)):
            self.as_relu(node, x, six=True)
        elif isinstance(m, nn.Linear):
            bias = m.bias.detach().numpy() if m.bias is not None else np.zeros(m.out_features, np.float32)
            self.new(node, "dense", [x], weight=m.weight.detach().numpy().astype(np.float64),
                     bias=bias.astype(np.float64))
        elif isinstance(m, nn.MaxPool2d):
            k, s, p = (_pair(v) for v in (m.kernel_size, m.stride or m.kernel_size, m.padding))
            if m.dilation not in (1, (1, 1)) or m.ceil_mode:
                raise UnsupportedOpError("max_pool2d (dilation / ceil_mode)", "int8 quantization")
            self.new(node, "maxpool", [x], attrs={"kernel": k, "stride": s, "padding": p})
        elif isinstance(m, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)) and _is_global_pool(m, _shape(x)):
            self.new(node, "avgpool", [x])
        elif isinstance(m, nn.Flatten) and m.start_dim == 1 and m.end_dim == -1:
            self.new(node, "flatten", [x])
        elif isinstance(m, (nn.Identity, nn.Dropout)):
            self.name_of[node.name] = self.name_of[x.name]
        else:
            raise UnsupportedOpError(type(m).__name__, "int8 quantization", "compile it in fp32 (without --quantize)")

    def conv(self, node, m, x) -> None:
        if m.padding_mode != "zeros" or m.dilation != (1, 1) or isinstance(m.padding, str):
            raise UnsupportedOpError("conv2d (dilation / padding mode)", "int8 quantization")
        bias = m.bias.detach().numpy() if m.bias is not None else np.zeros(m.out_channels, np.float32)
        self.new(node, "conv", [x], attrs={"stride": tuple(m.stride), "padding": tuple(m.padding), "groups": m.groups},
                 weight=m.weight.detach().numpy().astype(np.float64), bias=bias.astype(np.float64))

    def fold_batchnorm(self, node, m, x) -> None:
        op, src = self.fuse_into_producer(x, "batchnorm")
        if (op.kind, m.__class__.__name__) not in (("conv", "BatchNorm2d"), ("dense", "BatchNorm1d")) or \
                m.running_var is None or len(_shape(x)) != op.weight.ndim:
            raise UnsupportedOpError(f"{m.__class__.__name__.lower()} after {op.kind}", "int8 quantization",
                                     detail="BatchNorm2d after a conv or BatchNorm1d after a linear only")
        gamma = m.weight.detach().numpy() if m.weight is not None else np.ones(m.num_features)  # affine=False
        beta = m.bias.detach().numpy() if m.bias is not None else np.zeros(m.num_features)
        g = (gamma / np.sqrt(m.running_var.numpy() + m.eps)).astype(np.float64)
        op.weight = op.weight * g.reshape(-1, *[1] * (op.weight.ndim - 1))  # one scale per output channel
        op.bias = (op.bias - m.running_mean.numpy()) * g + beta
        self.name_of[node.name] = src

    def call_function(self, node) -> bool:
        """Capture a function or method call; False when it is not one int8 quantization supports."""
        import torch
        import torch.nn.functional as F

        function, method = node.op == "call_function", node.op == "call_method"
        if function and node.target is F.max_pool2d:
            self.max_pool_function(node)
        elif function and node.target is F.adaptive_avg_pool2d and \
                _pair(node.args[1] if len(node.args) > 1 else node.kwargs["output_size"]) == (1, 1):
            self.new(node, "avgpool", [node.args[0]])
        elif function and node.target in (operator.add, torch.add):
            a, b = node.args[:2]
            if not all(isinstance(v, torch.fx.Node) for v in (a, b)) or _shape(a) != _shape(b):
                raise UnsupportedOpError("add (broadcast or with a constant)", "int8 quantization")
            self.new(node, "add", [a, b])
        elif (function and node.target is torch.flatten) or (
                method and node.target in ("flatten", "view", "reshape")):
            if len(_shape(node)) != 2 or _shape(node)[0] != _shape(node.args[0])[0]:
                raise UnsupportedOpError(f"{node.target} (not a flatten to 2-D)", "int8 quantization")
            self.new(node, "flatten", [node.args[0]])
        elif (function and node.target in (torch.relu, F.relu)) or (method and node.target in ("relu", "relu_")):
            self.as_relu(node, node.args[0])
        elif function and node.target is F.relu6:
            self.as_relu(node, node.args[0], six=True)
        else:
            return False
        return True

    def max_pool_function(self, node) -> None:
        kw = dict(zip(("kernel_size", "stride", "padding", "dilation", "ceil_mode"), node.args[1:], strict=False),
                  **node.kwargs)
        k = _pair(kw["kernel_size"])
        if _pair(kw.get("dilation", 1)) != (1, 1) or kw.get("ceil_mode") or kw.get("return_indices"):
            raise UnsupportedOpError("max_pool2d (dilation / ceil_mode)", "int8 quantization")
        self.new(node, "maxpool", [node.args[0]], attrs={"kernel": k, "stride": _pair(kw.get("stride") or k),
                                                         "padding": _pair(kw.get("padding", 0))})


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _is_global_pool(m, in_shape) -> bool:
    from torch import nn

    if isinstance(m, nn.AdaptiveAvgPool2d):
        return _pair(m.output_size) == (1, 1)
    return _pair(m.kernel_size) == tuple(in_shape[2:]) and m.padding in (0, (0, 0))


# ---------------------------------------------------------------- fp32 run, quantization

def run_float(g: QGraph, x) -> dict:
    """Every tensor of the fp32 graph on a batch `x` (torch float32 NCHW)."""
    import torch

    env = {g.input: x}
    with torch.no_grad():
        for op in g.ops:
            weights = (torch.from_numpy(op.weight), torch.from_numpy(op.bias)) if op.kind in ("conv", "dense") else ()
            env[op.output] = float_op(op, env, *weights)
    return env


def float_op(op: QOp, env: dict, weight=None, bias=None):
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
    if op.relu6:
        return torch.clamp(y, 0.0, 6.0)
    return torch.relu(y) if op.relu else y


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
