"""Sharded CI builds: `edgecc build --shard K/N` builds shard K of N deterministic parts of the matrix, balanced by
expected cost; `edgecc build merge SUMMARY.json...` joins the N shard summaries into one.

Every shard job plans the whole matrix (same config, same inputs) and keeps its part, so no job needs to talk to
another. The cost of a cell is its wall seconds in a previous summary (`--costs build/summary.json`), else the size
of its model: the fp32 weights of a zoo model, the file of a model file. The partition is greedy
longest-processing-time: cells by falling cost (ties in plan order), each to the least loaded shard (ties: the
lowest K), so it depends on nothing but the plan and the costs.

    >>> parts = partition(plan_cells(), 3, cell_costs(plan_cells()))                    # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from edgecc.errors import ReportError, UsageError


@dataclass(frozen=True)
class Shard:
    index: int  # K, from 1
    count: int  # N

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """`K/N` (shard K of N, K from 1 to N) → Shard; UsageError saying how to write it otherwise.

    >>> parse_shard("2/4")
    Shard(index=2, count=4)
    """
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise UsageError(f"--shard {text!r}: write it as K/N, shard K of N, e.g. --shard 2/4")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1:
        raise UsageError(f"--shard {text}: N (the number of shards) must be 1 or more")
    if not 1 <= k <= n:
        raise UsageError(f"--shard {text}: K must be from 1 to {n} (shards are numbered from 1)")
    return Shard(k, n)


def cell_costs(cells, previous: str | None = None) -> dict[str, float]:
    """Expected cost of each pending cell by name: its wall seconds in the `previous` summary, else (no summary) its
    model's size in bytes. Cells the summary lacks cost the median of those it has; refused cells cost nothing."""
    pending = [c for c in cells if c.status == "pending"]
    if previous:
        seconds = _previous_seconds(previous)
        known = [seconds[c.name] for c in pending if c.name in seconds]
        typical = statistics.median(known) if known else 1.0
        costs = {c.name: seconds.get(c.name, typical) for c in pending}
    else:
        sizes: dict[str, float] = {}
        costs = {c.name: sizes.setdefault(c.source or c.model, model_size(c.source or c.model)) for c in pending}
    return {c.name: costs.get(c.name, 0.0) for c in cells}


def _previous_seconds(path: str) -> dict[str, float]:
    summary = read_summary(path)
    out = {}
    for c in summary["cells"]:
        s = (c.get("extra") or {}).get("wall_seconds") or c.get("compile_seconds")
        if isinstance(s, (int, float)) and s > 0:
            out[f"{c['model']}-{c['target']}-{c['backend']}"] = float(s)
    return out


def model_size(source: str) -> float:
    """Bytes of a model: a zoo model's fp32 weights (its module is built, not run), a model file's size (a factory
    file's own size: its weights are not known without running it)."""
    if ".py:" in source or source.endswith((".onnx", ".pt2")):
        path = Path(source.partition(".py:")[0] + ".py" if ".py:" in source else source)
        return float(path.stat().st_size) if path.is_file() else 1.0
    from edgecc.models import get_model

    module = get_model(source).builder()
    return float(sum(p.numel() for p in module.parameters()) * 4) or 1.0


def partition(cells, count: int, costs: dict[str, float]) -> list[list]:
    """The cells in `count` shards of about equal total cost, each in plan order; every cell in exactly one."""
    order = {c.name: i for i, c in enumerate(cells)}
    loads = [0.0] * count
    shards: list[list] = [[] for _ in range(count)]
    for c in sorted(cells, key=lambda c: (-costs.get(c.name, 0.0), order[c.name])):
        k = min(range(count), key=lambda i: (loads[i], i))
        shards[k].append(c)
        loads[k] += costs.get(c.name, 0.0)
    return [sorted(s, key=lambda c: order[c.name]) for s in shards]


def plan_digest(cells) -> str:
    """sha256 of the planned matrix (cells, sources, refusals, validation samples): the same for every shard of one
    config."""
    plan = [[c.name, c.source, c.status, c.reason, getattr(c, "validate_with", ""), getattr(c, "validate_samples", 0)]
            for c in cells]
    return hashlib.sha256(json.dumps(plan).encode()).hexdigest()


