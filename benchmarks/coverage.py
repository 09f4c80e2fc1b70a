"""Coverage benchmark: does a model edgecc did not write go through? Every model of a suite, every cell.

Each (model, target/backend) cell is one `edgecc compile` in its own process (a crash in one compiler cannot take
the run down), validated against the model's reference (ONNX Runtime for .onnx files, PyTorch eager otherwise),
with a time limit. A cell ends as one of:

    pass        compiled, and the bundle's outputs matched the reference (max abs error shown)
    refused     a one-line refusal that names the op (edgecc exit 5), or "does not fit" (exit 9, the board's budget)
    not run     the cell needs hardware this host lacks (exit 11)
    failed      anything else: the one-line message is kept; "internal error" and tracebacks are flagged as such

Results are kept per suite in a JSON file (--results, default build/coverage/), so a suite can be re-run alone;
the Markdown report (--out, default docs/coverage.md) is written from every results file there, with the date,
the edgecc commit and the command of each suite's run.

    .venv/bin/python benchmarks/coverage.py                              # every suite, its default cells
    .venv/bin/python benchmarks/coverage.py --suites light --cells host/iree,host/tvm -j 2
    .venv/bin/python benchmarks/coverage.py --suites pytorch-operator --limit 5 --out /tmp/c.md

Suites: the onnx wheel's test models (`light`, `pytorch-converted`, `pytorch-operator`, `simple`), `hf`
(Hugging Face `transformers` classes from small configs, random init, nothing downloaded: models/hf_suite.py) and
`zoo` (edgecc's own zoo).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONNX_SUITES = ("light", "pytorch-converted", "pytorch-operator", "simple")
SUITES = (*ONNX_SUITES, "hf", "zoo")
DEFAULT_SUITES = (*ONNX_SUITES, "hf")  # the zoo's own cells are docs/zoo.md's and the tests'; --suites zoo adds them
# The cells that can validate on this host: native CPU, aarch64 under qemu-user, Cortex-M under qemu-system-arm.
CPU_CELLS = ("host/iree", "host/tvm", "orangepi5-cpu/iree")
DEFAULT_CELLS = {
    "light": CPU_CELLS,  # 224x224 ImageNet models: far over a Cortex-M's RAM
    "pytorch-converted": ("host/iree", "host/tvm", "cortex-m4/micro"),
    "pytorch-operator": ("host/iree", "host/tvm", "cortex-m4/micro"),
    "simple": ("host/iree", "host/tvm", "cortex-m4/micro"),
    "hf": (*CPU_CELLS, "cortex-m4/micro"),
    "zoo": (*CPU_CELLS, "cortex-m4/micro"),
}
SUITE_NOTES = {
    "light": "The onnx wheel's `light` ImageNet architectures (opset 9, 224x224). Their weights are ConstantOfShape "
             "fills (0.02 everywhere), so the outputs are near-uniform: these cells test that the graph compiles and "
             "runs, the error says little about numerics.",
    "pytorch-converted": "Old PyTorch exporters' nn layers (opset 6-9), normalized to opset 17 first.",
    "pytorch-operator": "Old PyTorch exporters' tensor operators (opset 6-9), normalized to opset 17 first.",
    "simple": "Hand-written ONNX graphs, fed their own `test_data_set_0` where it matches the inputs (a shape given "
              "as an input is then a valid shape, not random integers); the rest hold training ops, string inputs "
              "or sequence ops.",
    "hf": "Hugging Face `transformers` classes from small configs, random init, nothing downloaded "
          "(models/hf_suite.py); validated against PyTorch eager.",
}
STATUS_ORDER = ("pass", "refused", "not run", "failed")
EXIT_STATUS = {0: "pass", 5: "refused", 9: "refused", 11: "not run"}


def onnx_suite(suite: str) -> list[tuple[str, str]]:
    """(name, model source) for one of the onnx wheel's test-model folders."""
    import onnx

    data = Path(onnx.__file__).parent / "backend" / "test" / "data" / suite
    if suite == "light":
        return [(p.stem.removeprefix("light_"), str(p)) for p in sorted(data.glob("light_*.onnx"))]
    return [(p.parent.name.removeprefix("test_"), str(p)) for p in sorted(data.glob("*/model.onnx"))]


def model_sources(suite: str) -> list[tuple[str, str]]:
    if suite in ONNX_SUITES:
        return onnx_suite(suite)
    if suite == "hf":
        from edgecc.models import hf_suite

        return [(name, f"{hf_suite.__file__}:{factory.__name__}") for name, factory in hf_suite.hf_suite()]
    from edgecc.models import list_models

    return [(name, name) for name in list_models()]


