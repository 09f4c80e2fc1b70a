"""IREE CPU executors A/B: one host bundle per model, run under each executor configuration (local-task with IREE's
pinned workers, local-task with unpinned workers, local-sync, ...), each configuration in its own process per round,
interleaved and rotated over --rounds rounds so that the machine's drifting load hits all alike.

Reports, per model and configuration, the p50 and p90 over all rounds' samples (wall clock around one call, batch 1,
input in memory), p90/p50, and the per-round paired ratio to the first configuration (median over rounds): on a
shared machine the paired ratio is the number to trust. The 1-minute load average at each round is recorded.
This is what chose the `executor = "auto"` rule of targets/host.toml (compiler/backends/iree/executor.py).

    .venv/bin/python benchmarks/iree_executors.py --models resnet8 ds-cnn mobilenetv2 resnet18 --rounds 8 \\
        --json build/iree-executors.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edgecc.runtime.bench import worker_env
from edgecc.runtime.stats import summarize

CONFIGS = {  # name: (driver, iree.runtime flags); {threads} is filled in
    "local-task pinned": ("local-task", ["--task_topology_max_group_count={threads}"]),
    "local-task unpinned": ("local-task", ["--task_topology_group_count={threads}"]),
    "local-sync": ("local-sync", []),
}

WORKER = r"""
import json, sys, time
import numpy as np
import iree.runtime as rt
from edgecc.bundle import Bundle
path, driver, flags = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
warmup, iters = int(sys.argv[4]), int(sys.argv[5])
for f in flags:
    rt.flags.parse_flags(f)
b = Bundle.load(path)
xs = [np.ascontiguousarray(x) for x in b.reference_inputs()]
fn = rt.load_vm_flatbuffer_file(str(b.artifact()), driver=driver)[b.manifest["artifact"]["info"]["function"]]
def run():
    out = fn(*xs)
    (out[0] if isinstance(out, (list, tuple)) else out).to_host()
for _ in range(warmup):
    run()
samples = []
for _ in range(iters):
    t0 = time.perf_counter_ns(); run(); samples.append((time.perf_counter_ns() - t0) / 1e6)
print(json.dumps(samples))
"""


def one_round(bundle: Path, config: str, threads: int, warmup: int, iters: int) -> list[float]:
    driver, flags = CONFIGS[config]
    argv = [sys.executable, "-c", WORKER, str(bundle), driver, json.dumps([f.format(threads=threads) for f in flags]),
            str(warmup), str(iters)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=worker_env(threads), timeout=900)
    if proc.returncode:
        raise RuntimeError(f"{config}: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ab(bundle: Path, configs: list[str], a) -> dict:
    samples: dict[str, list[float]] = {c: [] for c in configs}
    rounds: dict[str, list[dict]] = {c: [] for c in configs}
    loads = []
    for rnd in range(a.rounds):
        loads.append(os.getloadavg()[0])
        for c in configs[rnd % len(configs):] + configs[:rnd % len(configs)]:
            s = one_round(bundle, c, a.threads, a.warmup, a.iters)
            samples[c] += s
            rounds[c].append({"p50": float(np.percentile(s, 50)), "p90": float(np.percentile(s, 90))})
    out = {"load_avg_1min": loads, "configs": {}}
    base = configs[0]
    for c in configs:
        st = summarize(samples[c])
        paired = [r["p50"] / b["p50"] for r, b in zip(rounds[c], rounds[base], strict=True)]
        paired90 = [r["p90"] / b["p90"] for r, b in zip(rounds[c], rounds[base], strict=True)]
        out["configs"][c] = {"p50_ms": st["p50"], "p90_ms": st["p90"], "p90_over_p50": st["p90"] / st["p50"],
                             "paired_p50_ratio": statistics.median(paired),
                             "paired_p90_ratio": statistics.median(paired90),
                             "rounds": rounds[c], "samples": samples[c]}
    return out


def markdown(result: dict) -> str:
    head = (f"Measured {result['date']}, {result['threads']} threads, {result['rounds']} interleaved rounds x "
            f"{result['iters']} iterations, each configuration in its own process; ratio = median over rounds of "
            f"the round's p50 (p90) / the first configuration's.")
    lines = [head, "", "| model | configuration | p50 ms | p90 ms | p90/p50 | paired p50 ratio | paired p90 ratio | "
             "load avg |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for model, res in result["models"].items():
        load = f"{min(res['load_avg_1min']):.1f}-{max(res['load_avg_1min']):.1f}"
        for c, r in res["configs"].items():
            lines.append(f"| {model} | {c} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | {r['p90_over_p50']:.2f} | "
                         f"{r['paired_p50_ratio']:.2f} | {r['paired_p90_ratio']:.2f} | {load} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet8", "mobilenetv2"])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--work", type=Path, default=Path("build/iree-executors"))
    p.add_argument("--rebuild", action="store_true")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    import edgecc

    result = {"schema": "edgecc.iree-executors/1", "date": time.strftime("%Y-%m-%d"), "threads": a.threads,
              "rounds": a.rounds, "iters": a.iters, "warmup": a.warmup, "logical_cpus": os.cpu_count(), "models": {}}
    for model in a.models:
        out = a.work / f"{model}-host-iree"
        if a.rebuild or not (out / "manifest.json").exists():
            shutil.rmtree(out, ignore_errors=True)
            edgecc.compile(model, target="host", backend="iree", output=out)
        print(f"[{model}] A/B of {', '.join(a.configs)}", file=sys.stderr)
        result["models"][model] = ab(out, list(a.configs), a)
    print(markdown(result))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
