"""The quantized graph as a QDQ ONNX model: int8 weights + QuantizeLinear/DequantizeLinear around every activation.

This is the form the host backends take int8 models in. IREE imports it with iree-import-onnx; torch-mlir turns
DequantizeLinear -> Conv/Gemm with int8 operands into integer convolutions and matmuls (i8 x i8 -> i32
accumulation, bias folded to i32) followed by a float requantization. TVM's Relax ONNX frontend imports it as
relax quantize/dequantize around float operators (int8 values, fp32 arithmetic).

    proto = qdq_onnx(graph)       # an onnx.ModelProto, checked
"""

from __future__ import annotations

import numpy as np

from edgecc.compiler.squeeze.quant.graph import QGraph

OPSET = 17


def qdq_onnx(g: QGraph, name: str = "model"):
    """Build the QDQ ONNX model of a quantized QGraph (float32 input and output, NCHW)."""
    import onnx
    from onnx import TensorProto, helper

    b = _Builder(g)
    b.qdq("input", g.input, f"{g.input}_dq")
    for i, op in enumerate(g.ops):
        y = f"{op.output}_f"
        b.float_node(i, op, f"{op.inputs[0]}_dq", y)
        if op.relu6:
            lo, hi = b.const(f"{y}_min", np.array(0.0, np.float32)), b.const(f"{y}_max", np.array(6.0, np.float32))
            b.nodes.append(helper.make_node("Clip", [y, lo, hi], [y + "_relu6"]))
            y += "_relu6"
        elif op.relu:
            b.nodes.append(helper.make_node("Relu", [y], [y + "_relu"]))
            y += "_relu"
        # after maxpool / flatten this Q/DQ pair (same qparams as the input) changes no value; it is there so the
        # next conv / matmul sees a DequantizeLinear operand, which torch-mlir needs to make it an integer op
        b.qdq(y, op.output, f"{op.output}_dq")
    b.nodes.append(helper.make_node("Identity", [f"{g.output}_dq"], ["output"]))
    graph = helper.make_graph(
        b.nodes, name.replace("-", "_"),
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(g.shapes[g.input]))],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, list(g.shapes[g.output]))], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgecc")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


class _Builder:
    """The nodes and initializers of the QDQ graph, in the order they are made."""

    def __init__(self, g: QGraph):
        self.g = g
        self.nodes, self.inits = [], []

    def const(self, cname, value):
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(value), cname))
        return cname

    def qdq(self, src, tensor, out):
        """QuantizeLinear -> DequantizeLinear of `src` with the qparams of graph tensor `tensor`."""
        from onnx import helper

        s, zp = self.g.qparams[tensor]
        sn = self.const(f"{tensor}_scale", np.array(s, np.float32))
        zn = self.const(f"{tensor}_zp", np.array(zp, np.int8))
        self.nodes.append(helper.make_node("QuantizeLinear", [src, sn, zn], [f"{tensor}_q"]))
        self.nodes.append(helper.make_node("DequantizeLinear", [f"{tensor}_q", sn, zn], [out]))

    def float_node(self, i: int, op, a: str, y: str) -> None:
        """The float ONNX op of graph op `i` from dequantized input `a` into `y` (weights dequantized from int8)."""
        from onnx import helper

        if op.kind in ("conv", "dense"):
            s_in = self.g.qparams[op.inputs[0]][0]
            wq = self.const(f"w{i}_q", op.w_q)
            ws = self.const(f"w{i}_scale", op.w_scale.astype(np.float32))
            wz = self.const(f"w{i}_zp", np.zeros(op.w_q.shape[0], np.int8))
            self.nodes.append(helper.make_node("DequantizeLinear", [wq, ws, wz], [f"w{i}"], axis=0))
            b = self.const(f"b{i}", (op.b_q.astype(np.float64) * s_in * op.w_scale.astype(np.float64))
                           .astype(np.float32))
            if op.kind == "conv":
                (ph, pw), st = op.attrs["padding"], op.attrs["stride"]
                node = helper.make_node("Conv", [a, f"w{i}", b], [y], strides=list(st), pads=[ph, pw, ph, pw],
                                        group=op.attrs["groups"])
            else:
                node = helper.make_node("Gemm", [a, f"w{i}", b], [y], transB=1)
        elif op.kind == "add":
            node = helper.make_node("Add", [a, f"{op.inputs[1]}_dq"], [y])
        elif op.kind == "maxpool":
            (kh, kw), st, (ph, pw) = op.attrs["kernel"], op.attrs["stride"], op.attrs["padding"]
            node = helper.make_node("MaxPool", [a], [y], kernel_shape=[kh, kw], strides=list(st),
                                    pads=[ph, pw, ph, pw])
        elif op.kind == "avgpool":
            node = helper.make_node("GlobalAveragePool", [a], [y])
        else:
            node = helper.make_node("Flatten", [a], [y], axis=1)
        self.nodes.append(node)
