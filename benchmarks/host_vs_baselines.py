"""Host CPU benchmark: edgecc's IREE and TVM artifacts against ONNX Runtime and PyTorch eager.

Each runtime runs in its own process (TVM/IREE worker threads spin and would distort anything sharing their
process), all with the same thread count, interleaved A B C D A B C D over `--rounds` rounds so that drift in
the machine's load hits every runtime alike. Latency is wall clock (time.perf_counter_ns around one
inference, batch 1, fp32, input already in memory); the table shows medians over all rounds' samples and the
ratio to ONNX Runtime (lower is better). It says which CPU it ran on: a run elsewhere is its own result.

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
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNTIMES = ("ort", "torch", "iree", "tvm")
LABELS = {"ort": "ONNX Runtime", "torch": "PyTorch eager", "iree": "edgecc IREE", "tvm": "edgecc TVM"}


# ---- workers: one process each, print one JSON line ---------------------------------------------------------
def _worker_baseline(kind: str, model: str, threads: int, warmup: int, iters: int, budget_s: float,
                     onnx_path: str) -> dict:
    import numpy as np
    from edgecc.models.zoo import get_model

    module, inputs = get_model(model).factory()
    if kind == "torch":
        import torch

        torch.set_num_threads(threads)

        def run():
            with torch.inference_mode():
                module(*inputs)
        version = torch.__version__
    else:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        feed = {i.name: np.ascontiguousarray(x.numpy()) for i, x in zip(sess.get_inputs(), inputs, strict=True)}

        def run():
            sess.run(None, feed)
        version = ort.__version__
    return _time(run, warmup, iters, budget_s) | {"version": version}


def _worker_bundle(bundle_path: str, warmup: int, iters: int, budget_s: float) -> dict:
    from edgecc.compiler.bundle import Bundle

    bundle = Bundle.load(bundle_path)
    runner = bundle.runner()
    inputs = bundle.reference_inputs()
    return _time(lambda: runner.run(inputs), warmup, iters, budget_s)


def _time(run, warmup: int, iters: int, budget_s: float) -> dict:
    t0 = time.perf_counter()
    run()  # first call: lazy initialisation, not counted
    first = time.perf_counter() - t0
    n = max(2, min(iters, int(budget_s / max(first, 1e-6))))
    for _ in range(min(warmup, n)):
        run()
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        run()
        samples.append((time.perf_counter_ns() - t) / 1e6)
    return {"samples": samples}


def _worker_main(a) -> int:
    os.environ.setdefault("EDGECC_THREADS", str(a.threads))
    if a.worker in ("ort", "torch"):
        out = _worker_baseline(a.worker, a.model, a.threads, a.warmup, a.iters, a.budget_s, a.onnx)
    else:
        out = _worker_bundle(a.bundle, a.warmup, a.iters, a.budget_s)
    print(json.dumps(out))
    return 0


# ---- the parent ---------------------------------------------------------------------------------------------
def prepare(model: str, runtimes, work: Path, rebuild: bool) -> dict:
    """Bundles for edgecc runtimes and an ONNX file for ORT; returns paths and build facts."""
    import edgecc

    facts: dict = {}
    work.mkdir(parents=True, exist_ok=True)
    for backend in ("iree", "tvm"):
        if backend not in runtimes:
            continue
        out = work / f"{model}-host-{backend}"
        if rebuild or not (out / "manifest.json").exists():
            if out.exists():
                import shutil

                shutil.rmtree(out)
            edgecc.compile(model, target="host", backend=backend, output=out)
        m = json.loads((out / "manifest.json").read_text())
        facts[backend] = {"bundle": str(out), "compile_s": m["compile"]["seconds"],
                          "max_abs_error": m["validation"].get("max_abs_error"),
                          "validation": m["validation"]["status"], "flags": m["compile"]["flags"],
                          "version": m["versions"].get("iree-base-compiler" if backend == "iree" else "apache-tvm")}
    if "ort" in runtimes:
        onnx_path = work / f"{model}.onnx"
        if rebuild or not onnx_path.exists():
            import torch
            from edgecc.models.zoo import get_model

            module, inputs = get_model(model).factory()
            torch.onnx.export(module, inputs, str(onnx_path), dynamo=False, opset_version=17)
        facts["ort"] = {"onnx": str(onnx_path)}
    return facts


def run_worker(kind: str, model: str, facts: dict, a) -> list[float]:
    argv = [sys.executable, __file__, "--worker", kind, "--model", model, "--threads", str(a.threads),
            "--warmup", str(a.warmup), "--iters", str(a.iters), "--budget-s", str(a.budget_s)]
    if kind == "ort":
        argv += ["--onnx", facts["ort"]["onnx"]]
    elif kind in ("iree", "tvm"):
        argv += ["--bundle", facts[kind]["bundle"]]
    env = {**os.environ, "EDGECC_THREADS": str(a.threads), "TVM_NUM_THREADS": str(a.threads),
           "OMP_NUM_THREADS": str(a.threads)}
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3600)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode or not lines:
        raise RuntimeError(f"{kind} worker for {model} failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
    data = json.loads(lines[-1])
    if "version" in data:
        facts.setdefault(kind, {})["version"] = data["version"]
    return data["samples"]


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
           "rounds, each runtime in its own process. Ratio = median / ONNX Runtime median (lower is better).", "",
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
    p.add_argument("--budget-s", type=float, default=20.0, help="cap on a runtime's timed seconds per round")
    p.add_argument("--work", type=Path, default=Path("build/host-bench"))
    p.add_argument("--rebuild", action="store_true")
    p.add_argument("--json", type=Path)
    # worker mode (internal)
    p.add_argument("--worker", choices=RUNTIMES, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--bundle", help=argparse.SUPPRESS)
    p.add_argument("--onnx", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        return _worker_main(a)

    result = {"schema": "edgecc.host-bench/1", "date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(),
              "logical_cpus": os.cpu_count(), "threads": a.threads, "rounds": a.rounds, "iters": a.iters,
              "warmup": a.warmup, "method": "wall clock (time.perf_counter_ns around one inference)",
              "runtimes": list(a.runtimes), "models": {}}
    for model in a.models:
        print(f"[{model}] building", file=sys.stderr)
        facts = prepare(model, a.runtimes, a.work, a.rebuild)
        samples: dict[str, list[float]] = {r: [] for r in a.runtimes}
        errors: dict[str, str] = {}
        for rnd in range(a.rounds):
            for kind in a.runtimes:  # interleaved: A B C D, A B C D, ...
                if kind in errors:
                    continue
                try:
                    samples[kind] += run_worker(kind, model, facts, a)
                except Exception as e:  # one runtime failing must not hide the others' numbers
                    errors[kind] = str(e)
            done = {k: f"{statistics.median(v):.2f}" for k, v in samples.items() if v}
            print(f"[{model}] round {rnd + 1}/{a.rounds} medians (ms): {done}", file=sys.stderr)
        row = {}
        for kind in a.runtimes:
            if kind in errors:
                row[kind] = {"error": errors[kind]}
                continue
            s = sorted(samples[kind])
            row[kind] = {"p50_ms": statistics.median(s), "min_ms": s[0], "p90_ms": s[int(0.9 * (len(s) - 1))],
                         "n": len(s), "samples": samples[kind], **{k: v for k, v in facts.get(kind, {}).items()}}
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
