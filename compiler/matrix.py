"""`edgecc build`: the CI matrix. Models × targets × backends, each cell compiled (and validated where it can
run here) in its own process; the summary says per cell ok / failed / refused-with-reason.

Config (TOML, every key optional):

    models = ["cifar-cnn", "net.py:build"]    # zoo names or model files; default: the zoo (tiny ones on MCUs)
    targets = ["host", "orangepi5-cpu"]        # default: every target
    backends = ["iree", "tvm"]                 # default: every implemented backend each target lists
    jobs = 2                                   # parallel processes (default: CPU count)
    output = "build"

Where the cells build is an executor: LocalExecutor (here, a process pool) or matrix_ray.RayExecutor (Ray tasks on
a cluster); matrix_shards splits the matrix into CI shards and merges their summaries.
"""

from __future__ import annotations

import json
import os
import sys
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

from edgecc.errors import BudgetError, EdgeccError, TargetError, UsageError

CONFIG_KEYS = ("models", "targets", "backends", "jobs", "output")


@dataclass
class Cell:
    model: str
    target: str
    backend: str
    source: str = ""  # what to compile: a zoo name or a model file / factory
    status: str = "pending"  # ok | failed | refused
    reason: str = ""
    checked: str = ""  # how numerics were checked (ran on ...), or why not
    max_abs_error: float | None = None
    compile_seconds: float | None = None
    artifact_bytes: int | None = None
    bundle: str = ""
    extra: dict = field(default_factory=dict)
    validate_with: str = ""  # --validate-with for every cell
    validate_samples: int = 8

    @property
    def name(self) -> str:
        return f"{self.model}-{self.target}-{self.backend}"


def load_config(path: str | None) -> dict:
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise EdgeccError(f"build config {path} does not exist")
    try:
        cfg = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise EdgeccError(f"{path}: not valid TOML: {e}") from None
    unknown = sorted(set(cfg) - set(CONFIG_KEYS))
    if unknown:
        raise EdgeccError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(CONFIG_KEYS)}")
    for key in ("models", "targets", "backends"):
        if key in cfg and not (isinstance(cfg[key], list) and all(isinstance(x, str) and x for x in cfg[key])):
            raise UsageError(f"{path}: {key} must be a list of names, like {key} = [\"a\", \"b\"]")
    if "jobs" in cfg and (not isinstance(cfg["jobs"], int) or isinstance(cfg["jobs"], bool) or cfg["jobs"] < 1):
        raise UsageError(f"{path}: jobs = {cfg['jobs']!r}: must be a whole number of processes, 1 or more")
    if "output" in cfg and not (isinstance(cfg["output"], str) and cfg["output"]):
        raise UsageError(f"{path}: output must be a folder name (a string)")
    return cfg


def plan_cells(models=None, targets=None, backends=None) -> list[Cell]:
    """The matrix. Refused backends stay in as cells (reported with their reason); unknown names raise."""
    from edgecc.compiler.backends import BACKEND_MODULES
    from edgecc.models import get_model, list_models
    from edgecc.targets import get_target, list_targets

    all_targets = [get_target(t) for t in targets] if targets else list(list_targets().values())
    specs = [_spec(m, get_model) for m in models] if models else [
        (s.name, s.name, s.tags) for s in list_models().values()]
    for b in backends or ():
        if b not in BACKEND_MODULES:
            raise TargetError(f"unknown backend {b!r}; known backends: {', '.join(BACKEND_MODULES)}")
    implemented = [b for b in BACKEND_MODULES if _implemented(b)]
    cells = []
    for t in all_targets:
        for name, source, tags in specs:
            if t.kind == "mcu" and not models and "tiny" not in tags:
                continue  # default matrix: large models are not candidates for microcontrollers
            for b in t.backends:
                if (backends and b not in backends) or (not backends and b not in implemented):
                    continue
                cell = Cell(name, t.name, b, source)
                if t.backends[b].refused:
                    cell.status, cell.reason = "refused", t.backends[b].refused
                cells.append(cell)
    return cells


def _spec(model: str, get_model) -> tuple[str, str, tuple]:
    """(cell name, source, tags) for a zoo name or a model file: `net.py:build` -> `net-build`."""
    if ".py:" in model or model.endswith((".onnx", ".pt2")):
        path, _, func = model.partition(".py:")
        stem = Path(path if func else model).stem
        return (f"{stem}-{func}" if func else stem), model, ()
    spec = get_model(model)
    return spec.name, spec.name, spec.tags


def _implemented(backend: str) -> bool:
    import importlib.util

    from edgecc.compiler.backends import BACKEND_MODULES

    return importlib.util.find_spec(BACKEND_MODULES[backend]) is not None


