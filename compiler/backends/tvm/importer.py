"""The Relax import: torch.export (or the Relax ONNX frontend) -> an IRModule, and TVM's unsupported-op
messages turned into UnsupportedOpError.
"""

from __future__ import annotations

import re

from edgecc.errors import ModelError, UnsupportedOpError, first_line, require

_UNSUPPORTED = re.compile(r"Unsupported (?:function types|op|operator)s?:?\s*\[?'?([\w.:]+)")


def _raise_if_unsupported(text: str) -> None:
    m = _UNSUPPORTED.search(text)
    if m:
        raise UnsupportedOpError(m.group(1).strip("'\""), "tvm", suggestion="try --backend iree",
                                 detail="TVM's Relax frontend has no converter for it")


def import_relax(model):
    """torch.export (or the Relax ONNX frontend) -> a Relax IRModule; returns (mod, the exact call, for the
    manifest). Example: `mod, call = import_relax(load_model("resnet8"))`."""
    require("tvm", "apache-tvm==0.27.0.post1", "the TVM backend")
    if model.kind == "onnx":
        import onnx
        from tvm.relax.frontend.onnx import from_onnx

        shapes = {n: list(a.shape) for n, a in zip(model.input_names, model.example_inputs, strict=True)}
        dtypes = {n: str(a.dtype) for n, a in zip(model.input_names, model.example_inputs, strict=True)}
        try:
            mod = from_onnx(onnx.load(str(model.onnx_path)), shape_dict=shapes, dtype_dict=dtypes)
        except Exception as e:
            _raise_if_unsupported(str(e))
            raise ModelError(f"TVM's ONNX frontend could not import {model.name}: {first_line(e, 300)}") from e
        return mod, f"tvm.relax.frontend.onnx.from_onnx(onnx.load({str(model.onnx_path)!r}), shape_dict={shapes})"
    from tvm.relax.frontend.torch import from_exported_program

    from edgecc.compiler.backends.tvm.torch_rewrites import prepare_for_relax

    try:
        mod = from_exported_program(prepare_for_relax(model.exported_program()), keep_params_as_input=False)
    except Exception as e:
        _raise_if_unsupported(str(e))
        raise ModelError(f"TVM's Relax frontend could not import {model.name}: {first_line(e, 300)}") from e
    return mod, f"tvm.relax.frontend.torch.from_exported_program(torch.export.export(<{model.name}>, inputs))"
