"""ONNX normalization: any exporter's file made into one form that ONNX Runtime (the reference) and every backend's
importer read the same way.

    normalized = normalize_onnx(Path("model.onnx"))   # -> NormalizedOnnx(path=<work file>, opset=9, ...)

The steps, in order: external-data files loaded (only from inside the model's folder), initializers dropped from
the graph inputs (old exporters list every weight as an input too), the default-domain opset upgraded to
TARGET_OPSET with `onnx.version_converter`, the inputs' shapes fixed (from --input-shape where given), shape
inference, and the graph named `main`, the entry-point name every backend uses. The normalized model is written
to a work file that the reference and the backends read (LoadedModel.onnx_path); the original is never changed.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgecc.errors import ModelError, UnsupportedOpError, first_line, require

# What iree-import-onnx (torch-mlir's ONNX lowering: opset-9 MaxPool has none), TVM's Relax ONNX frontend and
# ONNX Runtime all read; older files are upgraded to it. ORT refuses opset-6 BatchNormalization, for example.
TARGET_OPSET = 17
ENTRY_NAME = "main"
_TWO_GB = 2**31 - 2**26  # protobuf's limit, with room for the graph itself


@dataclass
class NormalizedOnnx:
    """The normalized model's work file, what normalizing changed (for the manifest), and its graph."""

    path: Path
    opset: int
    converted_opset: int
    dropped_inputs: int = 0
    external_data: list[str] = field(default_factory=list)
    graph_name: str = ""
    call: str = ""
    proto: object = None

    def manifest(self) -> dict:
        """The manifest's `model.onnx` section."""
        out = {"opset": self.opset, "converted_opset": self.converted_opset}
        if self.dropped_inputs:
            out["initializers_dropped_from_inputs"] = self.dropped_inputs
        if self.external_data:
            out["external_data"] = self.external_data
        if self.graph_name and self.graph_name != ENTRY_NAME:
            out["graph_name"] = self.graph_name
        if self.call:
            out["normalized_by"] = self.call  # the work file the backends' calls name is its output
        return out


def normalize_onnx(path: Path, input_shapes=None) -> NormalizedOnnx:
    """Load, check and normalize the ONNX file `path`; write the result to a work file (removed at exit)."""
    onnx = require("onnx", "onnx", "reading ONNX models")
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ModelError(f"{path} is not a valid ONNX model: {first_line(e)}") from e
    external = load_external_data(proto, path)
    try:
        onnx.checker.check_model(proto if proto.ByteSize() < _TWO_GB else str(path))
    except Exception as e:
        raise ModelError(f"{path} is not a valid ONNX model: {first_line(e)}") from e
    training = sorted({n.op_type for n in proto.graph.node if n.domain == "ai.onnx.preview.training"})
    if training:
        raise ModelError(f"{path} holds training ops ({', '.join(training)}, domain ai.onnx.preview.training); edgecc "
                         "compiles inference graphs: export the model for inference")
    opset = default_opset(proto)
    if opset < 7:
        channel_prelu_slopes(proto)
    proto = upgrade_opset(proto, opset, path)  # before the inputs are dropped: IR 3 needs initializers as inputs
    dropped = drop_initializer_inputs(proto)
    if input_shapes:
        set_input_shapes(proto.graph, input_shapes, path)
    graph_name = proto.graph.name
    proto.graph.name = ENTRY_NAME
    proto = infer_shapes(proto, path)
    out = _work_dir() / f"{_safe_stem(path)}.onnx"
    _save(proto, out)
    shapes = f", input_shapes={[list(s) for s in input_shapes]}" if input_shapes else ""
    call = f"edgecc.compiler.onnx_input.normalize_onnx(Path({str(path)!r}){shapes}) -> {out}"
    return NormalizedOnnx(out, opset, default_opset(proto), dropped, external, graph_name, call, proto)


def default_opset(proto) -> int:
    """The model's default-domain ("" or ai.onnx) opset version."""
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise ModelError("the ONNX model imports no default-domain opset (opset_import has no '' entry)")


def load_external_data(proto, path: Path) -> list[str]:
    """Read the tensors stored in external files into `proto`; the files' names. A location that is absolute or
    leads out of the model's folder (`../`, a symlink) is refused: a model file must not make edgecc read (and
    embed in a bundle) any other file of this machine."""
    from onnx import external_data_helper as edh

    base = path.resolve().parent
    locations = []
    for tensor in edh._get_all_tensors(proto):
        if not edh.uses_external_data(tensor):
            continue
        info = {e.key: e.value for e in tensor.external_data}
        loc = info.get("location", "")
        target = (base / loc).resolve()
        if not loc or os.path.isabs(loc) or not target.is_relative_to(base):
            raise ModelError(f"{path}: tensor {tensor.name!r} has its data at {loc!r}, outside the model's folder; "
                             "edgecc reads external data only from files beside the model")
        if not target.is_file():
            raise ModelError(f"{path}: tensor {tensor.name!r} has its data in {loc!r}, which does not exist; "
                             "copy that file next to the model")
        locations.append(loc)
    if locations:
        try:
            edh.load_external_data_for_model(proto, str(base))
        except Exception as e:
            raise ModelError(f"{path}: cannot read its external data: {first_line(e)}") from e
    return sorted(set(locations))


