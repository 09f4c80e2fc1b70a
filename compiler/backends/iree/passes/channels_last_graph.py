"""Whole-graph channels-last rewrite of an exported PyTorch model, done before any compiler sees it.

PyTorch graphs are NCHW. IREE's own channels-last pass converts each convolution to NHWC between transposes and
then propagates the transposes; on MobileNetV2 that leaves every 1x1 convolution with its filter as F×C (the
reduction dimension innermost) and, where it tried other forms, kept activations channels-first around the
depthwise layers. Here the graph is made NHWC once, at the ATen level, so there is nothing left to propagate:

- BatchNorm after a convolution is folded into the convolution's weights (eval mode only);
- a 1x1 convolution (stride s: a strided slice first) becomes a matmul of the [N·H·W, C] activations with a
  constant C×F weight: linalg.matmul, which IREE tiles (and data-tiles) as a GEMM;
- other convolutions and pooling pad in NHWC and run between a pair of permutes, which cancel against the
  ones edgecc's NHWC rewrite (nhwc_convs.py) and IREE's channels-last pass put around them;
- elementwise ops run in whichever layout their inputs have; `linear` gets a constant K×N weight;
- anything else gets its inputs back in NCHW, so every op the pass does not know stays correct.

Measured on the 2-core Zen 5 host, one thread (README "Host speed"). The result is checked against the original
graph on the example inputs before it is used; a mismatch or an export failure leaves the model as it was.

Example::

    ep2, stats = channels_last(ep, example_args)   # stats: {"matmuls": 35, "convs": 18, ...}
"""

from __future__ import annotations

import math

import torch
from torch import fx

aten = torch.ops.aten
_TO_NHWC, _TO_NCHW = [0, 2, 3, 1], [0, 3, 1, 2]
# elementwise ops that are correct in any layout when every 4-D tensor operand has the same one
_UNARY = {aten.relu.default, aten.relu_.default, aten.hardtanh.default, aten.hardtanh_.default,
          aten.clamp.default, aten.clamp_.default, aten.sigmoid.default, aten.silu.default, aten.silu_.default,
          aten.gelu.default, aten.hardswish.default, aten.hardswish_.default, aten.hardsigmoid.default,
          aten.leaky_relu.default, aten.tanh.default, aten.dropout.default, aten.clone.default}
_BINARY = {aten.add.Tensor, aten.add_.Tensor, aten.mul.Tensor, aten.mul_.Tensor, aten.sub.Tensor,
           aten.div.Tensor}
_OUT_OF_PLACE = {aten.relu_.default: aten.relu.default, aten.hardtanh_.default: aten.hardtanh.default,
                 aten.clamp_.default: aten.clamp.default, aten.silu_.default: aten.silu.default,
                 aten.hardswish_.default: aten.hardswish.default, aten.add_.Tensor: aten.add.Tensor,
                 aten.mul_.Tensor: aten.mul.Tensor}


