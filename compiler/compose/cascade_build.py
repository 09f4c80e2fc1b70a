"""Building and checking a cascade in its staging folder: both models compiled through the driver, the threshold
from the calibration curve, the deployable (one Cortex-M firmware, or the host/Linux runner and device scripts),
each model's measured cost, the validation against the PyTorch cascade, and the measured end-to-end run."""

from __future__ import annotations

import json
import tempfile
from operator import attrgetter
from pathlib import Path

import numpy as np

from edgecc.bundle import manifest_digest, sha256_file
from edgecc.errors import BudgetError, CannotRunHere, ValidationError
from edgecc.runtime.cascade import BIG, WHO, decide, score

REFERENCE_PER_BRANCH = 4
TIE_MARGIN = 1e-4  # reference inputs this close to the threshold could take either branch on float rounding
ATOL = 1e-4


def pytorch_logits(model, x: np.ndarray) -> np.ndarray:
    """The model's reference (PyTorch) logits per sample, batch 1 as compiled."""
    return np.concatenate([model.reference([x[i:i + 1]])[0] for i in range(len(x))])


def pick_threshold(rows, little_acc, big_acc, plan, cal_l, cal_b, y) -> tuple[dict, str]:
    from edgecc.compiler.compose.cascade_calibration import choose_threshold, row_at

    if plan.threshold != "auto":
        return row_at(rows, plan.threshold, cal_l, cal_b, y, plan.policy, None), "given (--threshold)"
    chosen = choose_threshold(rows, big_acc, plan.max_accuracy_drop)
    if chosen is None:
        raise BudgetError(f"no threshold keeps top-1 within {plan.max_accuracy_drop:g} points of the big model alone "
                          f"({big_acc:.2%} on calibration; little alone {little_acc:.2%}); raise --max-accuracy-drop "
                          "or give --threshold")
    return chosen, (f"auto: the cheapest threshold within {plan.max_accuracy_drop:g} points of the big model alone on "
                    "the calibration split")


def build(lm, bm, split, plan, tmp: Path, *, validate: bool, measure: bool, log, note, calibration_given: bool):
    from edgecc.compiler.compose import cascade_doc
    from edgecc.compiler.compose.cascade_calibration import expected_cost, threshold_curve
    from edgecc.compiler.driver import compile

    bundles = {}
    for side, m in (("little", lm), ("big", bm)):
        log(f"compiling the {side} model {m.name} for {plan.target.name} with {plan.backend}")
        bundles[side] = compile(m, target=plan.spec, backend=plan.backend, output=tmp / side, board=plan.board,
                                validate=validate, note=note)
    log(f"calibrating on {split.description}")
    cal_l, cal_b = pytorch_logits(lm, split.x), pytorch_logits(bm, split.x)
    rows = threshold_curve(cal_l, cal_b, split.y, plan.policy, None)
    accs = {k: float(np.mean(np.argmax(v, 1) == split.y)) for k, v in (("little", cal_l), ("big", cal_b))}
    chosen, how = pick_threshold(rows, accs["little"], accs["big"], plan, cal_l, cal_b, split.y)
    threshold = float(chosen["threshold"])
    log(f"threshold {threshold:g} ({plan.policy}): {chosen['accuracy']:.2%} on calibration, "
        f"{chosen['to_big']:.1%} sent to big")
    deploy = (MicroCascade if plan.backend == "micro" else HostCascade)(plan, bundles, tmp, threshold,
                                                                       chosen["to_big"], log)
    costs = deploy.model_costs()
    for r in rows + [chosen]:
        r["expected_cost"] = expected_cost(costs if costs["status"] == "ok" else None, r["to_big"])
    validation = deploy.validate(lm, bm, split, threshold) if validate else {"status": "skipped (--no-validate)"}
    measured = {"status": "skipped (measure=False)"}
    if measure and split.x_test is None:
        measured = {"status": f"not run: {split.source} has no held-out test split (x_test.npy / y_test.npy)"}
    elif measure:
        log(f"measuring end to end on {split.test_description}")
        ref = pytorch_cascade(lm, bm, split.x_test, plan.policy, threshold)
        measured = deploy.measure(split, ref, costs, chosen)
        alone = {k: float(np.mean(np.argmax(pytorch_logits(m, split.x_test), 1) == split.y_test))
                 for k, m in (("little", lm), ("big", bm))}
        measured["alone_accuracy"] = {k: round(v, 6) for k, v in alone.items()}
        if measured["status"] == "ok":
            measured["drop_vs_big_points"] = round((alone["big"] - measured["accuracy"]) * 100, 4)
    doc = cascade_doc.document(lm, bm, plan, split, rows, chosen, how, accs, costs, validation, measured,
                               calibration_given, deploy.memory(), getattr(deploy, "scripts", []))
    (tmp / "README.md").write_text(cascade_doc.readme(doc))
    from edgecc.runtime.report_cascade import cascade_report_html

    (tmp / "report.html").write_text(cascade_report_html(doc))
    doc["models"]["little"]["manifest_sha256"] = manifest_digest(tmp / "little")
    doc["models"]["big"]["manifest_sha256"] = manifest_digest(tmp / "big")
    own = sorted(p for p in tmp.rglob("*") if p.is_file() and p.relative_to(tmp).parts[0] not in ("little", "big"))
    doc["files"] = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in own}
    (tmp / "cascade.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")


