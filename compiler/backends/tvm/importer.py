"""The Relax import: torch.export (or the Relax ONNX frontend) -> an IRModule, and TVM's unsupported-op
messages turned into UnsupportedOpError.
"""

from __future__ import annotations

import re
import warnings

from edgecc.errors import ModelError, UnsupportedOpError, first_line, require

_ONNX_UNSUPPORTED = re.compile(r"not supported for frontend ONNX: ([\w, ]+)")
_UNSUPPORTED = re.compile(r"Unsupported (?:function types|op|operator)s?:?\s*\[?'?([\w.:]+)")


def _raise_if_unsupported(text: str) -> None:
    m = _UNSUPPORTED.search(text)
    if m:
        raise UnsupportedOpError(m.group(1).strip("'\""), "tvm", suggestion="try --backend iree",
                                 detail="TVM's Relax frontend has no converter for it")


def _raise_onnx_unsupported(e: Exception, model) -> None:
    """UnsupportedOpError naming the ONNX op the Relax ONNX frontend refused or failed to convert."""
    from edgecc.compiler.onnx_input import unsupported_op

    m = _ONNX_UNSUPPORTED.search(str(e))
    if m:
        raise unsupported_op(m.group(1).split(",")[0].strip(), "tvm", model,
                             "TVM's Relax ONNX frontend has no converter for it") from None
    op = _converting_op(e)
    if op:
        raise unsupported_op(op, "tvm", model, f"TVM's Relax ONNX frontend failed on it: "
                             f"{type(e).__name__}: {first_line(e, 160)}") from None


def _converting_op(e: Exception) -> str:
    """The ONNX op the frontend was converting when it raised `e` (its converter loop's `op_name`), or ''."""
    tb, op = e.__traceback__, ""
    while tb is not None:
        if tb.tb_frame.f_code.co_name in ("_construct_nodes", "_convert_operator"):
            op = tb.tb_frame.f_locals.get("op_name", op) or op
        tb = tb.tb_next
    return op if isinstance(op, str) else ""


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
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Renaming name 0 to input_0": TVM's own names, not the user's
                mod = from_onnx(onnx.load(str(model.onnx_path)), shape_dict=shapes, dtype_dict=dtypes)
        except Exception as e:
            _raise_onnx_unsupported(e, model)
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
