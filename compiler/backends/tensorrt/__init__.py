"""The TensorRT backend (docs/architecture.md): backend.py (compile), export.py (ONNX at the target's opset),
ops.py (the op table check), plan.py (the engine build plan, trtexec flags), device_scripts.py."""

from edgecc.compiler.backends.tensorrt.backend import TensorRTBackend
from edgecc.compiler.backends.tensorrt.export import export_onnx
from edgecc.compiler.backends.tensorrt.ops import check_onnx_ops, load_op_table
from edgecc.compiler.backends.tensorrt.plan import (
           OPTIONS,
           PRECISIONS,
           make_plan,
           trtexec_build_flags,
           trtexec_run_flags,
)

__all__ = ["OPTIONS", "PRECISIONS", "TensorRTBackend", "check_onnx_ops", "export_onnx", "load_op_table", "make_plan",
           "trtexec_build_flags", "trtexec_run_flags"]
