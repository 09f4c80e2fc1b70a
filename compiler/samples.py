"""Validation samples a user gives (`--validate-with DIR|FILE.npy|FILE.npz|DATASET`): N input sets checked against
the model's inputs by name, shape and dtype.

Accepted: a dataset name (its held-out split, with labels); an `.npy` array whose first axis indexes the samples
(one-input models); an `.npz` with one such array per input, keyed by input name (or input_0, input_1, ...); a
folder of `.npz` files or `.npy` files (one sample, or a stack of samples, per file), or of ONNX
`test_data_set_*/input_K.pb` folders.

    >>> s = load_samples("digits", ["x"], [((1, 1, 8, 8), "float32")], 8)      # doctest: +SKIP
    >>> len(s.inputs), s.labels[:3]                                             # doctest: +SKIP
    (8, array([6, 9, 3]))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecc.errors import ModelError, UsageError

DEFAULT_SAMPLES = 8


@dataclass
class Samples:
    inputs: list[list[np.ndarray]]  # one list of model inputs per sample
    labels: np.ndarray | None = None  # a labelled dataset's classes, per sample
    description: dict = field(default_factory=dict)


def load_samples(spec: str, names: list[str], specs: list[tuple], n: int) -> Samples:
    """Up to `n` samples from `spec`, each a list of arrays matching `specs` ((shape, dtype) per input)."""
    from edgecc.models.datasets import DATASETS, get_dataset

    if n < 1:
        raise UsageError(f"--validate-samples {n}: give 1 or more samples")
    path = Path(spec)
    if spec in DATASETS or (not path.exists() and "/" not in spec and "." not in spec):
        ds = get_dataset(spec)
        stacks = {names[0]: ds.x_test[:n]} if len(names) == 1 else None
        if stacks is None:
            raise ModelError(f"dataset {spec!r} has one input per sample; the model takes {len(names)} "
                             f"({', '.join(names)})")
        s = _from_stacks(stacks, names, specs, f"dataset {spec}")
        s.labels = ds.y_test[:len(s.inputs)]
        s.description = {"source": f"dataset {spec} (held-out split)", "samples": len(s.inputs),
                         "labelled": True, "description": ds.description}
        return s
    if not path.exists():
        raise ModelError(f"--validate-with {spec}: no such file or folder, and not a dataset (known: "
                         f"{', '.join(DATASETS)})")
    if path.is_dir():
        s = _from_folder(path, names, specs, n)
    elif path.suffix == ".npy":
        if len(names) != 1:
            raise ModelError(f"--validate-with {spec}: one .npy holds one input; the model takes {len(names)} "
                             f"({', '.join(names)}): give an .npz keyed by input name")
        s = _from_stacks({names[0]: _load_npy(path)}, names, specs, str(path))
    elif path.suffix == ".npz":
        s = _from_stacks(_load_npz(path, names), names, specs, str(path))
    else:
        raise ModelError(f"--validate-with {spec}: give a folder, an .npy or .npz file, or a dataset name")
    s.inputs = s.inputs[:n]
    s.description = {"source": str(path), "samples": len(s.inputs), "labelled": False, **s.description}
    return s


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ModelError(f"{path} is not a plain .npy array: {e}") from None


def _load_npz(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise ModelError(f"{path} is not a plain .npz archive: {e}") from None
    out = {}
    for i, name in enumerate(names):
        key = name if name in data else f"input_{i}" if f"input_{i}" in data else None
        if key is None:
            raise ModelError(f"{path} has no array for input {name!r} (keys: {', '.join(data) or 'none'}); key "
                             f"each input's samples by its name or input_{i}")
        out[name] = data[key]
    return out


def _from_stacks(stacks: dict[str, np.ndarray], names, specs, what: str) -> Samples:
    """Samples from per-input arrays whose first axis is the sample (or, with batch-1 inputs, one sample each of
    exactly the input's shape)."""
    per_input = []
    for name, (shape, dtype) in zip(names, specs, strict=True):
        a = np.asarray(stacks[name])
        shape = tuple(shape)
        if a.shape == shape:
            rows = [a]
        elif shape and shape[0] == 1 and a.shape[1:] == shape[1:]:
            rows = [a[i:i + 1] for i in range(len(a))]
        elif a.ndim == len(shape) + 1 and a.shape[1:] == shape:
            rows = list(a)
        else:
            raise ModelError(f"{what}: samples for input {name!r} have shape {list(a.shape)}; the model takes "
                             f"{list(shape)} (give N samples as N x {'x'.join(map(str, shape[1:] or shape))})")
        per_input.append([_cast(r, dtype, name, what) for r in rows])
    counts = {len(rows) for rows in per_input}
    if len(counts) != 1:
        raise ModelError(f"{what}: the inputs have different sample counts ({', '.join(map(str, counts))})")
    if not per_input[0]:
        raise ModelError(f"{what} holds no samples")
    return Samples([list(s) for s in zip(*per_input, strict=True)])


def _cast(a: np.ndarray, dtype, name: str, what: str) -> np.ndarray:
    """Same-kind casts only (float64 -> float32, int32 -> int64); a float sample for an integer input is refused."""
    want = np.dtype(dtype)
    if a.dtype == want:
        return np.ascontiguousarray(a)
    kinds = {"f": "f", "i": "iu", "u": "iu", "b": "b"}
    if a.dtype.kind not in kinds.get(want.kind, want.kind):
        raise ModelError(f"{what}: samples for input {name!r} are {a.dtype}; the model takes {want}: convert them")
    if want.kind in "iu" and a.size and (a.min() < np.iinfo(want).min or a.max() > np.iinfo(want).max):
        raise ModelError(f"{what}: samples for input {name!r} hold values outside {want}")
    return np.ascontiguousarray(a.astype(want))


def _from_folder(folder: Path, names, specs, n: int) -> Samples:
    from edgecc.compiler.inputs import read_tensor_protos

    sets = sorted(p for p in folder.glob("test_data_set_*") if p.is_dir())
    if sets:
        out = []
        for d in sets[:n]:
            files = sorted(d.glob("input_*.pb"), key=lambda p: int("".join(c for c in p.stem if c.isdigit()) or 0))
            arrays = read_tensor_protos(files)
            if arrays is None or len(arrays) != len(names):
                raise ModelError(f"{d}: expected {len(names)} readable input_K.pb tensor(s) ({', '.join(names)})")
            out.append(_from_stacks(dict(zip(names, arrays, strict=True)), names, specs, str(d)).inputs[0])
        return Samples(out, description={"format": "ONNX test_data_set_* folders"})
    npz, npy = sorted(folder.glob("*.npz")), sorted(folder.glob("*.npy"))
    if not npz and not npy:
        raise ModelError(f"--validate-with {folder}: the folder holds no .npy, .npz or test_data_set_* samples")
    if npz:
        out = []
        for f in npz[:n]:
            out += _from_stacks(_load_npz(f, names), names, specs, str(f)).inputs
        return Samples(out[:n], description={"format": ".npz files, one array per input"})
    if len(names) != 1:
        raise ModelError(f"--validate-with {folder}: .npy files hold one input; the model takes {len(names)} "
                         f"({', '.join(names)}): give .npz files keyed by input name")
    out = []
    for f in npy:
        out += _from_stacks({names[0]: _load_npy(f)}, names, specs, str(f)).inputs
        if len(out) >= n:
            break
    return Samples(out[:n], description={"format": ".npy files"})
