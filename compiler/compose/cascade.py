"""A big/little cascade deployed as one bundle: the little model answers when it is confident, the big one otherwise.

    out/cascade.json   the cascade's manifest (edgecc.cascade/1): policy, threshold and how it was chosen, the
                       calibration curve, each model's measured cost, validation, the measured end-to-end run, and
                       the sha256 of every file outside the two bundles
    out/little/, big/  each model as an ordinary, validated bundle of the target
    out/firmware/      Cortex-M: ONE firmware with both models, one shared arena, the policy in C
    out/run.sh, bench.sh, cascade_policy.py   host and Linux targets: the policy on the device around the two
                       bundles' own run.sh / bench.sh
    out/report.html    the curve: accuracy against expected cost, little alone and big alone marked
    out/README.md      how to run it

    >>> c = edgecc.cascade("digits-little", "digits-big", target="cortex-m4", calibration="digits")  # doctest: +SKIP
    >>> c.doc["threshold"]["value"], c.doc["measured"]["accuracy"]                                    # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from edgecc.bundle import Bundle, check_replaceable, manifest_digest, sha256_file, staging
from edgecc.errors import BundleError, ModelError, UsageError
from edgecc.runtime.cascade import POLICIES

SCHEMA = "edgecc.cascade/1"
CASCADE_JSON = "cascade.json"


@dataclass
class CascadePlan:
    """A cascade request, checked before any model is loaded."""

    target: object  # edgecc.targets Target
    spec: str  # the target as the user named it
    backend: str
    board: str
    policy: str
    threshold: str | float  # "auto" or a value in [0, 1]
    calibration: str
    max_accuracy_drop: float  # points
    output: Path | None


@dataclass
class CascadeBundle:
    """A cascade folder: cascade.json, the little and big bundles (each verified), and its own files (hashed)."""

    path: Path
    doc: dict
    little: Bundle
    big: Bundle

    @classmethod
    def load(cls, path) -> CascadeBundle:
        path = Path(path)
        try:
            doc = json.loads((path / CASCADE_JSON).read_text())
        except (OSError, ValueError) as e:
            raise BundleError(f"{path} is not a cascade folder ({CASCADE_JSON}: {e}); make one with `edgecc "
                              "cascade`") from None
        if doc.get("schema") != SCHEMA:
            raise BundleError(f"{path / CASCADE_JSON}: unknown schema (want {SCHEMA})")
        sides = {}
        for side in ("little", "big"):
            b = Bundle.load(path / side)
            if manifest_digest(b.path) != doc["models"][side]["manifest_sha256"]:
                raise BundleError(f"{path}/{side} is not the bundle {CASCADE_JSON} names (manifest hash differs); "
                                  "build the cascade again")
            sides[side] = b
        for rel, digest in doc["files"].items():
            f = path / rel
            if f.is_symlink() or not f.is_file() or sha256_file(f) != digest:
                raise BundleError(f"{path}/{rel} is missing or does not match {CASCADE_JSON}; build the cascade again")
        return cls(path, doc, sides["little"], sides["big"])


def _threshold(value) -> str | float:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"--threshold {value!r}: give auto or a number in [0, 1]") from None
    if not math.isfinite(t) or not 0.0 <= t <= 1.0:
        raise UsageError(f"--threshold {value}: out of range; score-margin and max-prob scores lie in [0, 1], so "
                         "give a value in [0, 1] (0: the little model always answers) or auto")
    return t


def plan_cascade(target="cortex-m4", *, backend=None, board="", policy="score-margin", threshold="auto",
                 calibration="", max_accuracy_drop=0.5, output=None, force=False) -> CascadePlan:
    """Every check that needs no model: target, backend, board, policy, threshold, drop, calibration, output."""
    from edgecc.compiler.compose.cascade_calibration import check_calibration_source
    from edgecc.targets import get_target

    tgt = get_target(target)
    backend = backend or tgt.default_backend
    tgt.backend(backend)
    if board:
        tgt.board(board)
    if backend not in ("micro", "iree", "tvm"):
        raise UsageError(f"a cascade is built for micro (Cortex-M), iree or tvm; backend {backend!r} is not "
                         "supported yet")
    if policy not in POLICIES:
        raise UsageError(f"--policy {policy!r}: expected one of {', '.join(POLICIES)}")
    t = _threshold(threshold)
    try:
        drop = float(max_accuracy_drop)
    except (TypeError, ValueError):
        drop = -1.0
    if not math.isfinite(drop) or not 0.0 <= drop <= 100.0:
        raise UsageError(f"--max-accuracy-drop {max_accuracy_drop}: give accuracy points from 0 to 100 (e.g. 0.5)")
    check_calibration_source(calibration)
    out = Path(output) if output else None
    if out is not None:
        check_cascade_replaceable(out, force)
    return CascadePlan(tgt, str(target), backend, board or (tgt.default_board if tgt.kind == "mcu" else ""),
                       policy, t, calibration, drop, out)


def check_cascade_replaceable(out: Path, force: bool) -> None:
    """A cascade may replace an empty folder or a cascade folder that loads; else as compile."""
    if not force and out.is_dir() and not out.is_symlink() and (out / CASCADE_JSON).is_file():
        try:
            CascadeBundle.load(out)
            return
        except BundleError as e:
            raise BundleError(f"output {out} is a cascade folder that does not verify ({e}); pass --force to "
                              "replace it, or choose another -o") from None
    check_replaceable(out, force)


def check_pair(little, big) -> int:
    """The two models run on the same input and answer over the same classes; returns the class count."""
    if len(little.example_inputs) != 1 or len(big.example_inputs) != 1:
        raise ModelError("a cascade runs two one-input classifiers; "
                         f"{little.name} takes {len(little.example_inputs)} inputs, {big.name} "
                         f"{len(big.example_inputs)}")
    a, b = little.example_inputs[0], big.example_inputs[0]
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ModelError(f"input shapes differ: {little.name} takes {'x'.join(map(str, a.shape))} {a.dtype}, "
                         f"{big.name} {'x'.join(map(str, b.shape))} {b.dtype}; a cascade sends the same input to "
                         "both, so give two models with the same input")
    if a.shape[:1] != (1,):
        raise ModelError(f"{little.name} takes a batch of {a.shape[0]}; a cascade decides per input: export batch 1")
    outs = []
    for m in (little, big):
        ref = m.reference(m.example_inputs)
        if len(ref) != 1 or ref[0].ndim != 2 or ref[0].shape[0] != 1:
            raise ModelError(f"{m.name} returns {[list(o.shape) for o in ref]}; a cascade needs one (1, classes) "
                             "logits output per model")
        outs.append(ref[0].shape[1])
    if outs[0] != outs[1]:
        raise ModelError(f"class counts differ: {little.name} answers over {outs[0]} classes, {big.name} over "
                         f"{outs[1]}; a cascade needs the same classes from both models")
    return outs[0]


def cascade(little, big, target="cortex-m4", *, policy="score-margin", threshold="auto", calibration="",
            max_accuracy_drop=0.5, output=None, backend=None, board="", force=False, validate=True, measure=True,
            log=None, note=None) -> CascadeBundle:
    """Build one cascade bundle of `little` and `big` (zoo names, file.py:factory, .pt2) for `target`; the threshold
    is calibrated on `calibration` (a dataset name or a folder of x.npy / y.npy) when "auto".

        >>> edgecc.cascade("digits-little", "digits-big", target="host", backend="iree")  # doctest: +SKIP
    """
    from edgecc.compiler.compose import cascade_build
    from edgecc.compiler.compose.cascade_calibration import check_split_fits, load_calibration
    from edgecc.compiler.frontends import load_model

    log = log or (lambda msg: None)
    plan = plan_cascade(target, backend=backend, board=board, policy=policy, threshold=threshold,
                        calibration=calibration, max_accuracy_drop=max_accuracy_drop, output=output, force=force)
    models = []
    for side, source in (("little", little), ("big", big)):
        log(f"loading the {side} model {source}")
        models.append(load_model(source))
    lm, bm = models
    classes = check_pair(lm, bm)
    if lm.name == bm.name:
        lm.name, bm.name = f"{lm.name}-little", f"{bm.name}-big"
    spec = plan.calibration or (lm.dataset_name if lm.dataset_name and lm.dataset_name == bm.dataset_name else "")
    if not spec:
        raise UsageError("a cascade needs calibration data to set and report its threshold: give --calibration "
                         "DATASET or a folder with x.npy and y.npy (labelled samples neither model was trained on)")
    split = load_calibration(spec)
    check_split_fits(split, lm.example_inputs[0].shape, classes)
    out = plan.output or Path("build") / f"{lm.name}+{bm.name}-{plan.target.name}-{plan.backend}"
    if plan.output is None:
        check_cascade_replaceable(out, force)
    with staging(out, force=True, note=note) as tmp:
        cascade_build.build(lm, bm, split, plan, tmp, validate=validate, measure=measure, log=log, note=note,
                            calibration_given=bool(plan.calibration))
    return CascadeBundle.load(out)