class _Rewriter:
    def __init__(self, gm: fx.GraphModule):
        self.gm, self.graph = gm, fx.Graph()
        self.graph._codegen = gm.graph._codegen
        self.env: dict[fx.Node, fx.Node] = {}   # old node -> new node (in its layout)
        self.nhwc: set[fx.Node] = set()          # new nodes that hold NHWC 4-D tensors
        self.rank4: set[fx.Node] = set()         # new nodes that hold 4-D tensors (either layout)
        self.other: dict[fx.Node, fx.Node] = {}  # new node -> the same tensor in the other layout
        self.folded: dict[fx.Node, fx.Node] = {}  # BatchNorm node -> the convolution it was folded into
        self.consts = 0
        self.stats = {"matmuls": 0, "convs": 0, "pools": 0, "folded_batchnorms": 0, "nchw_fallbacks": 0}

    # --- helpers -------------------------------------------------------------------------------------------
    def const(self, t: torch.Tensor) -> fx.Node:
        name = f"_edgecc_nhwc_const{self.consts}"
        self.consts += 1
        self.gm.register_buffer(name, t.detach().contiguous().clone())
        return self.graph.get_attr(name)

    def call(self, op, *args) -> fx.Node:
        return self.graph.call_function(op, args)

    def as_layout(self, n, want_nhwc: bool):
        if not isinstance(n, fx.Node) or (n in self.nhwc) == want_nhwc or n not in self.rank4:
            return n
        if n not in self.other:
            t = self.call(aten.permute.default, n, _TO_NHWC if want_nhwc else _TO_NCHW)
            self.mark(t, nhwc=want_nhwc)
            self.other[n], self.other[t] = t, n
        return self.other[n]

    def mark(self, n: fx.Node, nhwc: bool) -> fx.Node:
        """Record that new node `n` holds a 4-D tensor, in NHWC or NCHW."""
        self.rank4.add(n)
        if nhwc:
            self.nhwc.add(n)
        return n

    def pad_nhwc(self, xin: fx.Node, pad: list[int], value: float) -> fx.Node:
        """`xin` (NHWC) padded by pad = [top/bottom, left/right] with `value`."""
        return self.mark(self.call(aten.constant_pad_nd.default, xin, [0, 0, pad[1], pad[1], pad[0], pad[0]], value),
                         nhwc=True)

    def value(self, old) -> torch.Tensor | None:
        """The constant tensor behind a get_attr node, or None."""
        if isinstance(old, fx.Node) and old.op == "get_attr":
            obj = self.gm
            for part in old.target.split("."):
                obj = getattr(obj, part)
            return obj if isinstance(obj, torch.Tensor) else None
        return None

    # --- ops -----------------------------------------------------------------------------------------------
    def conv2d(self, node: fx.Node):
        x, w, b, stride, pad, dil, groups = _arguments(node, "input", "weight", "bias", "stride", "padding",
                                                       "dilation", "groups")
        weight, bias = self.value(w), self.value(b) if b is not None else None
        if weight is None or (b is not None and bias is None) or not isinstance(pad, (list, tuple)):
            return None
        stride, pad, dil = _pair(stride), _pair(pad), _pair(dil)
        f = weight.shape[0]
        bias = torch.zeros(f, dtype=weight.dtype) if bias is None else bias
        bn = _sole_batchnorm_user(node)
        if bn is not None:
            bw, bb, bm, bv, eps = _arguments(bn, "weight", "bias", "running_mean", "running_var", "eps")
            weight, bias = _fold_batchnorm(weight, bias, *(self.value(a) for a in (bw, bb, bm, bv)), eps)
            self.folded[bn] = node
            self.stats["folded_batchnorms"] += 1
        xin = self.env[x]
        n_, c = _shape(x)[:2]
        kh, kw = weight.shape[2:]
        if (kh, kw) == (1, 1) and groups == 1 and pad == [0, 0] and dil == [1, 1] and not _next_to_dense_conv(node):
            y = self.as_layout(xin, True)
            if stride != [1, 1]:
                for dim, s in ((1, stride[0]), (2, stride[1])):
                    y = self.call(aten.slice.Tensor, y, dim, 0, None, s)
            oh, ow = _shape(node)[2:]
            y = self.call(aten.reshape.default, y, [n_ * oh * ow, c])
            y = self.call(aten.addmm.default, self.const(bias), y, self.const(weight.reshape(f, c).t()))
            y = self.call(aten.reshape.default, y, [n_, oh, ow, f])
            y = self.mark(y, nhwc=True)
            self.stats["matmuls"] += 1
        else:
            if xin in self.nhwc and pad != [0, 0]:
                xin, pad = self.pad_nhwc(xin, pad, 0.0), [0, 0]
            y = self.call(aten.conv2d.default, self.as_layout(xin, False), self.const(weight), self.const(bias),
                          stride, pad, dil, groups)
            y = self.as_layout(self.mark(y, nhwc=False), True)
            self.stats["convs"] += 1
        return y

    def max_pool2d(self, node: fx.Node):
        x, k, stride, pad, dil, ceil = _arguments(node, "self", "kernel_size", "stride", "padding", "dilation",
                                                  "ceil_mode")
        xin = self.env[x]
        if xin not in self.nhwc or ceil or _pair(dil) != [1, 1]:
            return None
        pad = _pair(pad)
        if pad != [0, 0]:
            xin = self.pad_nhwc(xin, pad, -math.inf)
        y = self.call(aten.max_pool2d.default, self.as_layout(xin, False), k, stride or k, [0, 0])
        self.stats["pools"] += 1
        return self.as_layout(self.mark(y, nhwc=False), True)

    def global_pool(self, node: fx.Node):
        x, size = node.args[0], node.args[1]
        xin = self.env[x]
        if xin not in self.nhwc or list(size) != [1, 1]:
            return None
        # N×1×1×C: the same memory as NCHW N×C×1×1
        return self.mark(self.call(aten.mean.dim, xin, [1, 2], True), nhwc=True)

    def flatten(self, node: fx.Node):
        x = node.args[0]
        xin = self.env[x]
        if xin not in self.nhwc or _shape(x)[2:] != [1, 1] or tuple(node.args[1:]) not in ((1,), (1, -1), (1, 3)):
            return None
        return self.call(aten.reshape.default, xin, [_shape(x)[0], _shape(x)[1]])

    def linear(self, node: fx.Node):
        x, w, b = _arguments(node, "input", "weight", "bias")
        weight, bias = self.value(w), self.value(b) if b is not None else None
        if weight is None or (b is not None and bias is None) or len(_shape(x)) != 2:
            return None
        bias = torch.zeros(weight.shape[0], dtype=weight.dtype) if bias is None else bias
        return self.call(aten.addmm.default, self.const(bias), self.env[x], self.const(weight.t()))

    def batchnorm(self, node: fx.Node):
        if node in self.folded:
            return self.env[self.folded[node]]
        x, w, b, mean, var, training, eps = _arguments(node, "input", "weight", "bias", "running_mean",
                                                       "running_var", "training", "eps")
        vals = [self.value(a) for a in (w, b, mean, var)]
        xin = self.env[x]
        if training or any(v is None for v in vals) or xin not in self.nhwc:
            return None
        scale = vals[0] / torch.sqrt(vals[3] + eps)
        y = self.call(aten.mul.Tensor, xin, self.const(scale))
        y = self.call(aten.add.Tensor, self.mark(y, nhwc=True), self.const(vals[1] - vals[2] * scale))
        return self.mark(y, nhwc=True)

    def elementwise(self, node: fx.Node):
        tensors = [a for a in node.args if isinstance(a, fx.Node)]
        if not any(self.env[a] in self.nhwc for a in tensors) or not all(_is4d(a) for a in tensors):
            return None
        args = [self.as_layout(self.env[a], True) if isinstance(a, fx.Node) else a for a in node.args]
        y = self.graph.call_function(_OUT_OF_PLACE.get(node.target, node.target), tuple(args), dict(node.kwargs))
        return self.mark(y, nhwc=True)

    def fallback(self, node: fx.Node) -> fx.Node:
        if any(isinstance(a, fx.Node) and self.env[a] in self.nhwc for a in node.all_input_nodes):
            self.stats["nchw_fallbacks"] += 1
        new = self.graph.node_copy(node, lambda a: self.as_layout(self.env[a], False))
        if _is4d(node):
            self.mark(new, nhwc=False)
        return new

    def run(self) -> fx.GraphModule:
        handlers = {aten.conv2d.default: self.conv2d, aten.max_pool2d.default: self.max_pool2d,
                    aten.adaptive_avg_pool2d.default: self.global_pool, aten.flatten.using_ints: self.flatten,
                    aten.linear.default: self.linear, aten.batch_norm.default: self.batchnorm}
        for node in self.gm.graph.nodes:
            if node.op == "output":
                self.graph.output(fx.node.map_arg(node.args[0], lambda a: self.as_layout(self.env[a], False)))
                continue
            new = None
            if node.op == "call_function":
                handler = handlers.get(node.target)
                if handler is None and (node.target in _UNARY or node.target in _BINARY):
                    handler = self.elementwise
                new = handler(node) if handler else None
            if new is None:
                new = self.fallback(node)
            self.env[node] = new
        gm = fx.GraphModule(self.gm, self.graph)
        gm.graph.eliminate_dead_code()
        gm.recompile()
        return gm