def build_cell(cell: Cell, output: str, folder: str | Path | None = None, record_as: str | Path | None = None) -> Cell:
    """Compile one cell into `folder` (default output/<cell name>), in a worker process of the local pool or on a
    Ray worker; `record_as` is the folder the bundle will be moved to, when it is built elsewhere."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    from edgecc.compiler.driver import compile

    t0 = time.perf_counter()
    try:
        bundle = compile(cell.source or cell.model, target=cell.target, backend=cell.backend,
                         output=Path(folder or Path(output) / cell.name), name=cell.model, record_as=record_as,
                         validate_with=cell.validate_with, validate_samples=cell.validate_samples)
    except BudgetError as e:
        cell.status, cell.reason = "refused", str(e)
    except EdgeccError as e:
        cell.status, cell.reason = "failed", f"{type(e).__name__}: {e}"
    except Exception as e:  # a crash in a tool or in edgecc: still one cell, not the whole matrix
        cell.status, cell.reason = "failed", f"internal error: {type(e).__name__}: {str(e).strip()[:300]}"
    else:
        m = bundle.manifest
        v = m["validation"]
        cell.status, cell.bundle = "ok", str(bundle.path)
        cell.compile_seconds = m["compile"]["seconds"]
        cell.artifact_bytes = m["files"][m["artifact"]["entry"]]["size"]
        cell.checked = f"validated on {v['ran_on']}" if v["status"] == "passed" else v["status"]
        cell.max_abs_error = v.get("max_abs_error")
        if "memory" in m["artifact"]["info"]:
            mem = m["artifact"]["info"]["memory"]
            cell.extra = {"flash_bytes": mem["flash_bytes"], "ram_bytes": mem["ram_bytes"]}
    cell.extra["wall_seconds"] = round(time.perf_counter() - t0, 2)
    return cell


class LocalExecutor:
    """The cells in a pool of `jobs` processes on this machine."""

    name = "local"

    def __init__(self, jobs: int | None = None):
        self.jobs = max(1, jobs or os.cpu_count() or 1)

    def build(self, cells: list[Cell], output: str) -> Iterator[Cell]:
        """Each cell as it finishes."""
        # spawn: each cell gets a clean interpreter (TVM / IREE / torch state never leaks between cells)
        with ProcessPoolExecutor(max_workers=self.jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(build_cell, c, output): c for c in cells}
            for f in as_completed(futures):
                try:
                    yield f.result()
                except Exception as e:  # the worker process died (e.g. a segfault in a native library)
                    cell = futures[f]
                    cell.status, cell.reason = "failed", f"worker crashed: {type(e).__name__}: {e}"
                    yield cell


def run_matrix(cells: list[Cell], output: str = "build", jobs: int | None = None, progress: bool | str = True,
               executor=None, meta: dict | None = None) -> dict:
    """Build every pending cell with `executor` (default: a local pool of `jobs` processes); write summary.json and
    summary.md under `output`. `progress`: "bar" (or True), "lines" (one per finished cell, for CI logs) or off;
    `meta` joins the summary (a shard's plan).

        >>> run_matrix(plan_cells(["resnet8"], ["host"]), "build", jobs=2)              # doctest: +SKIP
    """
    executor = executor or LocalExecutor(jobs)
    pending = [c for c in cells if c.status == "pending"]
    t0 = time.perf_counter()
    done: list[Cell] = [c for c in cells if c.status != "pending"]
    report = _progress("bar" if progress is True else progress, len(pending))
    for cell in executor.build(pending, output):
        done.append(cell)
        report(cell)
    report(None)
    order = {c.name: i for i, c in enumerate(cells)}
    done.sort(key=lambda c: order[c.name])
    summary = {"schema_version": 1, "wall_seconds": round(time.perf_counter() - t0, 1), "jobs": executor.jobs,
               "executor": executor.name, "counts": count(done), "cells": [asdict(c) for c in done], **(meta or {})}
    write_summary(summary, done, output)
    return summary


def count(cells: list[Cell]) -> dict:
    return {s: sum(c.status == s for c in cells) for s in ("ok", "failed", "refused")}


def write_summary(summary: dict, cells: list[Cell], output: str | Path) -> None:
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(markdown(cells, summary))


def markdown(cells: list[Cell], summary: dict) -> str:
    nodes = any("node" in c.extra for c in cells)  # built on a cluster: which node built which cell
    lines = ["| model | target | backend | status | checked | max abs err | compile s | size |" + (" node |" * nodes),
             "|---|---|---|---|---|---|---|---|" + ("---|" * nodes)]
    for c in cells:
        err = f"{c.max_abs_error:.1e}" if c.max_abs_error is not None else ""
        size = f"{c.artifact_bytes / 1024:.0f} KiB" if c.artifact_bytes else ""
        if "flash_bytes" in c.extra:
            size = f"flash {c.extra['flash_bytes'] / 1024:.0f} KiB, RAM {c.extra['ram_bytes'] / 1024:.0f} KiB"
        detail = c.checked if c.status == "ok" else c.reason
        lines.append(f"| {c.model} | {c.target} | {c.backend} | {c.status} | {detail.replace('|', '/')} | {err} | "
                     f"{c.compile_seconds if c.compile_seconds is not None else ''} | {size} |"
                     + (f" {c.extra.get('node', '')} |" if nodes else ""))
    n = summary["counts"]
    lines.append(f"\n{n['ok']} ok, {n['failed']} failed, {n['refused']} refused "
                 f"({summary['wall_seconds']} s wall, {summary['jobs']} processes"
                 + (f", {summary['executor']}" if summary.get("executor", "local") != "local" else "") + ")\n")
    return "\n".join(lines)


def _progress(mode, total: int):
    """A callback for each finished cell (None at the end): a rich bar on a terminal, a line per cell in CI logs."""
    if not mode or not total:
        return lambda cell: None
    if mode == "lines":
        seen = []

        def line(cell):
            if cell is not None:
                seen.append(cell)
                where = f" on {cell.extra['node']}" if "node" in cell.extra else ""
                print(f"edgecc: [{len(seen)}/{total}] {cell.name}: {cell.status}{where}", file=sys.stderr, flush=True)
        return line
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    p = Progress(TextColumn("{task.description:<50}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                 console=Console(stderr=True), transient=False)
    p.start()
    task = p.add_task("building", total=total)

    def bar(cell):
        if cell is None:
            p.stop()
        else:
            p.update(task, advance=1, description=f"{cell.name}: {cell.status}")
    return bar
