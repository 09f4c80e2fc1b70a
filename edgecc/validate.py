"""Numerical validation: the artifact's outputs against the reference (PyTorch, or ONNX Runtime for .onnx)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# fp32 default: |out - ref| <= atol + rtol * max|ref|, per output. Different summation orders in compiled
# kernels give ~1e-6 relative error on these models; 1e-3 leaves room without hiding a wrong kernel.
DEFAULT_TOLERANCE = {"atol": 1e-4, "rtol": 1e-3}


@dataclass
class Comparison:
    passed: bool
    max_abs_error: float
    max_rel_error: float  # max |out - ref| / max |ref|
    top1_agreement: float | None  # fraction of rows whose argmax agrees (classifiers)
    tolerance: dict
    reference: str
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _nonfinite_mismatch(o: np.ndarray, r: np.ndarray) -> str:
    """'' when NaN and ±inf stand at the same places in both (a NaN only matches a NaN), else what differs. A NaN
    minus anything is NaN, and NaN > bound is False: without this a NaN reference would pass any output."""
    if not np.issubdtype(o.dtype, np.floating) and not np.issubdtype(r.dtype, np.floating):
        return ""
    o, r = o.astype(np.float64), r.astype(np.float64)
    nan_o, nan_r = np.isnan(o), np.isnan(r)
    inf_o, inf_r = np.isinf(o), np.isinf(r)
    bad = (nan_o != nan_r) | (inf_o != inf_r) | (inf_o & inf_r & (np.sign(o) != np.sign(r)))
    if not bad.any():
        return ""
    first = tuple(int(x) for x in np.argwhere(bad)[0])
    return (f"{int(bad.sum())} non-finite value(s) differ from the reference (NaN/inf at different places; first at "
            f"index {list(first)}: {o[first]} vs reference {r[first]})")


def compare(outputs: list[np.ndarray], reference: list[np.ndarray], reference_name: str,
            classification: bool, tolerance: dict | None = None) -> Comparison:
    tol = {**DEFAULT_TOLERANCE, **(tolerance or {})}
    if len(outputs) != len(reference):
        return Comparison(False, float("inf"), float("inf"), None, tol, reference_name,
                          f"{len(outputs)} outputs, reference has {len(reference)}")
    max_abs, max_rel, passed, details, top1 = 0.0, 0.0, True, [], None
    for i, (o, r) in enumerate(zip(outputs, reference, strict=True)):
        o, r = np.asarray(o), np.asarray(r)
        if o.shape != r.shape:
            return Comparison(False, float("inf"), float("inf"), None, tol, reference_name,
                              f"output {i} has shape {list(o.shape)}, reference {list(r.shape)}")
        mismatch = _nonfinite_mismatch(o, r)
        if mismatch:
            return Comparison(False, float("inf"), float("inf"), None, tol, reference_name, f"output {i}: {mismatch}")
        finite = np.isfinite(r)  # non-finite values agree exactly (checked above); the error is over the rest
        o64, r64 = o.astype(np.float64)[finite], r.astype(np.float64)[finite]
        err = float(np.max(np.abs(o64 - r64))) if o64.size else 0.0
        scale = float(np.max(np.abs(r64))) if r64.size else 0.0
        max_abs, max_rel = max(max_abs, err), max(max_rel, err / scale if scale else err)
        bound = tol["atol"] + tol["rtol"] * scale
        if err > bound:
            passed = False
            details.append(f"output {i}: max abs error {err:.3g} > {bound:.3g}")
    if classification and outputs[0].ndim == 2:
        agree = np.argmax(outputs[0], axis=1) == np.argmax(reference[0], axis=1)
        top1 = float(np.mean(agree))
        if top1 < 1.0:
            passed = False
            details.append(f"top-1 agreement {top1:.0%}")
    return Comparison(passed, max_abs, max_rel, top1, tol, reference_name, "; ".join(details))


def flatten_outputs(out) -> list:
    """A model's outputs as one flat list, whatever nesting of tuples, lists and dicts it returned them in."""
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in flatten_outputs(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in flatten_outputs(o)]
    return [out]