def run_cell(name: str, source: str, cell: str, root: Path, timeout: float) -> dict:
    """One `edgecc compile` of `source` for `cell` ("target/backend"), classified."""
    target, backend = cell.split("/")
    out = root / f"{re.sub(r'[^A-Za-z0-9_.-]', '-', name)}-{target}-{backend}"
    argv = [str(Path(sys.executable).parent / "edgecc"), "--quiet", "compile", source, "--target", target,
            "--backend", backend, "-o", str(out), "--name", re.sub(r"[^A-Za-z0-9_.+-]", "-", name)[:64], "--force"]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=root)
        code, stderr = p.returncode, p.stderr
    except subprocess.TimeoutExpired as e:
        code, stderr = None, (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else ""
    seconds = round(time.perf_counter() - t0, 1)
    row = {"model": name, "cell": cell, "seconds": seconds, "exit": code}
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    message = next((ln for ln in reversed(lines) if ln.startswith("edgecc:")), lines[-1] if lines else "")
    # the model's path as its file name (the row names the model, and equal messages then share one note)
    file = source.split(":")[0]
    message = message.replace(file, Path(file).name).replace(str(ROOT) + "/", "")
    if code is None:
        row.update(status="failed", message=f"timed out after {timeout:.0f} s")
    elif code == 0:
        manifest = json.loads((out / "manifest.json").read_text())
        v = manifest.get("validation", {})
        row.update(status="pass" if v.get("status") == "passed" else "failed",
                   max_abs_error=v.get("max_abs_error"), message="" if v.get("status") == "passed" else
                   f"validation {v.get('status')}")
    else:
        row.update(status=EXIT_STATUS.get(code, "failed"), message=message.removeprefix("edgecc: error: ")[:400])
        if "Traceback (most recent call last)" in stderr or "internal error" in message or code < 0:
            row["internal"] = True
        if len(lines) > 1 and not row.get("internal"):
            row["stderr_lines"] = len(lines)  # an error must be one line: more is flagged in the report
    if row["status"] == "pass" or not os.environ.get("COVERAGE_KEEP"):
        subprocess.run(["rm", "-rf", str(out)], check=False)
    return row


def run_suite(suite: str, cells, jobs: int, timeout: float, limit: int | None, only: str | None) -> dict:
    models = model_sources(suite)
    if only:
        models = [(n, s) for n, s in models if re.search(only, n)]
    models = models[:limit] if limit else models
    work = [(n, s, c) for n, s in models for c in cells]
    started = datetime.datetime.now(datetime.UTC)
    with tempfile.TemporaryDirectory(prefix=f"edgecc-coverage-{suite}-") as tmp, ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(run_cell, n, s, c, Path(tmp), timeout) for n, s, c in work]
        rows = []
        for f in futures:
            rows.append(f.result())
            r = rows[-1]
            print(f"{suite:18} {r['model'][:40]:40} {r['cell']:22} {r['status']:8} {r['seconds']:6.1f}s "
                  f"{r.get('message', '')[:100]}", flush=True)
    return {"suite": suite, "cells": list(cells), "models": [n for n, _ in models], "rows": rows,
            "date": started.strftime("%Y-%m-%d %H:%M UTC"), "commit": _commit(), "command": _command(),
            "host": f"{os.cpu_count()} cores, {sys.platform}"}


def merge(old: dict, new: dict) -> dict:
    """`old` results with the cells `new` ran replaced: models and cells keep the suite's order."""
    ran = {(r["model"], r["cell"]) for r in new["rows"]}
    rows = [r for r in old["rows"] if (r["model"], r["cell"]) not in ran] + new["rows"]
    names = [n for n, _ in model_sources(new["suite"])]
    present = {r["model"] for r in rows}
    runs = [*old.get("runs", [_run(old)]), _run(new)]
    return {**new, "rows": rows, "models": [n for n in names if n in present],
            "cells": list(dict.fromkeys([*old["cells"], *new["cells"]])), "runs": runs}


def _run(result: dict) -> dict:
    return {k: result[k] for k in ("date", "commit", "command", "host")}


def _commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=ROOT).stdout.strip()
        return sha + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _command(argv=None) -> str:
    """The command line, less the options that only say where files go (--results, --out)."""
    args, skip = [], False
    for a in sys.argv[1:] if argv is None else argv:
        if skip or a.split("=")[0] in ("--results", "--out"):
            skip = not skip and "=" not in a
            continue
        args.append(shlex.quote(a))
    return " ".join(["python benchmarks/coverage.py", *args])


