"""Where a cascade's threshold comes from: both models run (PyTorch) on a labelled held-out split; for each
threshold, the accuracy, the fraction of inputs sent to the big model, and the expected cost (each model's measured
cost weighted by those fractions: little always, big for that fraction).

`auto` takes the cheapest threshold whose accuracy is within `max_accuracy_drop` points of the big model alone.
The expected cost rises with the fraction sent to big (little's cost is paid for every input), so the cheapest is
the one sending the fewest; ties go to the more accurate, then the lower threshold.

    >>> cal = load_calibration("digits")                                    # doctest: +SKIP
    >>> rows = threshold_curve(little_logits, big_logits, cal.y, "score-margin", costs)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecc.errors import ModelError, UsageError
from edgecc.runtime.cascade import score

# dense near 1: a confident little model's scores crowd there
THRESHOLDS = tuple(sorted({round(t, 4) for t in np.linspace(0.0, 1.0, 101)}
                          | {0.995, 0.998, 0.999, 0.9995, 0.9999}))


@dataclass
class Split:
    """Labelled samples: calibration (threshold choice) and, where there is one, a held-out test split (the
    measured run)."""

    source: str
    description: str
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    test_description: str = ""


def _digits() -> Split:
    from edgecc.models.datasets import get_dataset
    from edgecc.models.digits_pair import calibration_split

    x, y = calibration_split()
    ds = get_dataset("digits")
    return Split("digits", f"digits: {len(y)} images of the training split held out from digits-little/-big's "
                 "training (stratified, seed 0)", x, y, ds.x_test, ds.y_test,
                 f"digits: the {len(ds.y_test)} held-out test images (never used for training or calibration)")


CALIBRATION_SPLITS = {"digits": _digits}


def check_calibration_source(spec: str) -> None:
    """A one-line UsageError, before any model is loaded, for a source that cannot be a calibration split."""
    if not spec:
        return
    if spec not in CALIBRATION_SPLITS and not Path(spec).is_dir():
        raise UsageError(f"--calibration {spec}: not a dataset ({', '.join(CALIBRATION_SPLITS)}) and not a folder; "
                         "give a dataset name or a folder with x.npy and y.npy (labels)")


def load_calibration(spec: str) -> Split:
    """A labelled split by dataset name, or from a folder: x.npy (N, ...) and y.npy (N,) integer labels, and
    optionally x_test.npy / y_test.npy for the measured run."""
    if spec in CALIBRATION_SPLITS:
        return CALIBRATION_SPLITS[spec]()
    folder = Path(spec)
    arrays = {}
    for name in ("x", "y", "x_test", "y_test"):
        f = folder / f"{name}.npy"
        if f.is_file():
            try:
                arrays[name] = np.load(f, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise ModelError(f"--calibration {spec}: {f.name} is not a plain .npy array ({e})") from None
        elif name in ("x", "y"):
            raise ModelError(f"--calibration {spec}: no {name}.npy; a calibration folder holds x.npy (samples) and "
                             "y.npy (their integer labels)")
    for xs, ys in (("x", "y"), ("x_test", "y_test")):
        if (xs in arrays) != (ys in arrays) or (xs in arrays and len(arrays[xs]) != len(arrays[ys])):
            raise ModelError(f"--calibration {spec}: {xs}.npy and {ys}.npy must both be there, one label per sample")
    if not len(arrays["y"]):
        raise ModelError(f"--calibration {spec}: x.npy holds no samples")
    return Split(str(folder), f"{folder}: {len(arrays['y'])} labelled samples", arrays["x"].astype(np.float32),
                 arrays["y"].astype(np.int64), arrays.get("x_test"), arrays.get("y_test"),
                 f"{folder}/x_test.npy: {len(arrays['y_test'])} samples" if "y_test" in arrays else "")


def check_split_fits(split: Split, input_shape, classes: int) -> None:
    """ModelError unless the split's samples have the models' input shape and its labels index their classes."""
    want = tuple(input_shape[1:])
    for xs, ys, what in ((split.x, split.y, "calibration"), (split.x_test, split.y_test, "test")):
        if xs is None:
            continue
        if tuple(xs.shape[1:]) != want:
            raise ModelError(f"{what} samples of {split.source} have shape {list(xs.shape[1:])}, the models take "
                             f"{list(want)} per sample")
        if ys.min() < 0 or ys.max() >= classes:
            raise ModelError(f"{what} labels of {split.source} reach {int(ys.max())}, the models have {classes} "
                             "classes")


def threshold_curve(little_logits, big_logits, y, policy: str, costs: dict | None) -> list[dict]:
    """One row per threshold: accuracy (0..1), fraction sent to big, expected cost in costs' unit (None where the
    models' costs could not be measured)."""
    s = score(little_logits, policy)
    lp, bp = np.argmax(little_logits, 1), np.argmax(big_logits, 1)
    rows = []
    for t in THRESHOLDS:
        to_big = s < t
        acc = float(np.mean(np.where(to_big, bp, lp) == y))
        frac = float(np.mean(to_big))
        rows.append({"threshold": t, "accuracy": round(acc, 6), "to_big": round(frac, 6),
                     "expected_cost": expected_cost(costs, frac)})
    return rows


def expected_cost(costs: dict | None, to_big: float) -> float | None:
    """little's cost for every input + big's for the fraction sent to it."""
    if not costs:
        return None
    return costs["little"] + to_big * costs["big"]


def choose_threshold(rows: list[dict], big_accuracy: float, max_drop_points: float) -> dict | None:
    """The cheapest row within max_drop_points of big alone (fewest sent to big, then more accurate, lower
    threshold); None if no threshold keeps the accuracy there."""
    floor = big_accuracy - max_drop_points / 100.0 - 1e-9
    ok = [r for r in rows if r["accuracy"] >= floor]
    return min(ok, key=lambda r: (r["to_big"], -r["accuracy"], r["threshold"])) if ok else None


def row_at(rows: list[dict], threshold: float, little_logits, big_logits, y, policy, costs) -> dict:
    """The curve's row for a given threshold (computed if it is not on the grid)."""
    for r in rows:
        if abs(r["threshold"] - threshold) < 1e-12:
            return r
    s = score(little_logits, policy) < threshold
    frac = float(np.mean(s))
    acc = float(np.mean(np.where(s, np.argmax(big_logits, 1), np.argmax(little_logits, 1)) == y))
    return {"threshold": threshold, "accuracy": round(acc, 6), "to_big": round(frac, 6),
            "expected_cost": expected_cost(costs, frac)}
