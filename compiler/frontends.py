"""Frontends: turn a model source into a LoadedModel (torch.export is the canonical form).

Accepted sources: a zoo name (`resnet8`), `path/to/file.py:factory` (the factory returns (module, example
inputs)), a `.pt2` ExportedProgram (torch.export.save), an `.onnx` file, or an nn.Module / ExportedProgram given
to the Python API. Pickles (`.pt`, `.pth`, `.pkl`) are refused unless the caller opts in with allow_pickle.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecc.errors import ModelError, first_line, require
from edgecc.validate import check_inputs, flatten_outputs

PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin")


@dataclass
class LoadedModel:
    """A model ready for import by a backend, with example inputs and a reference to compare against."""

    name: str
    kind: str  # "torch" (nn.Module), "exported" (ExportedProgram), "onnx"
    source: str  # what the user gave, for the manifest
    example_inputs: list[np.ndarray]
    input_names: list[str]
    output_names: list[str] = field(default_factory=list)
    task: str = "unknown"  # "classification" enables the top-1 agreement check
    module: Any = None
    onnx_path: Path | None = None
    source_sha256: str = ""
    onnx_info: dict | None = None  # ONNX sources: the original and converted opset, what normalizing did
    input_values: list[dict] = field(default_factory=list)  # how each example input was made (manifest io)
    dataset_name: str = ""  # a zoo model's labelled dataset (models/datasets.py), where accuracy is measured
    precision: str = "fp32"  # what backends get: fp16/bf16 converts the model (compiler/precision.py)
    reference_onnx: Path | None = None  # the f32 ONNX the reference runs, once onnx_path is a demoted copy
    _exported: Any = None
    _demoted: Any = None

    @property
    def reference_name(self) -> str:
        return "onnxruntime" if self.kind == "onnx" else "pytorch"

    def exported_program(self):
        """The torch.export ExportedProgram (exported once, then cached)."""
        if self.kind == "onnx":
            raise ModelError(f"{self.source} is an ONNX model; this backend needs a PyTorch model "
                             "(use a backend with ONNX input: iree or tvm)")
        if self.precision != "fp32":
            if self._demoted is None:
                from edgecc.compiler.precision import demoted_program

                self._demoted = demoted_program(self, self.precision)
            return self._demoted
        return self.exported_program_fp32()

    def exported_program_fp32(self):
        if self._exported is None:
            torch = require("torch", "torch==2.13.0", "exporting a PyTorch model")
            args = tuple(torch.from_numpy(a) for a in self.example_inputs)
            try:
                self._exported = torch.export.export(self.module, args)
            except Exception as e:  # export failures are model problems, reported in one line
                raise ModelError(f"torch.export failed for {self.name}: {first_line(e)}") from e
        return self._exported

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Outputs of the original model (PyTorch eager, or ONNX Runtime for .onnx sources)."""
        self.check_inputs(inputs)
        if self.kind == "onnx":
            ort = require("onnxruntime", "onnxruntime", "running the ONNX reference")
            opts = ort.SessionOptions()
            opts.log_severity_level = 4  # its errors come back as the exception, said once in one line
            sess = ort.InferenceSession(str(self.reference_onnx or self.onnx_path), opts,
                                        providers=["CPUExecutionProvider"])
            return [np.asarray(o) for o in sess.run(None, dict(zip(self.input_names, inputs, strict=True)))]
        import torch

        fn = self.module if self.module is not None else self._exported.module()
        with torch.no_grad():
            out = fn(*[torch.from_numpy(np.ascontiguousarray(a)) for a in inputs])
        return [t.detach().numpy() for t in flatten_outputs(out)]

    def save_artifacts(self, folder: Path) -> None:
        """Write the files a squeeze stage made of this model into the bundle folder: none for a loaded model."""

    def check_inputs(self, inputs: list[np.ndarray]) -> None:
        """ModelError unless inputs match the example inputs in count, shape and dtype."""
        check_inputs(inputs, [(a.shape, a.dtype) for a in self.example_inputs], self.input_names)

    def io_spec(self, outputs: list[np.ndarray]) -> dict:
        return {
            "inputs": [{"name": n, "shape": list(a.shape), "dtype": str(a.dtype),
                        **({"values": v} if v else {})}
                       for n, a, v in zip(self.input_names, self.example_inputs,
                                          self.input_values or [{}] * len(self.input_names), strict=True)],
            "outputs": [{"name": n, "shape": list(o.shape), "dtype": str(o.dtype)}
                        for n, o in zip(self.output_names, outputs, strict=True)],
        }