def check_inputs(inputs, expected: list[tuple], names: list[str]) -> None:
    """ModelError unless `inputs` match the expected (shape, dtype) pairs in count, shape and dtype."""
    from edgecc.errors import ModelError

    if len(inputs) != len(expected):
        raise ModelError(f"model takes {len(expected)} input(s) ({', '.join(names)}), got {len(inputs)}")
    for name, a, (shape, dtype) in zip(names, inputs, expected, strict=True):
        if tuple(a.shape) != tuple(shape):
            raise ModelError(f"input {name!r} has shape {list(a.shape)}, the model was compiled for "
                             f"{list(shape)}; reshape it or recompile with --input-shape")
        if np.dtype(a.dtype) != np.dtype(dtype):
            raise ModelError(f"input {name!r} has dtype {a.dtype}, expected {np.dtype(dtype)}")


# Reduced precision: |out - ref| <= atol + rtol * max|ref| against the fp32 reference. fp16 keeps 11 significant
# bits (~5e-4 relative per rounding), bf16 8 (~4e-3); convolutions accumulate a few hundred of them, partly
# cancelling. Measured on the zoo (docs/precision.md): fp16 within 1e-2 relative, bf16 within 5e-2.
PRECISION_TOLERANCE = {"fp32": DEFAULT_TOLERANCE, "fp16": {"atol": 1e-3, "rtol": 2e-2},
                       "bf16": {"atol": 1e-2, "rtol": 1e-1}}


def _top2_margin(rows: np.ndarray) -> np.ndarray:
    """Per row: the largest value minus the second largest (inf for one column)."""
    if rows.shape[1] < 2:
        return np.full(rows.shape[0], np.inf)
    part = np.sort(rows, axis=1)
    return part[:, -1] - part[:, -2]


def compare_samples(outputs: list[list[np.ndarray]], references: list[list[np.ndarray]], reference_name: str,
                    classification: bool, tolerance: dict | None = None, require_top1: bool = True,
                    labels=None) -> dict:
    """Every sample's outputs against its reference: max and mean absolute error, the fraction of samples within
    tolerance, top-1 agreement as a rate (classifiers), and with `labels` the top-1 accuracy of both. `passed`
    needs every sample within tolerance (and, with require_top1, every top-1 agreeing)."""
    per = [compare(o, r, reference_name, False, tolerance) for o, r in zip(outputs, references, strict=True)]
    ok = [c.passed for c in per]
    errs = [c.max_abs_error for c in per]
    finite = [e for e in errs if np.isfinite(e)]
    result = {"samples": len(per), "max_abs_error": max(errs), "mean_abs_error": float(np.mean(finite)) if finite
              else float("inf"), "max_rel_error": max(c.max_rel_error for c in per),
              "within_tolerance": sum(ok) / len(ok), "tolerance": per[0].tolerance, "reference": reference_name,
              "top1_agreement": None}
    details = [f"sample {i}: {c.detail}" for i, c in enumerate(per) if not c.passed][:3]
    if classification and all(o and np.asarray(o[0]).ndim == 2 for o in outputs):
        top = lambda outs: np.concatenate([np.argmax(np.asarray(x[0]), axis=1) for x in outs])  # noqa: E731
        got, want = top(outputs), top(references)
        # rows whose reference has its top two within tolerance name no top-1 (a tie, e.g. test data of integers)
        decided = np.concatenate([_top2_margin(np.asarray(r[0], np.float64)) > c.tolerance["atol"]
                                  + c.tolerance["rtol"] * float(np.max(np.abs(r[0])))
                                  for r, c in zip(references, per, strict=True)])
        result["top1_agreement"] = float(np.mean(got[decided] == want[decided])) if decided.any() else None
        if not decided.all():
            result["top1_undecided_rows"] = int((~decided).sum())
        if require_top1 and result["top1_agreement"] is not None and result["top1_agreement"] < 1.0:
            details.append(f"top-1 agreement {result['top1_agreement']:.1%} over {len(per)} samples")
        if labels is not None and len(labels) == len(got):
            labels = np.asarray(labels)
            result["accuracy"] = {"labels": len(labels), "reference_top1": float(np.mean(want == labels)),
                                  "artifact_top1": float(np.mean(got == labels))}
    result["passed"] = not details
    result["detail"] = "; ".join(details)
    return result
