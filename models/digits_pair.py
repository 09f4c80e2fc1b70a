"""digits-little and digits-big: a trained pair for a big/little cascade (`edgecc cascade`), on scikit-learn's digits.

Three disjoint splits, so the cascade's threshold is not tuned on the images it is reported on:

    fit          1,149 images of digits' training split: both models are trained on these
    calibration    288 images of digits' training split (stratified, seed 0): `edgecc cascade` picks the threshold
    test           360 held-out images (the split every digits model reports): the cascade's accuracy and cost

digits-big has digits-cnn's architecture (3x3 convs of 16, 32, 32 filters; ~453 K MACs); digits-little is one 3x3
conv of 4 filters, a pool and a dense layer (~3 K MACs). Measured on Cortex-M4 in QEMU the little one runs ~17x
fewer instructions than the big one (docs/cascade.md; fixed per-call costs shrink the MAC ratio). A little model
with two convs (8 and 16 filters) was tried: it came within one calibration image of the big one, so `auto` sent
nothing to big and the test split lost 0.6 points. Both are trained like digits-cnn: seeded, one thread, Adam,
40 epochs, batch 64; cached as .npz keyed by this file's and training.py's hash.

    >>> x, y = calibration_split()          # doctest: +SKIP
    >>> x.shape, y.shape                      # doctest: +SKIP
    ((288, 1, 8, 8), (288,))
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from torch import nn

from edgecc.models.digits import DigitsCNN, load_digits_split
from edgecc.models.training import cached_trained, train_classifier, weights_key
from edgecc.models.zoo import register_model

CALIBRATION_FRACTION, CALIBRATION_SEED, EPOCHS = 0.2, 0, 40


@lru_cache(maxsize=1)
def fit_calibration_split() -> dict[str, np.ndarray]:
    """{"x_fit", "y_fit", "x_cal", "y_cal"}: digits' training split cut in two (stratified, seed 0)."""
    from sklearn.model_selection import train_test_split

    d = load_digits_split()
    x_fit, x_cal, y_fit, y_cal = train_test_split(d["x_train"], d["y_train"], test_size=CALIBRATION_FRACTION,
                                                  random_state=CALIBRATION_SEED, stratify=d["y_train"])
    return {"x_fit": x_fit, "y_fit": y_fit, "x_cal": x_cal, "y_cal": y_cal}


def calibration_split() -> tuple[np.ndarray, np.ndarray]:
    """The labelled calibration images (part of digits' training split the pair was not trained on)."""
    s = fit_calibration_split()
    return s["x_cal"], s["y_cal"]


class DigitsLittle(nn.Module):
    """One 3x3 conv of 4 filters, a 2x2 max pool, one dense layer: 8x8 -> 10 classes (690 params, ~3 K MACs)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


def _trained(name: str, make):
    import edgecc.models.training as training

    s = fit_calibration_split()
    key = weights_key(Path(__file__), Path(training.__file__), name, EPOCHS)
    return cached_trained(name, key, make, lambda: train_classifier(make, s["x_fit"], s["y_fit"], EPOCHS))


def _first_test_image():
    import torch

    return (torch.from_numpy(load_digits_split()["x_test"][:1].copy()),)


@register_model("digits-little", [(1, 1, 8, 8)], "the little half of a digits cascade: one 4-filter conv, ~3 K MACs "
                "(trained here on the fit split of scikit-learn's digits)", tags=("tiny", "cascade"),
                dataset="digits", example_inputs=_first_test_image)
def digits_little():
    return _trained("digits-little", DigitsLittle)


@register_model("digits-big", [(1, 1, 8, 8)], "the big half of a digits cascade: digits-cnn's architecture, ~453 K "
                "MACs "
                "(trained here on the fit split of scikit-learn's digits)", tags=("tiny", "cascade"),
                dataset="digits", example_inputs=_first_test_image)
def digits_big():
    return _trained("digits-big", DigitsCNN)
