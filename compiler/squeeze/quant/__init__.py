"""Static post-training int8 quantization (TFLite arithmetic): one quantized graph for every backend.

    arithmetic.py   Q31 multipliers, fixed-point requantization, int8 quantization parameters
    graph.py        capture (torch.fx), BatchNorm folding, ReLU fusion, the quantized graph
    calibration.py  calibration samples and min/max observers
    reference.py    the numpy int8 interpreter and the fake-quant PyTorch reference
    onnx_export.py  the QDQ ONNX model IREE and TVM compile
    stage.py        quantize_model, predict_all, quantization_report: the stage the driver runs
"""

from edgecc.compiler.squeeze.quant.arithmetic import (
    ADD_LEFT_SHIFT,
    QMAX,
    QMIN,
    activation_max,
    activation_qparams,
    dequantize_output,
    multiply_by_quantized_multiplier,
    quantize_input,
    quantize_multiplier,
    rounding_divide_by_pot,
    srdhm,
    weight_qparams,
    wrap_int32,
)
from edgecc.compiler.squeeze.quant.calibration import MAX_CALIBRATION_SAMPLES, calibrate, load_calibration
from edgecc.compiler.squeeze.quant.graph import QGraph, QOp, capture_graph, float_op, quantize_graph, run_float
from edgecc.compiler.squeeze.quant.onnx_export import OPSET, qdq_onnx
from edgecc.compiler.squeeze.quant.reference import qdq_module, run_int8
from edgecc.compiler.squeeze.quant.stage import (
    INT8_TOLERANCE_STEPS,
    ONNX_FILE,
    SCHEMES,
    QuantizedModel,
    predict_all,
    quantization_report,
    quantize_model,
)

__all__ = [
    "ADD_LEFT_SHIFT", "INT8_TOLERANCE_STEPS", "MAX_CALIBRATION_SAMPLES", "ONNX_FILE", "OPSET", "QMAX", "QMIN",
    "SCHEMES", "QGraph", "QOp", "QuantizedModel", "activation_max", "activation_qparams", "calibrate", "capture_graph",
    "dequantize_output", "float_op", "load_calibration", "multiply_by_quantized_multiplier", "predict_all",
    "qdq_module", "qdq_onnx", "quantization_report", "quantize_graph", "quantize_input", "quantize_model",
    "quantize_multiplier", "rounding_divide_by_pot", "run_float", "run_int8", "srdhm", "weight_qparams", "wrap_int32",
]