def _cell_text(row: dict) -> str:
    if row["status"] == "pass":
        err = row.get("max_abs_error")
        return f"pass ({err:.1e})" if isinstance(err, (int, float)) else "pass"
    return f"{row['status']}{' (internal error)' if row.get('internal') else ''} [{row['note']}]"


def render(results: list[dict]) -> str:
    """The Markdown report of every suite's results."""
    order = {s: i for i, s in enumerate(SUITES)}
    results = sorted(results, key=lambda r: order.get(r["suite"], 99))
    out = ["# Model coverage", "",
           "Which models that edgecc did not write compile and validate, per target/backend cell. Written by "
           "`benchmarks/coverage.py` (do not edit by hand); each cell is one `edgecc compile` in its own process, "
           "validated against ONNX Runtime (.onnx) or PyTorch eager, on random inputs of the model's shapes.", "",
           "pass: compiled and matched the reference (max abs error). refused: a one-line refusal naming the op, or "
           "the board's RAM/flash budget. not run: needs hardware this host lacks. failed: anything else.", ""]
    out += ["| suite | run | commit | command |", "|---|---|---|---|"]
    out += [f"| {r['suite']} | {run['date']}, {run['host']} | {run['commit']} | `{run['command']}` |"
            for r in results for run in r.get("runs", [_run(r)])]
    out += ["", "## Totals", "", "| suite | models | cell | pass | refused | not run | failed | internal errors |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for cell in r["cells"]:
            rows = [x for x in r["rows"] if x["cell"] == cell and x["model"] in r["models"]]
            n = {s: sum(x["status"] == s for x in rows) for s in STATUS_ORDER}
            pct = f" ({100 * n['pass'] / len(rows):.0f}%)" if rows else ""
            out.append(f"| {r['suite']} | {len(rows)} | {cell} | {n['pass']}{pct} | {n['refused']} | {n['not run']} "
                       f"| {n['failed']} | {sum(bool(x.get('internal')) for x in rows)} |")
    for r in results:
        notes: dict[str, int] = {}
        for x in r["rows"]:
            if x["status"] != "pass":
                x["note"] = notes.setdefault(x["message"], len(notes) + 1)
        out += ["", f"## {r['suite']}", ""]
        if r["suite"] in SUITE_NOTES:
            out += [SUITE_NOTES[r["suite"]], ""]
        out += ["| model | " + " | ".join(r["cells"]) + " |",
                "|---|" + "---|" * len(r["cells"])]
        by = {(x["model"], x["cell"]): x for x in r["rows"]}
        for m in r["models"]:
            out.append(f"| {m} | " + " | ".join(_cell_text(by[m, c]) if (m, c) in by else "-" for c in r["cells"])
                       + " |")
        if notes:
            out += ["", "Messages:", ""]
            out += [f"{i}. `{msg.replace('`', chr(39))}`" if msg else f"{i}. (no message)"
                    for msg, i in notes.items()]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suites", default=",".join(DEFAULT_SUITES),
                    help=f"comma-separated, of {', '.join(SUITES)} (default: all but zoo)")
    ap.add_argument("--cells", help="comma-separated target/backend (default: each suite's, see DEFAULT_CELLS)")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="compiles at once (default 1)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per cell (default 900)")
    ap.add_argument("--limit", type=int, help="first N models of each suite only")
    ap.add_argument("--models", help="a regular expression: only models whose name matches")
    ap.add_argument("--results", default=str(ROOT / "build" / "coverage"), help="folder for per-suite JSON results")
    ap.add_argument("--out", default=str(ROOT / "docs" / "coverage.md"), help="Markdown report to write")
    ap.add_argument("--render-only", action="store_true", help="rewrite the report from the saved results")
    args = ap.parse_args(argv)
    suites = [s for s in args.suites.split(",") if s]
    if unknown := [s for s in suites if s not in SUITES]:
        ap.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        for suite in suites:
            cells = args.cells.split(",") if args.cells else DEFAULT_CELLS[suite]
            result = run_suite(suite, cells, args.jobs, args.timeout, args.limit, args.models)
            path = results_dir / f"{suite}.json"
            if path.is_file() and (args.cells or args.limit or args.models):  # a partial run updates its cells
                result = merge(json.loads(path.read_text()), result)
            path.write_text(json.dumps(result, indent=1))
    results = [json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))]
    Path(args.out).write_text(render(results))
    print(f"wrote {args.out} ({len(results)} suite(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