def pytorch_cascade(lm, bm, x, policy, threshold) -> dict:
    """The PyTorch cascade on x: scores, which model answers, and its outputs."""
    lo = pytorch_logits(lm, x)
    who = decide(lo, policy, threshold)
    out = lo.copy()
    if (who == BIG).any():
        out[who == BIG] = pytorch_logits(bm, x[who == BIG])
    return {"scores": score(lo, policy), "who": who, "outputs": out}


def reference_inputs(lm, bm, split, policy, threshold) -> tuple[np.ndarray, dict]:
    """Up to REFERENCE_PER_BRANCH inputs per branch (calibration then test samples), none near the threshold."""
    pool = split.x if split.x_test is None else np.concatenate([split.x, split.x_test])
    s = score(pytorch_logits(lm, pool), policy)
    far = np.abs(s - threshold) > TIE_MARGIN
    pick = [*np.flatnonzero(far & (s >= threshold))[:REFERENCE_PER_BRANCH],
            *np.flatnonzero(far & (s < threshold))[:REFERENCE_PER_BRANCH]]
    x = pool[np.array(sorted(pick), dtype=np.int64)]
    return x, pytorch_cascade(lm, bm, x, policy, threshold)


def compare(ref: dict, outputs: np.ndarray, who: np.ndarray, where: str) -> dict:
    """The bundle's answers against the PyTorch cascade's: same model answering, same top-1, outputs close."""
    err = float(np.max(np.abs(outputs.astype(np.float64) - ref["outputs"])))
    same_who = bool(np.array_equal(who, ref["who"]))
    same_top1 = bool(np.array_equal(np.argmax(outputs, 1), np.argmax(ref["outputs"], 1)))
    branches = sorted({WHO[int(w)] for w in ref["who"]})
    if not (same_who and same_top1 and err <= ATOL):
        raise ValidationError(f"the cascade on {where} does not match the PyTorch cascade on {len(who)} reference "
                              f"inputs: models answering {'agree' if same_who else 'differ'}, top-1 "
                              f"{'agrees' if same_top1 else 'differs'}, max abs err {err:.2e}; pass --no-validate to "
                              "keep it anyway, or report the models")
    return {"status": "passed", "ran_on": where, "reference": "pytorch cascade (same policy and threshold)",
            "samples": int(len(who)), "branches": branches, "answered_by": [WHO[int(w)] for w in who],
            "max_abs_error": err, "tolerance": {"atol": ATOL}, "same_model_answering": same_who,
            "top1_agreement": 1.0, **({} if len(branches) == 2 else
                                      {"note": f"only the {branches[0]} branch is taken at this threshold"})}


def _validate(deployable, lm, bm, split, threshold, answers) -> dict:
    """The deployable's answers on reference inputs that exercise both branches, against the PyTorch cascade's;
    `answers(runner, x)` -> (outputs, which model answered)."""
    x, ref = reference_inputs(lm, bm, split, deployable.plan.policy, threshold)
    _save_reference(deployable.tmp, x, ref)
    try:
        r = deployable.runner()
    except CannotRunHere as e:
        return {"status": f"not run: {e}"}
    outs, who = answers(r, x)
    return compare(ref, outs, who, r.where)


