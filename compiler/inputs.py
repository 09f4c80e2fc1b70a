"""Inputs that fit the model: value ranges (`--input-range`), integer inputs bounded by the embedding table they
index, boolean masks, and the ONNX test models' own `test_data_set_0`.

A random-normal sample is negative half the time and never a valid token id; these are the inputs a model is meant
for. What was used for each input is recorded (`describe`) and lands in the manifest's `io.inputs[i].values`.

    >>> parse_input_range("0:1"), parse_input_range("ids=0:30521")            # doctest: +SKIP
    (InputRange(name='', low=0.0, high=1.0), InputRange(name='ids', low=0.0, high=30521.0))
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecc.errors import UsageError

# integer inputs with nothing known about them: small non-negative values (valid indices for most gathers)
DEFAULT_INT_RANGE = (0, 2)


@dataclass(frozen=True)
class InputRange:
    """`--input-range [NAME=]LOW:HIGH`: uniform floats in [LOW, HIGH), integers in [LOW, HIGH] (both ends)."""

    name: str  # "" applies to every input
    low: float
    high: float

    def text(self) -> str:
        return f"{self.name + '=' if self.name else ''}{_num(self.low)}:{_num(self.high)}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


_RANGE = re.compile(r"(?:(?P<name>[^=]+)=)?(?P<low>[^:=]+):(?P<high>[^:=]+)")


def parse_input_range(text: str) -> InputRange:
    """UsageError unless `text` is `LOW:HIGH` or `NAME=LOW:HIGH` with finite LOW < HIGH."""
    m = _RANGE.fullmatch(text.strip())
    if not m:
        raise UsageError(f"--input-range {text!r}: write it as LOW:HIGH (every input) or NAME=LOW:HIGH, e.g. 0:1 "
                         "for images or input_ids=0:30521 for token ids")
    try:
        low, high = float(m["low"]), float(m["high"])
    except ValueError:
        raise UsageError(f"--input-range {text!r}: {m['low']!r} and {m['high']!r} must be numbers, e.g. 0:1") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise UsageError(f"--input-range {text!r}: LOW must be below HIGH and both finite, e.g. 0:1")
    return InputRange((m["name"] or "").strip(), low, high)


def check_ranges(ranges, names: list[str]) -> None:
    """UsageError for a named range whose input the model does not have, or two ranges for one input."""
    seen = set()
    for r in ranges:
        if r.name and r.name not in names:
            raise UsageError(f"--input-range {r.text()}: the model has no input {r.name!r}; its inputs: "
                             f"{', '.join(names)}")
        if r.name in seen:
            raise UsageError(f"--input-range given twice for {r.name or 'every input'}")
        seen.add(r.name)


def range_for(ranges, name: str) -> InputRange | None:
    named = [r for r in ranges if r.name == name]
    return named[0] if named else next((r for r in ranges if not r.name), None)


def generate(rng, shape, dtype, value_range: tuple[float, float] | None, source: str) -> tuple[np.ndarray, dict]:
    """One input of `shape`/`dtype`: floats normal (or uniform in the range), integers in the range (both ends;
    DEFAULT_INT_RANGE without one), booleans half true. (array, description for the manifest)."""
    dtype = np.dtype(dtype)
    shape = tuple(int(d) for d in shape)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(np.bool_), {"distribution": "boolean mask, half true"}
    if np.issubdtype(dtype, np.floating):
        if value_range is None:
            return rng.standard_normal(shape).astype(dtype), {"distribution": "standard normal"}
        low, high = value_range
        return (rng.uniform(low, high, shape).astype(dtype),
                {"distribution": "uniform", "range": [low, high], "range_from": source})
    info = np.iinfo(dtype)
    low, high = value_range if value_range is not None else DEFAULT_INT_RANGE
    low, high = max(int(math.ceil(low)), info.min), min(int(math.floor(high)), info.max)
    if low > high:
        raise UsageError(f"--input-range {value_range}: holds no {dtype} value")
    desc = {"distribution": "uniform integers", "range": [low, high],
            "range_from": source if value_range is not None else "default (nothing bounds this input)"}
    return rng.integers(low, high + 1, shape).astype(dtype), desc


def embedding_ranges_torch(exported) -> dict[int, tuple[int, int]]:
    """{user input position: (0, rows - 1)} for each integer input that indexes an embedding table (through
    view-like ops), from a torch.export ExportedProgram."""
    order = [s.arg.name for s in exported.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    users = set(order)
    passthrough = {"view", "reshape", "unsqueeze", "squeeze", "expand", "clone", "contiguous", "_to_copy", "to",
                   "slice", "alias", "flatten"}
    found: dict[int, tuple[int, int]] = {}
    for node in exported.graph.nodes:
        if node.op != "call_function" or _aten_name(node) != "embedding":
            continue
        weight, src = node.args[0], node.args[1]
        while getattr(src, "op", "") == "call_function" and _aten_name(src) in passthrough:
            src = src.args[0]
        val = getattr(weight, "meta", {}).get("val")
        if val is not None and getattr(src, "name", None) in users:
            rows = int(val.shape[0])
            pos = order.index(src.name)
            found[pos] = (0, min(found.get(pos, (0, rows - 1))[1], rows - 1))
    return found


def _aten_name(node) -> str:
    """'view' for aten.view.default, '' for anything that is not an aten op."""
    parts = str(node.target).split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "aten" else ""


def embedding_ranges_onnx(graph) -> dict[str, tuple[int, int]]:
    """{graph input name: (0, rows - 1)} for each integer input that is the indices of a Gather (axis 0) over an
    initializer or Constant, directly or through Cast / Reshape / Unsqueeze / Squeeze."""
    from onnx import numpy_helper

    shapes = {i.name: tuple(i.dims) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    shapes[n.output[0]] = tuple(numpy_helper.to_array(a.t).shape)
    producer = {o: n for n in graph.node for o in n.output}
    inputs = {i.name for i in graph.input}
    found: dict[str, tuple[int, int]] = {}
    for n in graph.node:
        if n.op_type != "Gather" or len(n.input) < 2 or n.input[0] not in shapes:
            continue
        axis = next((a.i for a in n.attribute if a.name == "axis"), 0)
        if axis != 0 or not shapes[n.input[0]]:
            continue
        src = n.input[1]
        while src in producer and producer[src].op_type in ("Cast", "Reshape", "Unsqueeze", "Squeeze", "Identity"):
            src = producer[src].input[0]
        if src in inputs:
            rows = int(shapes[n.input[0]][0])
            found[src] = (0, min(found.get(src, (0, rows - 1))[1], rows - 1))
    return found


def onnx_test_data(model_path: Path, names: list[str], specs: list[tuple]) -> tuple[list[np.ndarray], str] | None:
    """The inputs of `test_data_set_0/` beside an ONNX test model (input_K.pb TensorProtos), when it has one and its
    tensors match the model's inputs in count, shape and dtype; else None. (inputs, folder)"""
    folder = Path(model_path).parent / "test_data_set_0"
    files = sorted(folder.glob("input_*.pb"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    if not files or len(files) != len(names):
        return None
    arrays = read_tensor_protos(files)
    if arrays is None or any(tuple(a.shape) != tuple(s) or a.dtype != np.dtype(d)
                             for a, (s, d) in zip(arrays, specs, strict=True)):
        return None
    return arrays, str(folder)


def read_tensor_protos(files) -> list[np.ndarray] | None:
    """ONNX TensorProto files (.pb) as arrays; None if one does not parse."""
    import onnx
    from onnx import numpy_helper

    out = []
    for f in files:
        t = onnx.TensorProto()
        try:
            t.ParseFromString(Path(f).read_bytes())
            if t.data_location == onnx.TensorProto.EXTERNAL:
                return None  # external data: never followed from a test folder
            out.append(numpy_helper.to_array(t))
        except Exception:
            return None
    return out


def fit_inputs(names, specs, ranges, auto: dict[str, tuple[int, int]], seed: int = 1):
    """Generated inputs for (shape, dtype) specs: the user's ranges first, then ranges found in the model (`auto`:
    embedding vocabularies), then the defaults. (arrays, descriptions)"""
    rng = np.random.default_rng(seed)
    arrays, descs = [], []
    for name, (shape, dtype) in zip(names, specs, strict=True):
        r = range_for(ranges, name)
        if r is not None:
            if np.dtype(dtype) == np.bool_:
                raise UsageError(f"--input-range {r.text()}: input {name!r} is a boolean mask; it takes no range")
            vr, src = (r.low, r.high), f"--input-range {r.text()}"
        elif name in auto and np.issubdtype(np.dtype(dtype), np.integer):
            vr, src = auto[name], f"embedding table of {auto[name][1] + 1} rows indexed by this input"
        elif "mask" in name.lower() and np.issubdtype(np.dtype(dtype), np.integer):
            vr, src = (0, 1), "an integer input named as a mask"
        else:
            vr, src = None, ""
        a, d = generate(rng, shape, dtype, vr, src)
        arrays.append(a)
        descs.append({"source": "generated", **d})
    return arrays, descs


def nonfinite(outputs) -> bool:
    return not all(np.isfinite(o).all() for o in outputs if np.issubdtype(np.asarray(o).dtype, np.floating))