def shard_meta(cells, shard: Shard, costs_from: str | None) -> dict:
    """What a shard's summary records so that `build merge` can check its shards belong together."""
    return {"shard": {"index": shard.index, "count": shard.count, "plan_sha256": plan_digest(cells),
                      "plan": [c.name for c in cells], "costs": f"wall seconds in {costs_from}" if costs_from
                      else "model size"}}


def read_summary(path: str | Path) -> dict:
    p = Path(path)
    try:
        summary = json.loads(p.read_text())
    except FileNotFoundError:
        raise ReportError(f"summary {path} does not exist; give the summary.json an `edgecc build` wrote") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError(f"{path} is not a build summary (not JSON: {e}); give the summary.json of "
                          "`edgecc build`") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("cells"), list) or not all(
            isinstance(c, dict) and {"model", "target", "backend", "status"} <= set(c) for c in summary["cells"]):
        raise ReportError(f"{path} is not a build summary (no cells list); give the summary.json of `edgecc build`")
    return summary


_SAME = ("plan_sha256", "count", "costs")  # what the shards of one matrix share


def merge_summaries(paths: list[str]) -> tuple[dict, list[str]]:
    """One summary from the N shard summaries of one matrix, cells in plan order; the names of missing cells.
    ReportError when they are not shards of one config, or a shard is given twice."""
    from edgecc.compiler.matrix import count

    shards = [(p, read_summary(p)) for p in paths]
    for p, s in shards:
        if not isinstance(s.get("shard"), dict):
            raise ReportError(f"{p} is not a shard summary (built without --shard); merge the summaries of "
                              "`edgecc build --shard K/N`")
    first_path, first = shards[0][0], shards[0][1]["shard"]
    for p, s in shards[1:]:
        if [s["shard"].get(k) for k in _SAME] != [first.get(k) for k in _SAME]:
            raise ReportError(f"{p} and {first_path} are shards of different matrices (config, models, shard "
                              "count or --costs differ); merge the shards of one `edgecc build --shard K/N` run")
    seen: dict[int, str] = {}
    for p, s in shards:
        k = s["shard"].get("index")
        if k in seen:
            raise ReportError(f"{p} and {seen[k]} are both shard {k}/{first['count']}; give each shard once")
        seen[k] = p
    plan = first["plan"]
    cells = {f"{c['model']}-{c['target']}-{c['backend']}": c for _, s in shards for c in s["cells"]}
    missing = [n for n in plan if n not in cells]
    merged = [cells[n] for n in plan if n in cells]
    summary = {"schema_version": 1, "wall_seconds": max(s.get("wall_seconds", 0) for _, s in shards),
               "jobs": sum(s.get("jobs", 0) for _, s in shards), "executor": "shards",
               "counts": count(typed_cells(merged)),
               "cells": merged, "shards": [{"index": s["shard"]["index"], "summary": str(p),
                                            "wall_seconds": s.get("wall_seconds"), "cells": len(s["cells"])}
                                           for p, s in sorted(shards, key=lambda x: x[1]["shard"]["index"])]}
    if missing:
        absent = sorted(set(range(1, first["count"] + 1)) - set(seen))
        summary["missing"] = {"cells": missing, "shards": absent}
    return summary, missing


def typed_cells(cells: list[dict]) -> list:
    """Summary cells (JSON) as matrix.Cell."""
    from edgecc.compiler.matrix import Cell

    return [Cell(**{k: v for k, v in c.items() if k in Cell.__dataclass_fields__}) for c in cells]


def merge_command(paths: list[str], output: str) -> tuple[dict, str]:
    """`edgecc build merge`: write the merged summary.json / summary.md under `output`; (summary, what is missing
    or failed, or "") — written either way, so CI publishes the table."""
    from edgecc.compiler.matrix import write_summary

    summary, missing = merge_summaries(paths)
    write_summary(summary, typed_cells(summary["cells"]), output)
    problems = []
    if missing:
        shards = summary["missing"]["shards"]
        problems.append(f"{len(missing)} cell(s) missing ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}"
                        + (f"; no summary of shard(s) {', '.join(map(str, shards))}" if shards else "") + ")")
    if summary["counts"]["failed"]:
        problems.append(f"{summary['counts']['failed']} cell(s) failed")
    problem = (f"{' and '.join(problems)} of {len(summary['cells']) + len(missing)}; see "
               f"{Path(output) / 'summary.json'}") if problems else ""
    return summary, problem
