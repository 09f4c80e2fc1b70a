"""The model as a linalg-on-tensors module file: torch.export → torch-mlir's FX importer for PyTorch models,
iree-import-onnx for ONNX ones; and the torch-mlir/IREE diagnostics turned into edgecc errors."""

from __future__ import annotations

import re
from pathlib import Path

from edgecc.errors import ModelError, UnsupportedOpError, require
from edgecc.tools import find_tool, repro_line, run_tool

_ILLEGAL_OP = re.compile(r"failed to legalize (?:operation|unresolved materialization)[^']*'([\w.]+)'")
_TORCH_OP = re.compile(r"'?torch\.(aten\.[\w.]+|prims\.[\w.]+)")
_OPERATOR_NAME = re.compile(r'name = "torch\.(aten\.[\w.]+)"')
_LEGALIZE = re.compile(r"failed to legalize operation '(torch\.[\w.]+)'")
_SSA_DEF = re.compile(r"^\s*(%[\w.+-]+) = (torch\.constant\.\w+) (.+)$")


def import_model(model, mlir: Path, workdir: Path, nhwc_graph: bool) -> tuple[str, dict | None]:
    """(repro line, channels-last graph rewrite stats or None): the model imported into `mlir`."""
    if model.kind == "onnx":
        argv = ["iree-import-onnx", str(model.onnx_path), "-o", str(mlir)]
        run_tool(argv, cwd=workdir)
        return repro_line([find_tool("iree-import-onnx")] + argv[1:]), None
    return import_torch(model, mlir, nhwc_graph)


def import_torch(model, mlir: Path, nhwc_graph: bool = False) -> tuple[str, dict | None]:
    """(repro line, channels-last rewrite stats or None): the model as linalg-on-tensors in `mlir`."""
    fx = require("torch_mlir.fx", "torch-mlir", "the IREE backend (torch-mlir FX importer)")
    ep, stats = model.exported_program(), None
    if nhwc_graph:
        import torch

        from .passes.channels_last_graph import channels_last

        ep, stats = channels_last(ep, tuple(torch.from_numpy(a) for a in model.example_inputs))
    _expose_non_persistent_buffers(ep)
    diagnostics: list[str] = []
    try:
        module = fx.export_and_import(ep, output_type="linalg-on-tensors", func_name="main",
                                      fx_importer=_importer(diagnostics))
    except Exception as e:
        op = _failing_torch_op(diagnostics, ep)
        if op:
            raise UnsupportedOpError(op, "iree", suggestion="try --backend tvm",
                                     detail="torch-mlir has no linalg lowering for it") from None
        first = (diagnostics or str(e).strip().splitlines() or ["unknown error"])[0]
        raise ModelError(f"torch-mlir could not import {model.name}: {first[:300]}") from e
    with open(mlir, "w") as f:
        module.operation.print(file=f, large_elements_limit=None, enable_debug_info=False)
    source = f"torch.export.export(<{model.name}>, inputs)"
    if graph_rewritten(stats):
        source = f"edgecc.compiler.backends.iree.passes.channels_last_graph.channels_last({source}, inputs)"
    return (f"torch_mlir.fx.export_and_import({source}, output_type='linalg-on-tensors', func_name='main') "
            f"> {mlir.name}"), stats


def _expose_non_persistent_buffers(ep) -> None:
    """torch.export keeps non-persistent buffers (transformers' BERT `position_ids`, `token_type_ids`) in
    `ep.constants`, but torch-mlir's FX importer reads every buffer from `ep.state_dict` and otherwise stops with
    "Could not find state mapping for buffer": make them persistent (the graph is frozen into constants anyway).
    This changes only which of `ep`'s dicts holds the tensor, not what the program computes."""
    from torch.export.graph_signature import InputKind

    for spec in ep.graph_signature.input_specs:
        if spec.kind == InputKind.BUFFER and spec.persistent is False and spec.target in ep.constants:
            spec.persistent = True
            ep.state_dict[spec.target] = ep.constants.pop(spec.target)


def graph_rewritten(nhwc_graph_stats: dict | None) -> bool:
    """Whether the channels-last graph rewrite ran and was kept (its stats, not a `skipped` reason)."""
    return bool(nhwc_graph_stats) and "skipped" not in nhwc_graph_stats