def load_model(source, example_inputs=None, input_shapes=None, name: str | None = None,
               allow_pickle: bool = False, input_ranges=()) -> LoadedModel:
    """Load any accepted model source. Example: `load_model("resnet8")`, `load_model("net.py:build")`.
    `input_ranges` (edgecc.compiler.inputs.InputRange) replace the example inputs by values in those ranges."""
    try:
        model = _load_model(source, example_inputs, input_shapes, name, allow_pickle, input_ranges)
        if input_ranges and model.kind != "onnx" and not isinstance(source, LoadedModel):
            _fit_torch_inputs(model, input_ranges)
        return model
    except MemoryError:
        shapes = " ".join("x".join(map(str, s)) for s in input_shapes or ())
        raise ModelError(f"out of memory loading {source}" + (f" with input shape(s) {shapes}" if shapes else "")
                         + "; use smaller --input-shape values") from None


def _fit_torch_inputs(model: LoadedModel, ranges) -> None:
    """Regenerate a PyTorch model's example inputs in the --input-range ranges (integer inputs that index an
    embedding take its vocabulary where no range names them)."""
    from edgecc.compiler.inputs import check_ranges, embedding_ranges_torch, fit_inputs

    check_ranges(ranges, model.input_names)
    auto = {model.input_names[i]: r for i, r in embedding_ranges_torch(model.exported_program()).items()}
    arrays, descs = fit_inputs(model.input_names, [(a.shape, a.dtype) for a in model.example_inputs], ranges, auto)
    try:
        model.reference(arrays)
    except Exception as e:
        raise ModelError(f"model {model.name} fails on inputs in the given --input-range: {first_line(e)}") from e
    model.example_inputs, model.input_values = arrays, descs


def _load_model(source, example_inputs, input_shapes, name, allow_pickle, input_ranges=()) -> LoadedModel:
    if isinstance(source, LoadedModel):
        return source
    if not isinstance(source, (str, Path)):
        return _from_object(source, example_inputs, name or type(source).__name__.lower())
    text = str(source)
    path = Path(text)
    if text.endswith(".onnx"):
        return _from_onnx(path, input_shapes, name, input_ranges)
    if ".py:" in text:
        return _from_factory(text, input_shapes, name)
    if text.endswith(".pt2"):
        return _from_pt2(path, name, allow_pickle, input_ranges)
    if text.endswith(PICKLE_SUFFIXES):
        if not allow_pickle:
            raise ModelError(f"{text} is a pickle; edgecc does not unpickle model files by default (it can run "
                             "arbitrary code). Save with torch.export.save(...) to a .pt2, or pass --allow-pickle "
                             "if you trust the file")
        return _from_pickle(path, input_shapes, name)
    if "/" in text or "." in Path(text).name:
        if not path.exists():
            raise ModelError(f"model file {text} does not exist")
        raise ModelError(f"{text} is not a model source edgecc reads; give a zoo name, file.py:factory, "
                         ".pt2 or .onnx")
    from edgecc.models import get_model

    spec = get_model(text)
    module, inputs = spec.factory()
    model = _from_object(module, inputs, name or spec.name, task=spec.task, source=text)
    model.input_values = [{"source": f"the zoo's example input for {spec.name}"}] * len(model.input_names)
    model.dataset_name = spec.dataset
    return _reshape(model, input_shapes) if input_shapes else model


