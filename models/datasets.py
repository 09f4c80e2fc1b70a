"""Real datasets edgecc ships (through their Python packages, nothing downloaded), by name.

A dataset gives calibration samples for int8 quantization (`--calibration NAME`; with their labels, the training
data of `--squeeze ...,distill`) and a held-out labelled split
on which edgecc measures top-1 accuracy of the fp32 model and of the compiled artifact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    calibration: np.ndarray  # (N, *input shape[1:]) float32, from the training split
    x_test: np.ndarray  # held-out inputs, (N, *input shape[1:])
    y_test: np.ndarray  # held-out labels (int64)
    y_calibration: np.ndarray | None = None  # labels of the calibration (training) split, for distillation


def _digits() -> Dataset:
    from edgecc.models.digits import load_digits_split

    d = load_digits_split()
    return Dataset("digits", "scikit-learn handwritten digits, 8x8, 1437 train / 360 held-out (stratified, seed 0)",
                   d["x_train"], d["x_test"], d["y_test"], d["y_train"])


DATASETS = {"digits": _digits}


def get_dataset(name: str) -> Dataset:
    """A dataset by name; an unknown name raises ModelError listing the known ones."""
    from edgecc.errors import ModelError

    if name not in DATASETS:
        raise ModelError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)} "
                         "(or give a folder of .npy calibration samples)")
    return DATASETS[name]()
