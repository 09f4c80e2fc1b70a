"""Calibration: the samples (`--calibration digits` or a folder of .npy files) and the min/max observers on them.

Calibration samples come from a dataset name (models/datasets.py) or a folder of .npy files, each one sample
(the input shape, with or without the batch dimension of 1) or a batch (N, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecc.compiler.squeeze.quant.graph import QGraph, run_float
from edgecc.errors import ModelError

MAX_CALIBRATION_SAMPLES = 1000


def load_calibration(spec: str, input_shape: tuple[int, ...]) -> tuple[np.ndarray, dict, Any]:
    """(samples (N, *input_shape[1:]) float32, description, dataset or None) from a dataset name or .npy folder."""
    from edgecc.models.datasets import DATASETS, get_dataset

    if not spec:
        raise ModelError("--quantize int8 needs calibration samples: pass --calibration DATASET (one of "
                         f"{', '.join(DATASETS)}) or --calibration DIR (a folder of .npy input samples)")
    path = Path(spec)
    if spec in DATASETS or not path.exists() and "/" not in spec and "." not in spec:
        ds = get_dataset(spec)
        samples = ds.calibration[:MAX_CALIBRATION_SAMPLES]
        _check_shape(samples, input_shape, f"dataset {spec!r}")
        return samples, {"source": f"dataset {spec}", "samples": len(samples), "description": ds.description}, ds
    if not path.is_dir():
        raise ModelError(f"calibration folder {spec} does not exist; give a folder of .npy files or a dataset name")
    files = sorted(path.glob("*.npy"))
    if not files:
        raise ModelError(f"calibration folder {spec} has no .npy files")
    arrays = []
    for f in files:
        try:
            a = np.load(f, allow_pickle=False)
        except ValueError as e:
            raise ModelError(f"{f} is not a plain .npy array: {e}") from None
        a = np.asarray(a, dtype=np.float32)
        arrays.append(a[None] if a.shape == tuple(input_shape[1:]) else a)
    samples = np.concatenate([a.reshape(-1, *a.shape[1:]) for a in arrays])[:MAX_CALIBRATION_SAMPLES]
    _check_shape(samples, input_shape, f"calibration folder {spec}")
    return samples, {"source": f"folder {spec}", "samples": len(samples), "files": len(files)}, None


def _check_shape(samples, input_shape, what):
    if tuple(samples.shape[1:]) != tuple(input_shape[1:]):
        raise ModelError(f"{what} has samples of shape {list(samples.shape[1:])}; the model takes "
                         f"{list(input_shape[1:])} (per sample)")


def calibrate(g: QGraph, samples: np.ndarray, batch: int = 256) -> dict[str, tuple[float, float]]:
    """(min, max) of the input and of every op output over the calibration samples."""
    import torch

    ranges: dict[str, list[float]] = {}
    for i in range(0, len(samples), batch):
        env = run_float(g, torch.from_numpy(np.ascontiguousarray(samples[i:i + batch], dtype=np.float32)))
        for k, v in env.items():
            lo, hi = float(v.min()), float(v.max())
            r = ranges.setdefault(k, [lo, hi])
            r[0], r[1] = min(r[0], lo), max(r[1], hi)
    return {k: (v[0], v[1]) for k, v in ranges.items()}
