"""Fold inference BatchNorm into the convolution or dense layer in front of it.

TVM's `FoldBatchnormToConv2D` only matches `conv2d → batch_norm`. Models with a bias between them
(`conv2d → add(bias) → batch_norm`, what ONNX exporters and `nn.Conv2d(bias=True)` give) and `nn.Linear →
BatchNorm1d` (the MLPerf Tiny anomaly detector) keep a per-element subtract, divide, multiply and add in the
fused kernel. Folding rewrites the constants once at compile time, so the kernel is `conv2d + add` and the
divide is gone.

    y = gamma * (W x + b - mean) / sqrt(var + eps) + beta
      = (W * s) x + (b - mean) * s + beta,     s = gamma / sqrt(var + eps)

Only constant weights and statistics are folded; anything else is left as it was.
"""

from __future__ import annotations

import numpy as np


def _np(c):
    return c.value.numpy().astype(np.float64)


def _patterns():
    from tvm.relax.dpl import TupleGetItemPattern, is_const, is_op, wildcard

    x, w, b = wildcard(), is_const(), is_const()
    conv = is_op("relax.nn.conv2d")(x, w)
    wt = is_op("relax.permute_dims")(w)
    dense = is_op("relax.matmul")(x, wt) | is_op("relax.matmul")(x, w)
    layer = conv | dense
    biased = is_op("relax.add")(layer, b) | is_op("relax.add")(b, layer)
    stats = [is_const() for _ in range(4)]
    bn = is_op("relax.nn.batch_norm")(layer | biased, *stats)
    return TupleGetItemPattern(bn, 0), dict(x=x, w=w, b=b, conv=conv, wt=wt, bn=bn, stats=stats)


def _scale_shift(bn_call, stats, matches, channels: int):
    gamma, beta, mean, var = (_np(matches[s]) for s in stats)
    if gamma.shape != (channels,):
        return None
    s = gamma / np.sqrt(var + float(bn_call.attrs["epsilon"]))
    return s, beta - mean * s


def _fold(expr, matches, p):
    from tvm import relax

    bn_call = matches[p["bn"]]
    w = _np(matches[p["w"]])
    bias = _np(matches[p["b"]]).reshape(-1) if p["b"] in matches else None
    if p["conv"] in matches:
        conv = matches[p["conv"]]
        if conv.attrs["kernel_layout"] != "OIHW" or conv.attrs["data_layout"] != "NCHW" or bn_call.attrs["axis"] != 1:
            return expr
        channels = w.shape[0]
    else:
        if w.ndim != 2 or bn_call.attrs["axis"] not in (1, -1) or len(bn_call.args[0].ty.shape) != 2:
            return expr
        transposed = p["wt"] in matches  # matmul(x, permute_dims(W)): W is (out, in), nn.Linear's layout
        channels = w.shape[0] if transposed else w.shape[1]
    folded = _scale_shift(bn_call, p["stats"], matches, channels)
    if folded is None or (bias is not None and bias.size not in (1, channels)):
        return expr
    s, shift = folded
    if bias is not None:
        shift = shift + bias * s
    dtype = str(matches[p["w"]].value.dtype)
    x = matches[p["x"]]
    if p["conv"] in matches:
        new_w = relax.const((w * s.reshape(-1, 1, 1, 1)).astype(dtype))
        out = relax.Call(conv.op, (x, new_w), conv.attrs)
        shift = shift.reshape(1, -1, 1, 1)
    else:
        new_w = relax.const((w * s.reshape(-1, 1) if transposed else w * s.reshape(1, -1)).astype(dtype))
        out = relax.op.matmul(x, relax.op.permute_dims(new_w) if transposed else new_w, out_dtype=dtype)
        shift = shift.reshape(1, -1)
    return relax.op.add(out, relax.const(shift.astype(dtype)))


def fold_batchnorm(mod):
    """Return `mod` with every constant `conv2d|matmul [+ bias] → batch_norm` folded into the layer's weights.

    Example:
        mod, _ = import_relax(load_model("vww-mobilenetv1"))
        mod = fold_batchnorm(mod)      # no R.nn.batch_norm left in main
    """
    import tvm
    from tvm import relax
    from tvm.relax.dpl import rewrite_call

    pattern, parts = _patterns()
    mod = relax.transform.FoldConstant()(mod)  # a bias arrives as reshape(const): make it one constant
    out = tvm.IRModule()
    for gv, func in mod.functions.items():
        if isinstance(func, relax.Function):
            func = rewrite_call(pattern, lambda e, m: _fold(e, m, parts), func)
        out[gv] = func
    return out.with_attrs(mod.attrs) if mod.attrs else out