def entry_signature(mlir: Path) -> str:
    """The line of the imported module that declares its public function ('' if none)."""
    with open(mlir) as f:
        for line in f:
            if re.search(r"func\.func @[\w$.]+\(", line) and "private" not in line.split("@")[0]:
                return line
    return ""


def entry_function(mlir: Path) -> str:
    """The public function of the imported module (`main`: torch-mlir's, and ONNX graphs are renamed to it)."""
    m = re.search(r"func\.func @([\w$.]+)\(", entry_signature(mlir))
    return m.group(1) if m else "main"


def _importer(diagnostics: list[str]):
    """An FxImporter whose MLIR context records diagnostics (torch-mlir prints them to stderr otherwise)."""
    from torch_mlir import ir
    from torch_mlir.dialects import torch as torch_d
    from torch_mlir.extras.fx_importer import FxImporter

    context = ir.Context()
    torch_d.register_dialect(context)

    def handler(d):
        diagnostics.append(d.message)
        return True

    context.attach_diagnostic_handler(handler)
    return FxImporter(context=context)


def _failing_torch_op(diagnostics: list[str], ep) -> str:
    """Name the aten op behind a failed torch → linalg lowering. The diagnostic may name the op itself, or
    only a constant left behind because its consumer failed to lower: then find that consumer in torch IR."""
    text = "\n".join(diagnostics)
    if m := _OPERATOR_NAME.search(text):
        return m.group(1)
    m = _LEGALIZE.search(text)
    if not m:
        return ""
    op = m.group(1)
    if not op.startswith("torch.constant."):
        return op.removeprefix("torch.")
    value = re.search(r"value = ([^:}]+)", text)
    from torch_mlir import fx

    ir_text = str(fx.export_and_import(ep, output_type="torch", func_name="main", fx_importer=_importer([])))
    for line in ir_text.splitlines():
        d = _SSA_DEF.match(line)
        if d and d.group(2) == op and value and _same_constant(d.group(3), value.group(1)):
            use = re.search(rf"= torch\.(aten\.[\w.]+) [^\n]*{re.escape(d.group(1))}\b", ir_text)
            if use:
                return use.group(1)
    return op.removeprefix("torch.")


def _same_constant(a: str, b: str) -> bool:
    try:
        return float(a.split(":")[0]) == float(b.split(":")[0])
    except ValueError:
        return a.strip() == b.strip()


_ONNX_OPERATOR = re.compile(r'torch\.operator "onnx\.(\w+)"')
_MLIR_LOCATION = re.compile(r"([^\s:]+\.mlir):(\d+):\d+: error: (.*?)(?:; repro:|$)")


def raise_if_onnx_op_fails(error: Exception, model, mlir: Path) -> None:
    """For an ONNX model: UnsupportedOpError naming the ONNX op iree-compile failed on. The import holds one
    `torch.operator "onnx.X"` per line, so the error's line in the module names the op; without a location (an
    error in code generation), a model of one op kind names that one."""
    if model.kind != "onnx":
        return
    from edgecc.compiler.onnx_input import unsupported_op

    text = str(error)
    op, why = "", text
    m = _MLIR_LOCATION.search(text)
    if m:
        why = m.group(3)
        lines = mlir.read_text().splitlines() if mlir.is_file() else []
        line = int(m.group(2))
        found = _ONNX_OPERATOR.search(lines[line - 1]) if 0 < line <= len(lines) else None
        op = found.group(1) if found else ""
    if not op:
        kinds = set(_ONNX_OPERATOR.findall(mlir.read_text())) - {"Constant"} if mlir.is_file() else set()
        # a sequence op torch-mlir lowers only in part leaves a constant behind (the error names that, not the op)
        sequence = sorted(k for k in kinds if "Sequence" in k)
        op = kinds.pop() if len(kinds) == 1 else "/".join(sequence)
        why = re.sub(r"^.*?failed \(exit \d+\): ", "", why).split("; repro:")[0]
    if op:
        raise unsupported_op(op, "iree", model, f"iree-compile failed on it: {why.strip()[:200]}") from error


def raise_if_unsupported(text: str, backend: str) -> None:
    m = _ILLEGAL_OP.search(text) or _TORCH_OP.search(text)
    if m and ("legalize" in text or "unsupported" in text.lower() or "not supported" in text.lower()):
        op = m.group(1).removeprefix("torch.")
        raise UnsupportedOpError(op, backend, suggestion="try --backend tvm",
                                 detail="torch-mlir/IREE has no lowering for it")