def _save_reference(tmp: Path, x, ref) -> None:
    np.save(tmp / "reference_inputs.npy", x)
    np.save(tmp / "reference_outputs.npy", ref["outputs"].astype(np.float32))
    np.save(tmp / "reference_answered_by.npy", ref["who"].astype(np.int64))


def summary(who, costs_each, y, outputs, ref, unit: str, method: str, chosen, costs) -> dict:
    """The measured run's numbers: accuracy, fraction to big, cost per input measured and expected, vs big alone."""
    mean = float(np.mean(costs_each))
    big_alone = costs.get("big")
    expected = chosen["expected_cost"]
    return {"status": "ok", "samples": int(len(y)), "unit": unit, "method": method,
            "accuracy": round(float(np.mean(np.argmax(outputs, 1) == y)), 6),
            "pytorch_cascade_accuracy": round(float(np.mean(np.argmax(ref["outputs"], 1) == y)), 6),
            "agreement_with_pytorch_cascade": round(float(np.mean(np.argmax(outputs, 1)
                                                                  == np.argmax(ref["outputs"], 1))), 6),
            "to_big": round(float(np.mean(who == BIG)), 6), "mean_cost": mean,
            "expected_cost": expected,
            "big_alone_cost": big_alone,
            "saving_vs_big_measured": round(1 - mean / big_alone, 4) if big_alone else None,
            "saving_vs_big_expected": round(1 - expected / big_alone, 4) if big_alone and expected else None,
            "per_image": {"cost": [round(float(c), 4) for c in costs_each], "answered_by": [int(w) for w in who]}}


class MicroCascade:
    """One firmware with both models (cascade_firmware.py) in out/firmware; run in QEMU (the board's machine, or a
    QEMU board of the same core built from the same objects)."""

    def __init__(self, plan, bundles, tmp: Path, threshold: float, to_big: float, log):
        from edgecc.compiler.compose.cascade_firmware import build_cascade_firmware

        self.plan, self.bundles, self.threshold, self.tmp = plan, bundles, threshold, tmp
        little, big = bundles["little"], bundles["big"]
        self.stack = max(b.manifest["artifact"]["info"]["memory"]["stack_bytes"] for b in (little, big))
        board = plan.target.board(plan.board or None)
        log(f"linking one firmware with both models for {board.name} (one shared arena)")
        self.fw, self.arena = build_cascade_firmware(tmp / "firmware", little, big, plan.target, board, plan.policy,
                                                     threshold, self.stack)
        self.board, self.elf, self._tmp = board, tmp / "firmware" / "firmware.elf", None
        if not board.qemu_machine:
            qemu = next((b for b in plan.target.boards.values() if b.qemu_machine), None)
            if qemu is not None:  # the same objects linked for a QEMU board of this core, to run here
                self._tmp = tempfile.TemporaryDirectory(prefix="edgecc-cascade-qemu-")
                build_cascade_firmware(Path(self._tmp.name), little, big, plan.target, qemu, plan.policy, threshold,
                                       self.stack)
                self.board, self.elf = qemu, Path(self._tmp.name) / "firmware.elf"

    def runner(self):
        from edgecc.runtime.runners import QemuCascadeRunner

        if not self.board.qemu_machine:
            raise CannotRunHere(f"board {self.board.name} is real hardware and {self.plan.target.name} has no QEMU "
                                "board")
        return QemuCascadeRunner(self.elf, self.board.qemu_machine, self.bundles["little"].manifest["io"])

    def model_costs(self) -> dict:
        """Each model alone on the reference input, instructions in this same firmware (QEMU icount)."""
        try:
            r = self.runner()
            c = {side: int(r.run_many(None, mode=side).instructions[0]) for side in WHO}
        except CannotRunHere as e:
            return {"status": f"not measured: {e}"}
        return {**c, "unit": "instructions", "method": f"QEMU icount, {r.where} (instructions, not time)",
                "status": "ok"}

    def validate(self, lm, bm, split, threshold) -> dict:
        return _validate(self, lm, bm, split, threshold, lambda r, x: attrgetter("outputs", "who")(r.run_many(x)))

    def measure(self, split, ref, costs, chosen) -> dict:
        try:
            r = self.runner()
        except CannotRunHere as e:
            return {"status": f"not run: {e}"}
        run = r.run_many(split.x_test)
        out = summary(run.who, run.instructions, split.y_test, run.outputs, ref, "instructions", run.method, chosen,
                      costs)
        out["agreement_on_model_answering"] = round(float(np.mean(run.who == ref["who"])), 6)
        if self._tmp is not None:
            out["ran_on"] = (f"{r.where} (the {self.plan.board} firmware's objects, linked for {self.board.name})")
        else:
            out["ran_on"] = r.where
        out["one_boot"] = True
        return out

    def memory(self) -> dict:
        li, bi = (self.bundles[s].manifest["artifact"]["info"]["memory"] for s in ("little", "big"))
        return {"arena_bytes": self.arena, "arena_little_bytes": li["arena_bytes"],
                "arena_big_bytes": bi["arena_bytes"],
                "arena_sum_bytes": li["arena_bytes"] + bi["arena_bytes"], "flash_bytes": self.fw.flash_bytes,
                "ram_bytes": self.fw.ram_bytes, "sections": self.fw.sections, "stack_bytes": self.stack,
                "board": self.plan.target.board(self.plan.board or None).name}