def _from_object(obj, example_inputs, name, task="unknown", source="<python object>") -> LoadedModel:
    torch = require("torch", "torch==2.13.0", "loading a PyTorch model")
    if example_inputs is None:
        raise ModelError(f"model {name} needs example inputs (a tuple of tensors) to be exported")
    if isinstance(example_inputs, (torch.Tensor, np.ndarray)):
        example_inputs = (example_inputs,)
    arrays = [np.ascontiguousarray(t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t))
              for t in example_inputs]
    if isinstance(obj, torch.export.ExportedProgram):
        names = [s.arg.name for s in obj.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
        model = LoadedModel(name, "exported", source, arrays, names, task=task, _exported=obj)
    elif isinstance(obj, torch.nn.Module):
        obj = obj.eval()
        model = LoadedModel(name, "torch", source, arrays, [f"input_{i}" for i in range(len(arrays))], task=task,
                            module=obj)
    else:
        raise ModelError(f"{source}: expected a torch.nn.Module or ExportedProgram, got {type(obj).__name__}")
    try:
        outputs = model.reference(arrays)
    except ModelError:
        raise
    except (Exception, SystemExit) as e:
        raise ModelError(f"model {name} fails on its example inputs "
                         f"{[list(a.shape) for a in arrays]}: {first_line(e)}") from e
    model.output_names = [f"output_{i}" for i in range(len(outputs))]
    if task == "unknown" and len(outputs) == 1 and outputs[0].ndim == 2 and outputs[0].shape[1] > 1:
        model.task = "classification"
    return model


def _reshape(model: LoadedModel, input_shapes) -> LoadedModel:
    if len(input_shapes) != len(model.example_inputs):
        raise ModelError(f"--input-shape given {len(input_shapes)} time(s), the model has "
                         f"{len(model.example_inputs)} input(s)")
    from edgecc.compiler.inputs import embedding_ranges_torch, fit_inputs

    auto = {model.input_names[i]: r for i, r in embedding_ranges_torch(model.exported_program()).items()}
    arrays, descs = fit_inputs(model.input_names, [(s, a.dtype) for s, a in zip(input_shapes, model.example_inputs,
                                                                               strict=True)], (), auto)
    reshaped = _from_object(model.module, arrays, model.name, model.task, model.source)
    reshaped.input_values = descs
    return reshaped


def _from_factory(text: str, input_shapes, name) -> LoadedModel:
    file, _, func = text.rpartition(":")
    path = Path(file)
    if not path.is_file():
        raise ModelError(f"model file {file} does not exist")
    spec = importlib.util.spec_from_file_location(f"edgecc_user_model_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    try:
        spec.loader.exec_module(mod)
    except SystemExit as e:  # a factory module that exits must not end edgecc silently with its status
        raise ModelError(f"importing {file} called sys.exit({e.code!r}); a model file must define a factory, "
                         "not run a script") from None
    except Exception as e:
        raise ModelError(f"importing {file} failed: {first_line(e)}") from e
    if not callable(getattr(mod, func, None)):
        raise ModelError(f"{file} has no function {func!r}; define {func}() returning (module, example_inputs)")
    try:
        result = getattr(mod, func)()
    except SystemExit as e:
        raise ModelError(f"factory {text} called sys.exit({e.code!r}); it must return (module, example_inputs)") \
            from None
    except Exception as e:
        raise ModelError(f"factory {text} raised {type(e).__name__}: {first_line(e)}") from e
    if not (isinstance(result, tuple) and len(result) == 2):
        raise ModelError(f"factory {text} must return (module, example_inputs), got {type(result).__name__}")
    model = _from_object(result[0], result[1], name or path.stem.replace("_", "-"), source=text)
    model.source_sha256 = _sha256(path)
    model.input_values = [{"source": f"the example inputs {func}() returned"}] * len(model.input_names)
    return _reshape(model, input_shapes) if input_shapes else model


def _from_pt2(path: Path, name, allow_pickle: bool = False, input_ranges=()) -> LoadedModel:
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    torch = require("torch", "torch==2.13.0", "loading a .pt2 model")
    import logging
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path} is not a readable .pt2 ExportedProgram: not a zip archive "
                         "(save one with torch.export.save)")
    log = logging.getLogger("torch.export")
    level, log.level = log.level, logging.CRITICAL  # torch logs its own traceback before raising
    refused: list[str] = []
    try:
        with contextlib.nullcontext() if allow_pickle else _weights_only(torch, refused):
            ep = torch.export.load(str(path))
    except Exception as e:
        if not refused:
            raise ModelError(f"{path} is not a readable .pt2 ExportedProgram: {first_line(e)}") from e
    finally:
        log.setLevel(level)
    if refused:
        raise ModelError(f"{path} holds pickled data ({refused[0]}) that only unpickling can read, and unpickling "
                         "can run arbitrary code: edgecc does not unpickle by default. Re-save it with "
                         "torch.export.save from plain tensors, or pass --allow-pickle if you trust the file")
    from edgecc.compiler.inputs import check_ranges, embedding_ranges_torch, fit_inputs

    user = [s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    specs = []
    for n in user:
        val = nodes[n].meta.get("val") if n in nodes else None
        if val is None:
            raise ModelError(f"{path}: input {n} has no recorded shape; re-export with torch.export")
        specs.append((tuple(int(d) for d in val.shape), np.dtype(str(val.dtype).removeprefix("torch."))))
    check_ranges(input_ranges, user)
    auto = {user[i]: r for i, r in embedding_ranges_torch(ep).items()}
    arrays, descs = fit_inputs(user, specs, input_ranges, auto)
    model = _from_object(ep, [torch.from_numpy(a) for a in arrays], name or path.stem, source=str(path))
    model.source_sha256 = _sha256(path)
    model.input_values = descs
    return model


class _PickleRefused(Exception):
    pass


@contextlib.contextmanager
def _weights_only(torch, refused: list):
    """While torch.export.load runs: torch.load only with weights_only=True (tensors and plain containers, no
    code), and the archive's other unpicklers refused. Anything refused is appended to `refused`, so a caller
    that catches the exception inside torch still cannot turn it into a silent fallback."""
    from torch.export.pt2_archive import _package

    real_load, real_pickle_obj, real_pickle = torch.load, torch._C._pickle_load_obj, _package.pickle

    def refuse(what):
        def fn(*args, **kwargs):
            refused.append(what)
            raise _PickleRefused(what)
        return fn

    def load(f, *args, weights_only=None, **kwargs):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the weights-only unpickler's note on pickle protocols
                return real_load(f, *args, weights_only=True, **kwargs)
        except Exception as e:
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
            refuse(f"a pickle that calls {found.group(1)}" if found else "a pickle that is not plain tensors")()

    class _NoPickle:
        loads = load = staticmethod(refuse("a pickled Python object"))

    torch.load, torch._C._pickle_load_obj, _package.pickle = load, refuse("a TorchScript object"), _NoPickle
    try:
        yield
    finally:
        torch.load, torch._C._pickle_load_obj, _package.pickle = real_load, real_pickle_obj, real_pickle


def _from_pickle(path: Path, input_shapes, name) -> LoadedModel:
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    torch = require("torch", "torch==2.13.0", "loading a pickled model")
    if not input_shapes:
        raise ModelError(f"{path}: a pickled module carries no input shape; pass --input-shape")
    try:
        module = torch.load(str(path), weights_only=False)
    except Exception as e:
        raise ModelError(f"{path} is not a loadable torch pickle: {first_line(e)}") from e
    rng = np.random.default_rng(1)
    model = _from_object(module, [rng.standard_normal(s).astype(np.float32) for s in input_shapes],
                         name or path.stem, source=str(path))
    model.source_sha256 = _sha256(path)
    return model


ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
               9: np.bool_, 10: np.float16, 11: np.float64}