def channels_last(ep, args: tuple, rtol: float = 1e-3):
    """(ExportedProgram, stats): `ep` rewritten to NHWC (see the module docstring), or `ep` itself with
    stats["skipped"] saying why when the rewrite does not apply or does not reproduce the original outputs."""
    try:
        gm = ep.module()
        rw = _Rewriter(gm)
        new_gm = rw.run()
        stats = rw.stats
        if not (stats["matmuls"] or stats["convs"]):
            return ep, {"skipped": "no convolutions to rewrite"}
        with torch.no_grad():  # gm's own graph is untouched by the rewrite (it only gained constants)
            ref, got = gm(*args), new_gm(*args)
        ref, got = torch.utils._pytree.tree_leaves(ref), torch.utils._pytree.tree_leaves(got)
        for r, g in zip(ref, got, strict=True):
            scale = float(r.abs().max()) if r.numel() else 0.0
            if r.shape != g.shape or float((r - g).abs().max()) > rtol * max(scale, 1e-6):
                return ep, {"skipped": "the NHWC graph's outputs differ from the original's"}
        return torch.export.export(new_gm, args), stats
    except Exception as e:  # the rewrite is an optimization: any failure keeps the original graph
        return ep, {"skipped": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"}


def _arguments(node: fx.Node, *names: str) -> list:
    """The named arguments of an ATen call, positional or keyword, defaults filled in."""
    schema = node.target._schema
    values = {a.name: a.default_value for a in schema.arguments if a.has_default_value()}
    values.update({a.name: v for a, v in zip(schema.arguments, node.args, strict=False)})
    values.update(node.kwargs)
    return [values.get(n) for n in names]


def _shape(n: fx.Node) -> list[int]:
    return [int(d) for d in n.meta["val"].shape]


def _is4d(n) -> bool:
    val = n.meta.get("val") if isinstance(n, fx.Node) else None
    return isinstance(val, torch.Tensor) and val.dim() == 4


def _pair(v) -> list[int]:
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    return [int(v[0]), int(v[-1])]


def _is_dense_conv(node) -> bool:
    if not isinstance(node, fx.Node) or node.target != aten.conv2d.default:
        return False
    weight = node.args[1].meta.get("val") if isinstance(node.args[1], fx.Node) else None
    return weight is not None and _arguments(node, "groups")[0] == 1 and tuple(weight.shape[2:]) != (1, 1)


def _next_to_dense_conv(node: fx.Node) -> bool:
    """Whether the 1x1 convolution `node` reads from or feeds a dense k>1 convolution directly (through BatchNorm
    and elementwise ops only). Such a 1x1 convolution stays a convolution: as a matmul next to a data-tiled 3x3
    convolution, IREE fused the reshapes and pads between them into the packed convolution, which then ran at half
    speed (ResNet-50's bottlenecks: 48.5 -> 55.5 ms, one thread)."""
    passthrough = _UNARY | {aten.batch_norm.default}
    src = node.args[0]
    while isinstance(src, fx.Node) and src.target in passthrough:
        src = src.args[0]
    if _is_dense_conv(src):
        return True
    while len(node.users) == 1:
        (node,) = node.users
        if node.target not in passthrough:
            return _is_dense_conv(node)
    return False


def _sole_batchnorm_user(node: fx.Node) -> fx.Node | None:
    users = list(node.users)
    if len(users) == 1 and users[0].target == aten.batch_norm.default and users[0].args[0] is node \
            and not _arguments(users[0], "training")[0]:
        return users[0]
    return None


def _fold_batchnorm(weight, bias, gamma, beta, mean, var, eps):
    if any(v is None for v in (gamma, beta, mean, var)):
        raise ValueError("BatchNorm with non-constant parameters")
    scale = gamma / torch.sqrt(var + eps)
    return weight * scale.reshape(-1, 1, 1, 1), beta + (bias - mean) * scale

