"""IREE per-dispatch timing for `edgecc profile`: the bundle's own module runs in iree-benchmark-module on this
host's CPU (local-sync, one thread) with IREE's HAL profiling on (`--device_profiling_mode=host-execution`), and
`iree-profile dispatch` reads back every dispatch's execution time. The share of a dispatch is its total time over
the dispatches' total; dispatches that ran once (initialization: packing constant weights) are listed apart.

    >>> profile_dispatches(bundle)["kernels"][1]                                  # doctest: +SKIP
    {'step': 1, 'kernel': 'main_dispatch_1_conv_8x8x16x3x3_f32', 'us': 3.9, 'share': 0.16, 'calls': 28762}
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from edgecc.errors import CannotRunHere, ToolError
from edgecc.tools import find_tool, run_tool

METHOD = ("IREE HAL profiling (iree-benchmark-module --device_profiling_mode=host-execution, local-sync, 1 thread, "
          "read with iree-profile dispatch): wall clock per dispatch execution, averaged over every inference")


def profile_dispatches(bundle, min_time_s: float = 0.5, timeout: float = 600) -> dict:
    """{"method", "unit", "total", "kernels": [{step, kernel, us, share, calls}], "at_initialization"} for an IREE
    bundle that runs on this host's CPU; CannotRunHere otherwise."""
    m = bundle.manifest
    info = m["artifact"]["info"]
    if info.get("driver", "local-task") not in ("local-task", "local-sync") or m["target"].get("transport", {}).get(
            "kind", "local") != "local":
        raise CannotRunHere(f"per-dispatch timing runs IREE CPU bundles on this host; {m['target']['name']} "
                            f"({info.get('driver')}) does not run here")
    inputs = [f"--input=@{bundle.path / t['file']}" for t in m["io"]["inputs"]]
    with tempfile.TemporaryDirectory(prefix="edgecc-dispatches-") as tmp:
        prof = Path(tmp) / "model.ireeprof"
        run_tool([find_tool("iree-benchmark-module"), f"--module={bundle.artifact()}", "--device=local-sync",
                  f"--function={info.get('function', 'main')}", *inputs, f"--benchmark_min_time={min_time_s}s",
                  "--device_profiling_mode=host-execution", f"--device_profiling_output={prof}"], timeout=timeout)
        out = run_tool([find_tool("iree-profile"), "dispatch", "--format=jsonl", str(prof)], timeout=timeout).stdout
    groups = [g for g in map(json.loads, filter(None, out.splitlines())) if g.get("type") == "host_dispatch_group"]
    if not groups:
        raise ToolError("iree-profile found no dispatch executions in the profile")
    runs = max(g["count"] for g in groups)
    per_run = [g for g in groups if g["count"] >= runs // 2]
    per_run.sort(key=lambda g: (_index(g["key"]), g["function_ordinal"]))
    us = [g["total_ns"] / runs / 1e3 for g in per_run]
    total = sum(us) or 1.0
    return {"method": METHOD, "ran_on": "host", "unit": "us", "total": round(total, 2), "inferences": runs,
            "kernels": [{"step": i, "kernel": g["key"], "comment": "", "us": round(t, 3), "share": round(t / total, 4),
                         "calls": g["count"]} for i, (g, t) in enumerate(zip(per_run, us, strict=True))],
            "at_initialization": [{"kernel": g["key"], "us": round(g["total_ns"] / 1e3, 2), "calls": g["count"]}
                                  for g in groups if g["count"] < runs // 2]}


def _index(key: str) -> int:
    """main_dispatch_12_... -> 12: the order of the dispatches in the module (graph order); others last."""
    found = re.search(r"dispatch_(\d+)", key)
    return int(found.group(1)) if found and not key.startswith("_encoding") else 1 << 20
