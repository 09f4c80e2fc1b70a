"""Host CPU benchmark: edgecc's IREE and TVM artifacts against ONNX Runtime and PyTorch eager.

Each runtime runs in its own process (TVM/IREE worker threads spin and would distort anything sharing their
process), all with the same thread count, interleaved over `--rounds` rounds so that drift in the machine's load
hits every runtime alike. The order rotates each round (A B C, B C A, C A B, ...): in a fixed order IREE always
ran right after PyTorch. Latency is wall clock (time.perf_counter_ns around one inference, batch 1, fp32, input
already in memory); the table shows medians over all rounds' samples and the ratio to ONNX Runtime (lower is
better). It says which CPU it ran on: a run elsewhere is its own result.

    .venv/bin/python benchmarks/host_vs_baselines.py                                   # resnet18 mobilenetv2
    .venv/bin/python benchmarks/host_vs_baselines.py --models resnet18 mobilenetv2 resnet50 resnet8 ds-cnn \\
        --threads 2 --rounds 5 --iters 20 --json build/host-bench.json

The edgecc bundles are built with the `host` target's defaults (validated against PyTorch) and kept under
--work (reused when present; --rebuild to rebuild). Untuned TVM is very slow on the big nets: --runtimes
limits what runs, and a runtime's iterations per round are capped by --budget-s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

from edgecc.runtime.stats import summarize

RUNTIMES = ("ort", "torch", "iree", "tvm")
LABELS = {"ort": "ONNX Runtime", "torch": "PyTorch eager", "iree": "edgecc IREE", "tvm": "edgecc TVM"}


def prepare(model: str, runtimes, work: Path, rebuild: bool) -> dict:
    """The edgecc bundles (one at least: the baselines run its model and reference input); returns paths and
    build facts, and the baselines' versions."""
    import edgecc

    facts: dict = {}
    work.mkdir(parents=True, exist_ok=True)
    for backend in ("iree", "tvm"):
        if backend not in runtimes:
            continue
        out = work / f"{model}-host-{backend}"
        if rebuild or not (out / "manifest.json").exists():
            if out.exists():
                shutil.rmtree(out)
            edgecc.compile(model, target="host", backend=backend, output=out)
        m = json.loads((out / "manifest.json").read_text())
        facts[backend] = {"bundle": str(out), "compile_s": m["compile"]["seconds"],
                          "max_abs_error": m["validation"].get("max_abs_error"),
                          "validation": m["validation"]["status"], "flags": m["compile"]["flags"],
                          "version": m["versions"].get("iree-base-compiler" if backend == "iree" else "apache-tvm")}
    if not facts:  # the baselines run the model and reference input of a bundle: build one
        facts.update(prepare(model, ("iree",), work, rebuild))
    for kind, package in (("ort", "onnxruntime"), ("torch", "torch")):
        if kind in runtimes:
            facts[kind] = {"version": metadata.version(package)}
    return facts


def measure(kind: str, facts: dict, a, iters: int) -> list[float]:
    """One round of one runtime, in its own process: edgecc bundles through `edgecc bench`'s worker
    (runtime/bench.py), ONNX Runtime and PyTorch through the baselines' worker (runtime/baselines.py), which runs
    the bundle's model on its reference input."""
    from edgecc.bundle import Bundle
    from edgecc.compiler.frontends import load_model
    from edgecc.runtime.baselines import run_baselines
    from edgecc.runtime.bench import bench_bundle

    if kind in ("iree", "tvm"):
        return list(bench_bundle(Bundle.load(facts[kind]["bundle"]), warmup=a.warmup, iters=iters,
                                 threads=a.threads).samples)
    ref = Bundle.load(facts["iree" if "iree" in facts else "tvm"]["bundle"])
    [base] = run_baselines(ref, [kind], "host", a.warmup, iters, a.threads, None, load_model=load_model)
    if base["status"] != "ok":
        raise RuntimeError(base["reason"])
    return base["timing"]["samples"]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def markdown(result: dict) -> str:
    rts = result["runtimes"]
    out = [f"Measured {result['date']} on {result['cpu']} ({result['logical_cpus']} logical CPUs), "
           f"{result['threads']} threads, batch 1, fp32; wall clock, median of {result['rounds']} interleaved "
           "rounds (order rotated each round), each runtime in its own process. "
           "Ratio = median / ONNX Runtime median (lower is better).", "",
           "| model | " + " | ".join(LABELS[r] for r in rts) + " | best edgecc vs ORT |",
           "|---|" + "---:|" * (len(rts) + 1)]
    for model, row in result["models"].items():
        ort = row.get("ort", {}).get("p50_ms")
        cells = []
        for r in rts:
            cell = row.get(r)
            if not cell:
                cells.append("—")
            elif "error" in cell:
                cells.append(f"failed: {cell['error'][:60]}")
            else:
                ratio = f" ({cell['p50_ms'] / ort:.2f}×)" if ort and r != "ort" else ""
                cells.append(f"{cell['p50_ms']:.2f} ms{ratio}")
        ours = [row[r]["p50_ms"] for r in ("iree", "tvm") if r in row and "p50_ms" in row[r]]
        best = f"{min(ours) / ort:.2f}×" if ours and ort else "—"
        out.append(f"| {model} | " + " | ".join(cells) + f" | {best} |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet18", "mobilenetv2"])
    p.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=20, help="timed iterations per runtime per round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--budget-s", type=float, default=20.0,
                   help="after the first round, cap on a runtime's timed seconds per round")
    p.add_argument("--work", type=Path, default=Path("build/host-bench"))
    p.add_argument("--rebuild", action="store_true")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)

    result = {"schema": "edgecc.host-bench/1", "date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(),
              "logical_cpus": os.cpu_count(), "threads": a.threads, "rounds": a.rounds, "iters": a.iters,
              "warmup": a.warmup, "method": "wall clock (time.perf_counter_ns around one inference)",
              "order": "interleaved, rotated one place each round",
              "runtimes": list(a.runtimes), "models": {}}
    for model in a.models:
        print(f"[{model}] building", file=sys.stderr)
        facts = prepare(model, a.runtimes, a.work, a.rebuild)
        samples: dict[str, list[float]] = {r: [] for r in a.runtimes}
        errors: dict[str, str] = {}
        for rnd in range(a.rounds):
            shift = rnd % len(a.runtimes)
            for kind in a.runtimes[shift:] + a.runtimes[:shift]:  # interleaved, rotated: A B C, B C A, C A B, ...
                if kind in errors:
                    continue
                before = samples[kind]
                iters = max(2, min(a.iters, int(a.budget_s * 1e3 / statistics.median(before)))) if before else a.iters
                try:
                    samples[kind] += measure(kind, facts, a, iters)
                except Exception as e:  # one runtime failing must not hide the others' numbers
                    errors[kind] = str(e)
            medians = {k: f"{statistics.median(v):.2f}" for k, v in samples.items() if v}
            print(f"[{model}] round {rnd + 1}/{a.rounds} medians (ms): {medians}", file=sys.stderr)
        row = {}
        for kind in a.runtimes:
            if kind in errors:
                row[kind] = {"error": errors[kind]}
                continue
            stats = summarize(samples[kind])
            row[kind] = {"p50_ms": stats["p50"], "stats": stats, "samples": samples[kind], **facts.get(kind, {})}
        ort = row.get("ort", {}).get("p50_ms")
        for kind in ("iree", "tvm", "torch"):
            if ort and "p50_ms" in row.get(kind, {}):
                row[kind]["ratio_to_ort"] = row[kind]["p50_ms"] / ort
        result["models"][model] = row
    md = markdown(result)
    print(md)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