def _onnx_type_name(elem_type: int) -> str:
    try:
        from onnx import TensorProto

        return TensorProto.DataType.Name(elem_type).lower()
    except (ImportError, ValueError):
        return "non-numeric"


def _from_onnx(path: Path, input_shapes, name, input_ranges=()) -> LoadedModel:
    from edgecc.compiler.inputs import check_ranges, embedding_ranges_onnx, fit_inputs, nonfinite, onnx_test_data
    from edgecc.compiler.onnx_input import input_dims, normalize_onnx

    normalized = normalize_onnx(path, input_shapes)
    graph = normalized.proto.graph
    rng = np.random.default_rng(1)
    specs, names = [], []
    for inp in graph.input:
        tt = inp.type.tensor_type
        dims = input_dims(inp)
        if any(not isinstance(d, int) or d <= 0 for d in dims):
            shown = "x".join(str(d) for d in dims)
            raise ModelError(f"{path}: input {inp.name!r} has dynamic shape {shown}; pass --input-shape with the "
                             f"sizes to compile for (one per input, in order), e.g. --input-shape "
                             + "x".join(str(d) if isinstance(d, int) and d > 0 else "1" for d in dims))
        dtype = ONNX_DTYPES.get(tt.elem_type)
        if dtype is None:
            kind = _onnx_type_name(tt.elem_type)
            raise ModelError(f"{path}: input {inp.name!r} is a {kind} tensor (ONNX element type {tt.elem_type}); "
                             "edgecc compiles numeric inputs: bool, int8-64, uint8/16, float16/32/64")
        specs.append((tuple(dims), np.dtype(dtype)))
        names.append(inp.name)
    check_ranges(input_ranges, names)
    given = None if input_ranges else onnx_test_data(path, names, specs)
    if given is not None:
        arrays, descs = given[0], [{"source": f"{Path(given[1]).name}/input_{i}.pb beside the model"}
                                   for i in range(len(names))]
    else:
        arrays, descs = fit_inputs(names, specs, input_ranges, embedding_ranges_onnx(graph))
    model = LoadedModel(name or path.stem, "onnx", str(path), arrays, names, onnx_path=normalized.path,
                        source_sha256=_sha256(path), onnx_info=normalized.manifest(), input_values=descs)
    try:
        outputs = model.reference(arrays)
        if nonfinite(outputs) and not input_ranges:
            # e.g. Sqrt or Pow of normal samples (or of the test data's, which expect NaN): positive floats instead,
            # where they give finite outputs
            positive = [rng.uniform(0.1, 1.0, a.shape).astype(a.dtype) if np.issubdtype(a.dtype, np.floating)
                        else a for a in arrays]
            retry = model.reference(positive)
            if not nonfinite(retry):
                model.example_inputs, outputs = positive, retry
                why = f"{'the test data' if given else 'standard normal samples'} gave non-finite outputs"
                model.input_values = [{"source": "generated", "distribution": "uniform", "range": [0.1, 1.0],
                                       "range_from": why}
                                      if np.issubdtype(a.dtype, np.floating) else d for a, d in zip(arrays, descs,
                                                                                                   strict=True)]
    except Exception as e:
        why = first_line(e).replace(str(normalized.path), str(path))  # the user's file, not the work copy
        raise ModelError(f"{path} fails in ONNX Runtime on inputs {[list(a.shape) for a in arrays]}: {why}") from e
    model.output_names = [o.name for o in graph.output]
    if len(outputs) == 1 and outputs[0].ndim == 2 and outputs[0].shape[1] > 1:
        model.task = "classification"
    return model


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
