"""The squeeze stage: model -> model transforms before a backend compiles (today: `--quantize int8`, quant/)."""

from edgecc.compiler.squeeze.quant import (
    INT8_TOLERANCE_STEPS,
    MAX_CALIBRATION_SAMPLES,
    SCHEMES,
    QuantizedModel,
    load_calibration,
    predict_all,
    quantization_report,
    quantize_model,
)

__all__ = ["INT8_TOLERANCE_STEPS", "MAX_CALIBRATION_SAMPLES", "SCHEMES", "QuantizedModel", "load_calibration",
           "predict_all", "quantization_report", "quantize_model"]
