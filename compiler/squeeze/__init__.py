"""The squeeze stage: model -> model transforms before a backend compiles (`--squeeze`: spec.py, pipeline.py,
prune.py, lowrank.py, distill.py, profile.py; `--quantize int8`: quant/)."""

from edgecc.compiler.squeeze.distill import DistillOptions, distill
from edgecc.compiler.squeeze.lowrank import factorize_lowrank
from edgecc.compiler.squeeze.pipeline import SqueezeResult, run_squeeze, squeeze_table
from edgecc.compiler.squeeze.profile import layer_costs, model_costs, profile_bundle
from edgecc.compiler.squeeze.prune import prune_channels
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
from edgecc.compiler.squeeze.spec import StageSpec, parse_squeeze, resolve_squeeze

__all__ = ["INT8_TOLERANCE_STEPS", "MAX_CALIBRATION_SAMPLES", "SCHEMES", "DistillOptions", "QuantizedModel",
           "SqueezeResult", "StageSpec", "distill", "factorize_lowrank", "layer_costs", "load_calibration",
           "model_costs", "parse_squeeze", "predict_all", "profile_bundle", "prune_channels", "quantization_report",
           "quantize_model", "resolve_squeeze", "run_squeeze", "squeeze_table"]