class HostCascade:
    """Host and Linux targets: both bundles, run.sh / bench.sh / cascade_policy.py around their own scripts, and
    the in-process HostCascadeRunner here."""

    def __init__(self, plan, bundles, tmp: Path, threshold: float, to_big: float, log):
        from edgecc.runtime.device_scripts import render_scripts

        self.plan, self.bundles, self.threshold, self.tmp = plan, bundles, threshold, tmp
        self.scripts = []
        # the device scripts wrap the bundles' own run.sh / bench.sh (TVM's x86-64 host bundles ship none: they run
        # in Python, as HostCascadeRunner does here)
        if all((b.path / "run.sh").is_file() and (b.path / "bench.sh").is_file() for b in bundles.values()):
            self.scripts = render_scripts(
                tmp, {"cascade_run.sh": "run.sh", "cascade_bench.sh": "bench.sh",
                      "cascade_policy.py": "cascade_policy.py"},
                {"@POLICY@": plan.policy, "@THRESHOLD@": repr(float(threshold)), "@TO_BIG@": f"{to_big:.6f}"})

    def runner(self):
        from edgecc.runtime.cascade import HostCascadeRunner

        little, big = (self.bundles[s].runner() for s in ("little", "big"))
        if getattr(little, "spawns_per_run", False):
            raise CannotRunHere(f"{little.where} starts a process per inference; run the cascade on the device")
        return HostCascadeRunner(little, big, self.plan.policy, self.threshold)

    def model_costs(self) -> dict:
        """p50 wall clock of each model's runner here (3 warm-up, 20 timed runs, in this process)."""
        out = {}
        try:
            for side in ("little", "big"):
                b = self.bundles[side]
                t = b.runner().time(b.reference_inputs(), 3, 20)
                out[side] = float(np.median(t["samples"]))
        except CannotRunHere as e:
            return {"status": f"not measured: {e}"}
        return {**out, "unit": "ms", "method": "p50 wall clock of each bundle's runner here (3 warm-up, 20 runs)",
                "status": "ok"}

    def validate(self, lm, bm, split, threshold) -> dict:
        return _validate(self, lm, bm, split, threshold, lambda r, x: r.run_many(x)[:2])

    def measure(self, split, ref, costs, chosen) -> dict:
        try:
            r = self.runner()
        except CannotRunHere as e:
            return {"status": f"not run: {e}"}
        outs, who, ms = r.run_many(split.x_test)
        out = summary(who, ms, split.y_test, outs, ref, "ms", "wall clock per image around the cascade runner here "
                      "(little + policy + big where sent), fastest of 3 passes after one warm-up", chosen, costs)
        out["agreement_on_model_answering"] = round(float(np.mean(who == ref["who"])), 6)
        out["p50_cost"] = float(np.median(ms))
        out["ran_on"] = r.where
        return out

    def memory(self) -> dict:
        return {}