def drop_initializer_inputs(proto) -> int:
    """Remove the graph inputs that are initializers (weights, which exporters before IR 4 listed as inputs too);
    how many were removed. The model's inputs are then only what a caller feeds."""
    graph = proto.graph
    initializers = {i.name for i in graph.initializer}
    keep = [i for i in graph.input if i.name not in initializers]
    dropped = len(graph.input) - len(keep)
    if dropped:
        del graph.input[:]
        graph.input.extend(keep)
        proto.ir_version = max(proto.ir_version, 4)  # IR 4 is where initializers stopped being inputs
    return dropped


def upgrade_opset(proto, opset: int, path: Path):
    """The model at TARGET_OPSET when it is older (newer models are left as they are)."""
    if opset >= TARGET_OPSET:
        return proto
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(proto, TARGET_OPSET)
    except Exception as e:
        ops = sorted({n.op_type for n in proto.graph.node})
        raise ModelError(f"{path}: cannot upgrade ONNX opset {opset} to {TARGET_OPSET} (onnx.version_converter: "
                         f"{first_line(e, 200)}); ops: {', '.join(ops)}; re-export the model at opset "
                         f"{TARGET_OPSET}") from e
    # the converter keeps IR 3, under which its new initializers (Pad's pads, ...) would have to be inputs too
    from onnx import helper

    converted.ir_version = max(proto.ir_version, converted.ir_version,
                               helper.find_min_ir_version_for(list(converted.opset_import)))
    return converted


def channel_prelu_slopes(proto) -> int:
    """Before opset 7, a PRelu slope of shape [C] applied per channel (axis 1); from 7 on it broadcasts numpy-style
    (against the last axis), and onnx.version_converter leaves it as it is. Reshape such slopes (initializers) to
    [C, 1, ...] so the upgraded model computes what the original did; how many were reshaped."""
    from onnx import shape_inference

    try:
        shapes = shape_inference.infer_shapes(proto)
    except Exception:
        return 0
    ranks = {v.name: len(v.type.tensor_type.shape.dim)
             for v in [*shapes.graph.input, *shapes.graph.value_info] if v.type.tensor_type.HasField("shape")}
    inits = {i.name: i for i in proto.graph.initializer}
    n = 0
    for node in proto.graph.node:
        if node.op_type != "PRelu" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        slope, rank = inits[node.input[1]], ranks.get(node.input[0], 0)
        if len(slope.dims) == 1 and slope.dims[0] > 1 and rank > 2:
            slope.dims.extend([1] * (rank - 2))
            for inp in proto.graph.input:  # the same weight listed as an input (IR 3) gets the same shape
                if inp.name == slope.name:
                    for _ in range(rank - 2):
                        inp.type.tensor_type.shape.dim.add().dim_value = 1
            n += 1
    return n


def set_input_shapes(graph, input_shapes, path: Path) -> None:
    """Fix the inputs' dimensions to `input_shapes` (one per input, in order)."""
    if len(input_shapes) != len(graph.input):
        raise ModelError(f"--input-shape given {len(input_shapes)} time(s), {path} has {len(graph.input)} input(s) "
                         f"({', '.join(i.name for i in graph.input)}); give one per input, in order")
    for inp, shape in zip(graph.input, input_shapes, strict=True):
        dims = inp.type.tensor_type.shape.dim
        del dims[:]
        for d in shape:
            dims.add().dim_value = int(d)


def input_dims(inp) -> list:
    """An input's dimensions: ints, the symbolic names of dynamic ones, '?' for unnamed ones."""
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in inp.type.tensor_type.shape.dim]


def infer_shapes(proto, path: Path):
    from onnx import shape_inference

    try:
        if proto.ByteSize() < _TWO_GB:
            return shape_inference.infer_shapes(proto, data_prop=True)
    except Exception as e:
        raise ModelError(f"{path}: ONNX shape inference fails on it: {first_line(e, 300)}") from e
    return proto  # too large for in-memory inference: the importers infer what they need


def _save(proto, out: Path) -> None:
    import onnx

    if proto.ByteSize() < _TWO_GB:
        onnx.save(proto, str(out))
    else:
        onnx.save(proto, str(out), save_as_external_data=True, location=out.name + ".data")


def _safe_stem(path: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "_-." else "-" for c in path.stem).lstrip(".-")
    return stem[:100] or "model"


_WORK: list[Path] = []


def _work_dir() -> Path:
    """A fresh folder for one normalized model, removed when the process exits."""
    d = Path(tempfile.mkdtemp(prefix="edgecc-onnx-"))
    if not _WORK:
        atexit.register(lambda: [shutil.rmtree(p, ignore_errors=True) for p in _WORK])
    _WORK.append(d)
    return d


def unsupported_op(op: str, backend: str, model, why: str) -> UnsupportedOpError:
    """The one-line refusal of an ONNX op: the op, the opset it was read at, the backend, and the backend that
    converts it where one is known to."""
    info = getattr(model, "onnx_info", None) or {}
    opset = info.get("converted_opset")
    at = f"ONNX opset {opset}" + (f", converted from {info['opset']}" if info.get("opset") not in (None, opset)
                                  else "") if opset else "ONNX"
    if backend != "tvm" and tvm_converts(op):
        suggestion = "--backend tvm converts it (TVM's Relax ONNX frontend)"
    else:
        suggestion = "try --backend " + ("iree" if backend == "tvm" else "tvm")
    return UnsupportedOpError(f"ONNX {op}", backend, suggestion=suggestion, detail=f"{at}; {why}")


def tvm_converts(op: str) -> bool:
    """Whether TVM's Relax ONNX frontend has a converter for `op` (False when TVM is not installed)."""
    try:
        from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map
    except Exception:
        return False
    return op in _get_convert_map()
