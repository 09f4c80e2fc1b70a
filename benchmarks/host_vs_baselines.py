"""Host CPU benchmark: edgecc's IREE and TVM artifacts against ONNX Runtime, OpenVINO, ExecuTorch (XNNPACK) and
PyTorch eager.

Each runtime runs in its own process (TVM/IREE worker threads spin and would distort anything sharing their
process), all with the same thread count, interleaved over `--rounds` rounds so that drift in the machine's load
hits every runtime alike. The order rotates each round (A B C, B C A, C A B, ...): in a fixed order IREE always
ran right after PyTorch. Latency is wall clock (time.perf_counter_ns around one inference, batch 1, fp32, input
already in memory); the table shows medians over all rounds' samples, the fastest peer on each model in this run
(the bar: ONNX Runtime, OpenVINO, ExecuTorch or PyTorch, whichever had the lowest median) and each runtime's ratio
to it (lower is better), and edgecc's p90/p50 (steadiness). A peer that is not installed is "not run" with the
pip extra that installs it. It says which CPU it ran on: a run elsewhere is its own result.

    .venv/bin/python benchmarks/host_vs_baselines.py                                   # resnet18 mobilenetv2
    .venv/bin/python benchmarks/host_vs_baselines.py --models resnet18 mobilenetv2 resnet50 resnet8 ds-cnn \\
        --threads 2 --rounds 5 --iters 20 --json build/host-bench.json
    .venv/bin/python benchmarks/host_vs_baselines.py --models resnet18 --runtimes ort tvm tvm-int8   # int8

The edgecc bundles are built with the `host` target's defaults (validated against PyTorch) and kept under
--work (reused when present; --rebuild to rebuild). Untuned TVM is very slow on the big nets: --runtimes
limits what runs, and a runtime's iterations per round are capped by --budget-s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

from edgecc.runtime.stats import summarize

PEERS = ("ort", "openvino", "executorch", "torch")
EDGECC = ("iree", "tvm")
INT8 = ("tvm-int8", "iree-int8")  # --quantize int8 bundles, calibrated on --calibration
RUNTIMES = PEERS + EDGECC + INT8
LABELS = {"ort": "ONNX Runtime", "openvino": "OpenVINO", "executorch": "ExecuTorch XNNPACK", "torch": "PyTorch eager",
          "iree": "edgecc IREE", "tvm": "edgecc TVM", "tvm-int8": "edgecc TVM int8", "iree-int8": "edgecc IREE int8"}
PACKAGES = {"ort": "onnxruntime", "openvino": "openvino", "executorch": "executorch", "torch": "torch"}


class NotRun(Exception):
    """A peer that cannot run here (not installed, or the model is not one it takes): no number, the reason."""


def folder(work: Path, model: str, what: str) -> Path:
    """A model's folder under --work (a model given as a path or a factory, like x/net.py:build, is made safe)."""
    return work / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', model)}-{what}"


