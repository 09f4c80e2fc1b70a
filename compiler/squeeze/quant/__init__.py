"""Static post-training int8 quantization (TFLite arithmetic): one quantized graph for every backend."""

from edgecc.compiler.squeeze.quant.graph import (
    ADD_LEFT_SHIFT,
    QMAX,
    QMIN,
    QGraph,
    QOp,
    activation_qparams,
    calibrate,
    capture_graph,
    dequantize_output,
    multiply_by_quantized_multiplier,
    qdq_module,
    quantize_graph,
    quantize_input,
    quantize_multiplier,
    rounding_divide_by_pot,
    run_float,
    run_int8,
    srdhm,
    weight_qparams,
)
from edgecc.compiler.squeeze.quant.onnx_export import OPSET, qdq_onnx
from edgecc.compiler.squeeze.quant.stage import (
    INT8_TOLERANCE_STEPS,
    MAX_CALIBRATION_SAMPLES,
    SCHEMES,
    QuantizedModel,
    load_calibration,
    predict_all,
    quantization_report,
    quantize_model,
)

__all__ = [
    "ADD_LEFT_SHIFT", "INT8_TOLERANCE_STEPS", "MAX_CALIBRATION_SAMPLES", "OPSET", "QMAX", "QMIN", "SCHEMES", "QGraph",
    "QOp", "QuantizedModel", "activation_qparams", "calibrate", "capture_graph", "dequantize_output",
    "load_calibration", "multiply_by_quantized_multiplier", "predict_all", "qdq_module", "qdq_onnx",
    "quantization_report", "quantize_graph", "quantize_input", "quantize_model", "quantize_multiplier",
    "rounding_divide_by_pot", "run_float", "run_int8", "srdhm", "weight_qparams",
]
