"""`edgecc search`: the most accurate model of a small CNN family that fits a memory budget, each candidate
measured rather than estimated.

For each candidate (search_space.py) the search trains it briefly and deterministically on digits' fit split,
compiles it with the micro backend for the target's QEMU board (the real arena plan; flash and RAM from the linked
ELF, the same code and sizes as on the budget's board), counts its instructions per inference in QEMU, and
measures its top-1 on the calibration split (the selection) and on the test split (reported). Each measurement is
appended to a JSONL results file as soon as it is made, so an interrupted search resumes where it stopped.

    out/search.json   budget, every candidate's measurements, the Pareto fronts, the choice
    out/report.html   accuracy against instructions and against RAM, the front and the choice marked
    out/chosen.py     the chosen model as a file.py:build factory (+ chosen.npz, its weights) for `edgecc compile`;
                      with --cascade: little.py and big.py for `edgecc cascade`

    >>> s = edgecc.compiler.compose.search.search(board="NUCLEO-L4R5ZI")   # doctest: +SKIP
    >>> s["chosen"]["name"], s["chosen"]["ram_bytes"]                       # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecc.errors import BudgetError, UsageError
from edgecc.models.training import cache_root

SCHEMA = "edgecc.search/1"
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib)?", re.I)


def parse_bytes(text: str, what: str) -> int:
    """'520KB', '1MB', '640K', '4096' (bytes) -> bytes (KB = 1024 bytes, as board files count)."""
    m = _SIZE.fullmatch(str(text).strip())
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"--{what} {text!r}: give a size like 520KB, 1MB or 65536 (bytes), above 0")
    unit = (m.group(2) or "b").lower()[:1]
    return int(float(m.group(1)) * {"b": 1, "k": 1024, "m": 1024 * 1024}[unit])


@dataclass
class Budget:
    ram_bytes: int
    flash_bytes: int
    source: str  # "board NUCLEO-L4R5ZI" or "--ram/--flash"

    def fits(self, ram: int, flash: int) -> bool:
        return ram <= self.ram_bytes and flash <= self.flash_bytes

    def to_dict(self) -> dict:
        return {"ram_bytes": self.ram_bytes, "flash_bytes": self.flash_bytes, "source": self.source}


def plan_budget(target, board: str, ram: str, flash: str) -> Budget:
    """The budget from a board of the target, or from --ram / --flash (either may be left out: the QEMU board's)."""
    if board and (ram or flash):
        raise UsageError("give --board NAME or --ram/--flash, not both")
    if board:
        b = target.board(board)
        return Budget(b.ram_kb * 1024, b.flash_kb * 1024, f"board {b.name}")
    if not (ram or flash):
        raise UsageError("a search needs a budget: --board NAME (e.g. NUCLEO-L4R5ZI) or --ram SIZE --flash SIZE")
    qemu = measure_board(target)
    return Budget(parse_bytes(ram, "ram") if ram else qemu.ram_kb * 1024,
                  parse_bytes(flash, "flash") if flash else qemu.flash_kb * 1024, "--ram/--flash")


def measure_board(target):
    """The board a candidate is compiled for to be measured: the target's first with a QEMU machine."""
    from edgecc.errors import CannotRunHere

    board = next((b for b in target.boards.values() if b.qemu_machine), None)
    if board is None:
        raise CannotRunHere(f"{target.name} has no QEMU board, so its candidates' instructions cannot be counted here")
    return board


def results_path(target, space: list, epochs: int) -> Path:
    """Where measurements are saved as they are made: one file per (target, space, training, search code)."""
    from edgecc.compiler.compose import search_space

    h = hashlib.sha256(Path(search_space.__file__).read_bytes())
    h.update(repr((target.name, target.source, [c.name for c in space], epochs)).encode())
    return cache_root() / "search" / f"{target.name}-{h.hexdigest()[:16]}.jsonl"


def read_results(path: Path) -> dict[str, dict]:
    """Rows already measured, by candidate name (a line cut short by an interrupted write is ignored)."""
    rows = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
                rows[row["name"]] = row
            except (ValueError, KeyError):
                continue
    return rows


def measure(c, target, board, epochs: int, work: Path) -> dict:
    """Train, compile and run one candidate; its measurements as a results row."""
    import torch

    from edgecc.compiler.compose.cascade_build import pytorch_logits
    from edgecc.compiler.driver import compile
    from edgecc.errors import BudgetError as Over
    from edgecc.models.datasets import get_dataset
    from edgecc.models.digits_pair import calibration_split

    net = train_from_space(c, epochs)
    x_cal, y_cal = calibration_split()
    test = get_dataset("digits")
    example = (torch.from_numpy(test.x_test[:1].copy()),)
    row = {"name": c.name, "width": c.width, "depth": c.depth, "kernel": c.kernel, "resolution": c.resolution,
           "params": int(sum(p.numel() for p in net.parameters()))}
    try:
        b = compile(net, example, target=target.source or target.name, backend="micro", board=board.name,
                    output=work / c.name, name=f"search-{c.name}", validate=True)
    except Over as e:  # over the measuring board itself: far over any budget
        return {**row, "status": f"does not fit {board.name}: {e}"}
    mem = b.manifest["artifact"]["info"]["memory"]
    loaded = _Loaded(net)
    cal, tst = pytorch_logits(loaded, x_cal), pytorch_logits(loaded, test.x_test)
    return {**row, "status": "ok", "instructions": int(b.runner().time(None, 0, 1)["samples"][0]),
            "arena_bytes": mem["arena_bytes"], "ram_bytes": mem["ram_bytes"], "flash_bytes": mem["flash_bytes"],
            "val_accuracy": round(float(np.mean(np.argmax(cal, 1) == y_cal)), 6),
            "test_accuracy": round(float(np.mean(np.argmax(tst, 1) == test.y_test)), 6),
            "cal_logits": np.round(cal, 4).tolist()}


def train_from_space(c, epochs):
    from edgecc.compiler.compose.search_space import train_candidate

    return train_candidate(c, epochs)


class _Loaded:
    """pytorch_logits' view of a plain module."""

    def __init__(self, net):
        self.net = net

    def reference(self, inputs):
        import torch

        with torch.no_grad():
            return [self.net(torch.from_numpy(inputs[0])).numpy()]


def pareto(rows: list[dict], cost: str) -> list[str]:
    """Names on the front of accuracy (higher) against `cost` (lower): nothing else is as accurate and cheaper."""
    front, best = [], -1.0
    for r in sorted(rows, key=lambda r: (r[cost], -r["val_accuracy"])):
        if r["val_accuracy"] > best:
            front.append(r["name"])
            best = r["val_accuracy"]
    return front


def nothing_fits(rows: list[dict], budget: Budget, target) -> BudgetError:
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return BudgetError(f"no candidate could be measured on {target.name}: {rows[0]['status'] if rows else ''}")
    small = min(ok, key=lambda r: (r["ram_bytes"] > budget.ram_bytes, r["ram_bytes"], r["flash_bytes"]))
    return BudgetError(f"no candidate fits {budget.source} (RAM {budget.ram_bytes // 1024} KB, flash "
                       f"{budget.flash_bytes // 1024} KB): the smallest, {small['name']}, needs "
                       f"{-(-small['ram_bytes'] // 1024)} KB RAM and {-(-small['flash_bytes'] // 1024)} KB flash")


def pair_search(rows: list[dict], budget: Budget, drop: float, y_cal) -> list[dict]:
    """Every little/big pair of measured candidates that fits as one cascade firmware: RAM with one shared arena
    (the larger arena + the larger rest of RAM), flash the sum; its auto threshold (score-margin, within `drop`
    points of the big one alone on the calibration split) and expected instructions there."""
    from edgecc.compiler.compose.cascade_calibration import choose_threshold, threshold_curve

    ok = [r for r in rows if r["status"] == "ok"]
    pairs = []
    for a in ok:
        for b in ok:
            if a["instructions"] >= b["instructions"]:
                continue
            ram = max(a["arena_bytes"], b["arena_bytes"]) + max(a["ram_bytes"] - a["arena_bytes"],
                                                                 b["ram_bytes"] - b["arena_bytes"])
            flash = a["flash_bytes"] + b["flash_bytes"]
            la, lb = np.asarray(a["cal_logits"]), np.asarray(b["cal_logits"])
            curve = threshold_curve(la, lb, y_cal, "score-margin",
                                    {"little": a["instructions"], "big": b["instructions"]})
            chosen = choose_threshold(curve, b["val_accuracy"], drop)
            pairs.append({"little": a["name"], "big": b["name"], "ram_bytes": ram, "flash_bytes": flash,
                          "fits": budget.fits(ram, flash), "threshold": chosen["threshold"],
                          "val_accuracy": chosen["accuracy"], "to_big": chosen["to_big"],
                          "expected_instructions": chosen["expected_cost"],
                          "saving_vs_big": round(1 - chosen["expected_cost"] / b["instructions"], 4)})
    return pairs


def choose_pair(pairs: list[dict], target_accuracy: float) -> dict | None:
    """The pair with the lowest expected instructions among those that fit and reach the accuracy target."""
    ok = [p for p in pairs if p["fits"] and p["val_accuracy"] >= target_accuracy - 1e-9]
    return min(ok, key=lambda p: (p["expected_instructions"], -p["val_accuracy"])) if ok else None


def search(dataset="digits", target="cortex-m4", *, board="", ram="", flash="", space="small", epochs=None,
           cascade=False, max_accuracy_drop=0.5, output=None, results=None, force=False, log=None, note=None):
    """Measure every candidate of `space` (resuming from the results file) and write the Pareto fronts and the
    chosen model (or, with cascade=True, the chosen little/big pair) to `output`; returns (folder, search.json)."""
    import tempfile

    from edgecc.compiler.compose import search_output
    from edgecc.compiler.compose.search_space import EPOCHS, parse_space
    from edgecc.models.digits_pair import calibration_split
    from edgecc.targets import get_target

    log = log or (lambda msg: None)
    tgt = get_target(target)
    if tgt.kind != "mcu":
        raise UsageError(f"edgecc search measures microcontroller firmware; {tgt.name} is a {tgt.kind} target "
                         "(try cortex-m4)")
    if dataset != "digits":
        raise UsageError(f"--dataset {dataset!r}: the search trains on digits (the only dataset with fit, "
                         "calibration and test splits)")
    epochs = EPOCHS if epochs is None else epochs
    if not isinstance(epochs, int) or epochs < 1:
        raise UsageError(f"--epochs {epochs}: give 1 or more")
    budget = plan_budget(tgt, board, ram, flash)
    cands = parse_space(space)
    out = Path(output) if output else Path("build") / f"search-{tgt.name}-{board or 'budget'}"
    search_output.check_replaceable_search(out, force)
    qemu = measure_board(tgt)
    path = Path(results) if results else results_path(tgt, cands, epochs)
    rows = read_results(path)
    log(f"searching {len(cands)} candidates for {budget.source} (RAM {budget.ram_bytes // 1024} KB, flash "
        f"{budget.flash_bytes // 1024} KB); results saved as measured to {path}")
    measured = []
    with tempfile.TemporaryDirectory(prefix="edgecc-search-") as work:
        for i, c in enumerate(cands, 1):
            if c.name in rows:
                row, how = rows[c.name], "from the results file"
            else:
                row, how = measure(c, tgt, qemu, epochs, Path(work)), "measured"
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
            measured.append(row)
            log(f"[{i}/{len(cands)}] {c.name}: {_progress(row, budget)} ({how})")
    ok = [r for r in measured if r["status"] == "ok"]
    fit = [r for r in ok if budget.fits(r["ram_bytes"], r["flash_bytes"])]
    if not fit:
        raise nothing_fits(measured, budget, tgt)
    doc = {"schema": SCHEMA, "dataset": dataset, "target": tgt.name, "measured_on": qemu.name,
           "budget": budget.to_dict(), "epochs": epochs, "results_file": str(path),
           "candidates": [{k: v for k, v in r.items() if k != "cal_logits"} | (
               {"fits": budget.fits(r["ram_bytes"], r["flash_bytes"])} if r["status"] == "ok" else {"fits": False})
               for r in measured],
           "front_instructions": pareto(fit, "instructions"), "front_ram": pareto(fit, "ram_bytes")}
    best = max(fit, key=lambda r: (r["val_accuracy"], -r["instructions"]))
    doc["chosen"] = next(c for c in doc["candidates"] if c["name"] == best["name"])
    if cascade:
        y_cal = calibration_split()[1]
        pairs = pair_search(ok, budget, max_accuracy_drop, y_cal)
        goal = best["val_accuracy"] - max_accuracy_drop / 100
        pair = choose_pair(pairs, goal)
        if pair is None:
            raise BudgetError(f"no little/big pair fits {budget.source} at {goal:.2%} top-1 (the best single model "
                              f"that fits minus {max_accuracy_drop:g} points)")
        doc["cascade"] = {"accuracy_target": round(goal, 6), "max_accuracy_drop_points": max_accuracy_drop,
                          "chosen": pair, "pairs": sorted(pairs, key=lambda p: p["expected_instructions"])}
    search_output.write(out, doc, {r["name"]: r for r in ok}, epochs, note)
    return out, doc


def _progress(row: dict, budget: Budget) -> str:
    if row["status"] != "ok":
        return row["status"]
    fits = "fits" if budget.fits(row["ram_bytes"], row["flash_bytes"]) else "over budget"
    return (f"top-1 {row['val_accuracy']:.1%} (calibration) / {row['test_accuracy']:.1%} (test), "
            f"{row['instructions']:,} instructions, RAM {row['ram_bytes'] / 1024:.1f} KB, flash "
            f"{row['flash_bytes'] / 1024:.1f} KB: {fits}")