def calibration_folder(model: str, work: Path) -> str:
    """Eight standard-normal samples of the model's input shape: enough to calibrate an int8 build whose latency,
    not accuracy, is measured (accuracy: the manifest's quantization section, on a labelled dataset)."""
    import numpy as np

    from edgecc.compiler.frontends import load_model

    out = folder(work, model, "calibration")
    if not out.exists():
        shape = load_model(model).example_inputs[0].shape
        tmp = out.with_name(out.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        for i in range(8):
            np.save(tmp / f"{i}.npy", rng.standard_normal(shape).astype(np.float32))
        tmp.rename(out)
    return str(out)


def prepare(model: str, runtimes, work: Path, rebuild: bool, calibration: str = "") -> dict:
    """The edgecc bundles (one at least: the baselines run its model and reference input); returns paths and
    build facts, and the baselines' versions."""
    import edgecc

    facts: dict = {}
    work.mkdir(parents=True, exist_ok=True)
    if rebuild and folder(work, model, "peers").exists():  # the peers' exported ONNX and .pte (measure)
        shutil.rmtree(folder(work, model, "peers"))
    for kind in EDGECC + INT8:
        if kind not in runtimes:
            continue
        backend, int8 = kind.split("-")[0], kind.endswith("-int8")
        out = folder(work, model, f"host-{kind}")
        if rebuild or not (out / "manifest.json").exists():
            if out.exists():
                shutil.rmtree(out)
            quant = {"quantize": "int8", "calibration": calibration or calibration_folder(model, work)} if int8 else {}
            try:
                edgecc.compile(model, target="host", backend=backend, output=out, **quant)
            except edgecc.EdgeccError as e:  # a model int8 quantization does not take (e.g. ReLU6): no number
                if not int8:
                    raise
                facts[kind] = {"not_run": f"int8 build refused: {str(e).splitlines()[0]}"}
                continue
        m = json.loads((out / "manifest.json").read_text())
        facts[kind] = {"bundle": str(out), "compile_s": m["compile"]["seconds"],
                          "max_abs_error": m["validation"].get("max_abs_error"),
                          "validation": m["validation"]["status"], "flags": m["compile"]["flags"],
                          "executor": m["artifact"]["info"].get("executor"),
                          **({"int8": m["artifact"]["info"].get("int8", "QDQ graph"),
                              "reference": m["validation"].get("reference")} if int8 else {}),
                          "version": m["versions"].get("iree-base-compiler" if backend == "iree" else "apache-tvm")}
    if not facts:  # the baselines run the model and reference input of a bundle: build one
        facts.update(prepare(model, ("iree",), work, rebuild))
    for kind, package in PACKAGES.items():
        if kind in runtimes:
            try:
                facts[kind] = {"version": metadata.version(package)}
            except metadata.PackageNotFoundError:
                facts[kind] = {}
    return facts


def measure(kind: str, model: str, facts: dict, a, iters: int) -> list[float]:
    """One round of one runtime, in its own process: edgecc bundles through `edgecc bench`'s worker
    (runtime/bench.py), the peers through the baselines' worker (runtime/baselines.py), which runs the bundle's
    model on its reference input; what the peers export (ONNX, .pte) is kept under --work for the next round."""
    from edgecc.bundle import Bundle
    from edgecc.compiler.frontends import load_model
    from edgecc.runtime.baselines import run_baselines
    from edgecc.runtime.bench import bench_bundle

    if kind in EDGECC + INT8:
        return list(bench_bundle(Bundle.load(facts[kind]["bundle"]), warmup=a.warmup, iters=iters,
                                 threads=a.threads).samples)
    ref = Bundle.load(facts["iree" if "iree" in facts else "tvm"]["bundle"])
    [base] = run_baselines(ref, [kind], "host", a.warmup, iters, a.threads, None, load_model=load_model,
                           cache=folder(a.work, model, "peers"))
    if base["status"] == "not run":
        raise NotRun(base["reason"])
    if base["status"] != "ok":
        raise RuntimeError(base["reason"])
    # the peer's error vs the bundle's reference output, and how it was set up (threads, precision, delegation)
    facts.setdefault(kind, {}).update(max_abs_error=base["max_abs_error"], setup=base["timing"]["extra"])
    return base["timing"]["samples"]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fastest_peer(row: dict) -> str | None:
    """The peer with the lowest median on this model in this run (the bar), or None if none ran."""
    ran = {k: row[k]["p50_ms"] for k in PEERS if "p50_ms" in row.get(k, {})}
    return min(ran, key=ran.get) if ran else None


def _cell(cell: dict | None, bar: float | None, is_bar: bool) -> str:
    if not cell:
        return "—"
    if "not_run" in cell:
        return cell["not_run"][:70]
    if "error" in cell:
        return f"failed: {cell['error'][:60]}"
    ratio = f" ({cell['p50_ms'] / bar:.2f}×)" if bar and not is_bar else ""
    return f"{cell['p50_ms']:.2f} ms{ratio}" + (" **bar**" if is_bar else "")


def markdown(result: dict) -> str:
    rts = result["runtimes"]
    ours_rts = [r for r in EDGECC + INT8 if r in rts]
    int8_rts = [r for r in INT8 if r in rts]
    out = [f"Measured {result['date']} on {result['cpu']} ({result['logical_cpus']} logical CPUs), "
           f"{result['threads']} threads, batch 1, fp32; wall clock, median of {result['rounds']} interleaved "
           "rounds (order rotated each round), each runtime in its own process. "
           "Ratio = median / the fastest peer's median on that model in this run (lower is better); "
           "p90/p50 over all rounds' samples. int8: --quantize int8 bundles; int8 / fp32 = the int8 median over the "
           "best edgecc fp32 median.", "",
           "| model | " + " | ".join(LABELS[r] for r in rts) + " | fastest peer | best edgecc vs fastest peer | "
           + "".join(f"{LABELS[r]} / best edgecc fp32 | " for r in int8_rts)
           + " | ".join(f"{LABELS[r]} p90/p50" for r in ours_rts) + " |",
           "|---|" + "---:|" * (len(rts) + 2 + len(int8_rts) + len(ours_rts))]
    for model, row in result["models"].items():
        peer = fastest_peer(row)
        bar = row[peer]["p50_ms"] if peer else None
        cells = [_cell(row.get(r), bar, r == peer) for r in rts]
        ours = [row[r]["p50_ms"] for r in EDGECC if r in row and "p50_ms" in row[r]]
        best = f"{min(ours) / bar:.2f}×" if ours and bar else "—"
        int8 = "".join((f"{row[r]['p50_ms'] / min(ours):.2f}×" if ours and "p50_ms" in row.get(r, {}) else "—")
                       + " | " for r in int8_rts)
        steady = [f"{row[r]['stats']['p90'] / row[r]['p50_ms']:.2f}" if "p50_ms" in row.get(r, {}) else "—"
                  for r in ours_rts]
        out.append(f"| {model} | " + " | ".join(cells) + f" | {LABELS[peer] if peer else '—'} | {best} | " + int8
                   + " | ".join(steady) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet18", "mobilenetv2"])
    p.add_argument("--runtimes", nargs="+", default=list(PEERS + EDGECC + ("tvm-int8",)), choices=RUNTIMES)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=20, help="timed iterations per runtime per round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--budget-s", type=float, default=20.0,
                   help="after the first round, cap on a runtime's timed seconds per round")
    p.add_argument("--work", type=Path, default=Path("build/host-bench"))
    p.add_argument("--rebuild", action="store_true")
    p.add_argument("--json", type=Path)
    p.add_argument("--calibration", default="",
                   help="int8 runtimes' calibration (a dataset name or .npy folder; default: 8 random samples)")
    a = p.parse_args(argv)

    result = {"schema": "edgecc.host-bench/1", "date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(),
              "logical_cpus": os.cpu_count(), "threads": a.threads, "rounds": a.rounds, "iters": a.iters,
              "warmup": a.warmup, "method": "wall clock (time.perf_counter_ns around one inference)",
              "order": "interleaved, rotated one place each round",
              "runtimes": list(a.runtimes), "models": {}}
    for model in a.models:
        print(f"[{model}] building", file=sys.stderr)
        facts = prepare(model, a.runtimes, a.work, a.rebuild, a.calibration)
        samples: dict[str, list[float]] = {r: [] for r in a.runtimes}
        errors: dict[str, str] = {}
        not_run: dict[str, str] = {}
        not_run.update({k: f["not_run"] for k, f in facts.items() if "not_run" in f})
        for rnd in range(a.rounds):
            shift = rnd % len(a.runtimes)
            for kind in a.runtimes[shift:] + a.runtimes[:shift]:  # interleaved, rotated: A B C, B C A, C A B, ...
                if kind in errors or kind in not_run:
                    continue
                before = samples[kind]
                iters = max(2, min(a.iters, int(a.budget_s * 1e3 / statistics.median(before)))) if before else a.iters
                try:
                    samples[kind] += measure(kind, model, facts, a, iters)
                except NotRun as e:
                    not_run[kind] = str(e)
                except Exception as e:  # one runtime failing must not hide the others' numbers
                    errors[kind] = str(e)
            medians = {k: f"{statistics.median(v):.2f}" for k, v in samples.items() if v}
            print(f"[{model}] round {rnd + 1}/{a.rounds} medians (ms): {medians}", file=sys.stderr)
        row = {}
        for kind in a.runtimes:
            if kind in not_run:
                row[kind] = {"not_run": not_run[kind]}
                continue
            if kind in errors:
                row[kind] = {"error": errors[kind]}
                continue
            stats = summarize(samples[kind])
            row[kind] = {"p50_ms": stats["p50"], "stats": stats, "samples": samples[kind], **facts.get(kind, {})}
        ort, peer = row.get("ort", {}).get("p50_ms"), fastest_peer(row)
        fp32 = [row[r]["p50_ms"] for r in EDGECC if "p50_ms" in row.get(r, {})]
        for kind in INT8:
            if fp32 and "p50_ms" in row.get(kind, {}):
                row[kind]["ratio_to_best_edgecc_fp32"] = row[kind]["p50_ms"] / min(fp32)
        for kind in a.runtimes:
            if "p50_ms" not in row.get(kind, {}):
                continue
            if ort and kind != "ort":
                row[kind]["ratio_to_ort"] = row[kind]["p50_ms"] / ort
            if peer:
                row[kind]["ratio_to_fastest_peer"] = row[kind]["p50_ms"] / row[peer]["p50_ms"]
            row[kind]["p90_over_p50"] = row[kind]["stats"]["p90"] / row[kind]["p50_ms"]
        row["fastest_peer"] = {"name": peer, "label": LABELS[peer], "p50_ms": row[peer]["p50_ms"]} if peer else None
        result["models"][model] = row
    md = markdown(result)
    print(md)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
