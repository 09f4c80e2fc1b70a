"""cascade.json (the cascade's manifest, edgecc.cascade/1) and the README.md written into a cascade folder."""

from __future__ import annotations

from edgecc.runtime.report_cascade import verdict

SCHEMA = "edgecc.cascade/1"
RULE = ("the little model runs first; its answer stands when its score >= threshold, otherwise the big model runs "
        "on the same input and answers")


def document(lm, bm, plan, split, rows, chosen, how, accs, costs, validation, measured, calibration_given,
             memory, scripts) -> dict:
    """The cascade's manifest as JSON data (file hashes and the bundles' manifest digests are added last)."""
    ok = costs.get("status") == "ok"
    return {
        "schema": SCHEMA,
        "models": {"little": {"name": lm.name, "source": lm.source, "bundle": "little"},
                   "big": {"name": bm.name, "source": bm.source, "bundle": "big"}},
        "target": {"name": plan.target.name, "backend": plan.backend, "board": plan.board or None},
        "policy": {"name": plan.policy, "rule": RULE},
        "threshold": {"value": float(chosen["threshold"]), "how": how,
                      "max_accuracy_drop_points": plan.max_accuracy_drop,
                      "calibration_accuracy": chosen["accuracy"], "to_big": chosen["to_big"],
                      "expected_cost": chosen["expected_cost"]},
        "calibration": {
            "source": split.source, "description": split.description, "samples": int(len(split.y)),
            "given": "--calibration" if calibration_given else "the models' dataset (no --calibration given)",
            "note": "the threshold is chosen on this split; the measured run uses the held-out test split, which "
                    "neither training nor calibration saw",
            "little_only": {"accuracy": round(accs["little"], 6), "to_big": 0.0,
                            "cost": costs["little"] if ok else None},
            "big_only": {"accuracy": round(accs["big"], 6), "to_big": 1.0, "cost": costs["big"] if ok else None,
                         "note": "the big model alone (little not run)"},
            "curve": rows},
        "costs": costs,
        "memory": memory,
        "validation": validation,
        "measured": measured,
        "deploy": _deploy(plan, scripts),
    }


def _deploy(plan, scripts: list[str]) -> dict:
    if plan.backend == "micro":
        board = plan.target.board(plan.board or None)
        return {"kind": "firmware", "entry": "firmware/firmware.elf",
                "flash_command": board.flash_command.format(hex="firmware/firmware.hex", elf="firmware/firmware.elf",
                                                            bin="firmware/firmware.bin") or None,
                "qemu": f"qemu-system-arm -M {board.qemu_machine} ... -kernel firmware/firmware.elf"
                if board.qemu_machine else None}
    if not scripts:
        return {"kind": "host", "entry": None, "scripts": [],
                "note": "the bundles carry no run.sh (TVM x86-64): run the cascade in Python with "
                        "edgecc.runtime.cascade.HostCascadeRunner over both bundles' runners"}
    return {"kind": "host", "entry": "run.sh", "scripts": scripts}


def _cost(v, unit) -> str:
    if v is None:
        return "not measured"
    return f"{v:,.0f} {unit}" if unit == "instructions" else f"{v:.4f} {unit}"


def readme(doc: dict) -> str:
    """How to run the cascade, what was chosen and measured."""
    t, c, m = doc["threshold"], doc["costs"], doc["measured"]
    unit = c.get("unit", "")
    lines = [f"# Cascade {doc['models']['little']['name']} → {doc['models']['big']['name']} "
             f"({doc['target']['name']}, {doc['target']['backend']})", "",
             f"Policy `{doc['policy']['name']}`, threshold **{t['value']:g}** ({t['how']}): {doc['policy']['rule']}.",
             "", f"Calibration: {doc['calibration']['description']}. {doc['calibration']['note']}.", "",
             f"- little alone: {_cost(c.get('little'), unit)}; big alone: {_cost(c.get('big'), unit)} "
             f"({c.get('method', c.get('status'))})",
             f"- at the threshold: {t['to_big']:.1%} of calibration inputs go to big; expected "
             f"{_cost(t['expected_cost'], unit)} per input",
             f"- {verdict(doc)}", f"- validation: {doc['validation'].get('status')}", ""]
    if doc["deploy"]["kind"] == "firmware":
        mem = doc["memory"]
        lines += ["## Run it", "",
                  f"`firmware/firmware.elf` holds both models; one arena of {mem['arena_bytes']:,} bytes serves both "
                  f"(little {mem['arena_little_bytes']:,}, big {mem['arena_big_bytes']:,}; the sum would be "
                  f"{mem['arena_sum_bytes']:,}). Flash {mem['flash_bytes']:,} B, RAM {mem['ram_bytes']:,} B.", "",
                  "Per input it prints `edgecc: sample I little|big ticks T score S` on the semihosting console.",
                  ""]
        if doc["deploy"]["flash_command"]:
            lines += [f"Flash: `{doc['deploy']['flash_command']}`", ""]
        if doc["deploy"]["qemu"]:
            lines += [f"In QEMU: `{doc['deploy']['qemu']}` (see edgecc.runtime.runners.qemu_cascade)", ""]
    elif not doc["deploy"]["scripts"]:
        lines += ["## Run it", "", doc["deploy"]["note"] + ".", ""]
    else:
        lines += ["## Run it", "", "`./run.sh OUT_DIR INPUT.npy` runs the little bundle's run.sh, applies the policy "
                  "(`cascade_policy.py`, numpy), and runs the big bundle's run.sh when the little model is not "
                  "confident; it prints which model answered. `./bench.sh OUT_DIR` times both bundles with their "
                  "own bench.sh and prints the expected latency at the calibrated fraction.", ""]
    if m.get("status") == "ok":
        lines += [f"Measured end to end ({m['method']}, {m['ran_on']}): {m['samples']} images, {m['to_big']:.1%} "
                  f"to big, mean {_cost(m['mean_cost'], unit)} per input, top-1 {m['accuracy']:.2%}.", ""]
    lines += ["The curve (accuracy against expected cost per threshold) is in `cascade.json` (calibration.curve) and "
              "plotted in `report.html`.", ""]
    return "\n".join(lines)
