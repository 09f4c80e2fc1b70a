"""Squeeze benchmark: what `--squeeze` buys on the artifact, measured where it runs.

1. digits-cnn (trained here on real data): the original fp32 model against `prune=0.5,distill,int8`, on host IREE
   and on a Cortex-M4 in QEMU: top-1 on the 360 held-out images measured on the artifact, MACs, weight bytes,
   arena, and the per-stage table of the squeeze pipeline.
2. resnet8 and mobilenetv2 (zoo weights: architecture only, no dataset, so no accuracy): the original against
   `prune=RATIO` (Torch-Pruning, magnitude importance). Host wall clock through `edgecc bench` (one process per
   bundle, the same thread count, `--rounds` rounds in alternating order, the median of each round's p50), and
   QEMU instructions per inference on the Cortex-M target (deterministic; instructions, not time). Each row puts
   the measured speed-up beside the MACs ratio, the speed-up pruning would give if time followed MACs.

    .venv/bin/python benchmarks/squeeze.py                                   # everything, Markdown on stdout
    .venv/bin/python benchmarks/squeeze.py --skip-digits --models resnet8 --json build/squeeze.json

A cell that cannot run here says why ("not run: ...") instead of a number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("resnet8", "mobilenetv2")


def _compile(model: str, target: str, backend: str, out: Path, **kw):
    import edgecc
    from edgecc.errors import EdgeccError

    try:
        return edgecc.compile(model, target=target, backend=backend, output=out, force=True, **kw)
    except EdgeccError as e:
        return f"not run: {type(e).__name__}: {e}"


def digits_rows(root: Path, cortexm: str) -> dict:
    """The Done-when measurement: fp32 vs prune+distill+int8 digits-cnn on host IREE and on the Cortex-M."""
    out = {}
    for target, backend in (("host", "iree"), (cortexm, "micro")):
        t0 = time.perf_counter()
        b = _compile("digits-cnn", target, backend, root / f"digits-{target}", squeeze="prune=0.5,distill,int8",
                     squeeze_data="digits")
        if isinstance(b, str):
            out[target] = {"status": b}
            continue
        m = b.manifest
        out[target] = {"squeeze": m["squeeze"], "quantization": m["quantization"], "seconds": time.perf_counter() - t0,
                       "memory": m["artifact"]["info"].get("memory"), "validation": m["validation"]["status"]}
    return out


def _bench_p50(bundles: list[Path], iters: int, rounds: int, threads: int, tmp: Path) -> list[list[float]]:
    """Per bundle, each round's p50 (ms) from `edgecc bench`; the order alternates between rounds."""
    p50s: list[list[float]] = [[] for _ in bundles]
    for r in range(rounds):
        order = list(range(len(bundles)))[:: 1 if r % 2 == 0 else -1]
        for i in order:
            report = tmp / f"bench-{i}-{r}.json"
            subprocess.run([sys.executable, "-m", "edgecc", "bench", str(bundles[i]), "--iters", str(iters),
                            "--warmup", "5", "--threads", str(threads), "--json", str(report)], check=True,
                           capture_output=True, text=True)
            run = json.loads(report.read_text())["runs"][0]
            p50s[i].append(run["timing"]["stats"]["p50"])
    return p50s


def pruned_rows(model: str, spec: str, root: Path, targets: list, iters: int, rounds: int, threads: int) -> list:
    """Host wall clock and Cortex-M instructions of `model` and of `model` squeezed by `spec` (prune=0.5)."""
    rows = []
    for target in targets:
        backend = "iree" if target == "host" else "micro"
        base = _compile(model, target, backend, root / f"{model}-{target}-orig")
        pruned = _compile(model, target, backend, root / f"{model}-{target}-{spec.replace(':', '_')}", squeeze=spec)
        row = {"model": model, "target": target, "backend": backend, "squeeze": spec}
        if isinstance(base, str) or isinstance(pruned, str):
            row["status"] = base if isinstance(base, str) else pruned
            rows.append(row)
            continue
        sq = pruned.manifest["squeeze"]["stages"]
        row.update({"macs": [sq[0]["macs"], sq[-1]["macs"]], "params": [sq[0]["params"], sq[-1]["params"]],
                    "macs_ratio": round(sq[0]["macs"] / sq[-1]["macs"], 2)})
        if backend == "micro":
            counts = []
            for b in (base, pruned):
                t = b.runner().time(b.reference_inputs(), warmup=0, iters=1)
                counts.append(min(t["samples"]))
            mem = [b.manifest["artifact"]["info"]["memory"] for b in (base, pruned)]
            row.update({"unit": "instructions", "method": t["method"], "values": counts,
                        "arena_bytes": [x["arena_bytes"] for x in mem], "flash_bytes": [x["flash_bytes"] for x in mem]})
        else:
            with tempfile.TemporaryDirectory() as tmp:
                p50s = _bench_p50([base.path, pruned.path], iters, rounds, threads, Path(tmp))
            row.update({"unit": "ms", "method": f"wall clock, edgecc bench --threads {threads}: median of {rounds} "
                        f"rounds' p50 ({iters} iterations each)", "values": [statistics.median(p) for p in p50s],
                        "round_p50s": p50s})
        row["speedup"] = round(row["values"][0] / row["values"][1], 2)
        rows.append(row)
    return rows


def markdown(result: dict) -> str:
    out = [f"Measured {result['date']} on {result['host']} ({result['cpu_count']} cores).", ""]
    for target, d in result.get("digits", {}).items():
        if "status" in d:
            out += [f"digits-cnn on {target}: {d['status']}", ""]
            continue
        from edgecc.compiler.squeeze.pipeline import squeeze_table

        s = d["squeeze"]["summary"]
        out += [f"**digits-cnn, `prune=0.5,distill,int8`, {target}** (artifact ran on "
                f"{d['squeeze']['artifact']['ran_on']}): {s['macs_reduction']}x fewer MACs, "
                f"{s['weight_bytes_reduction']}x fewer weight bytes, top-1 change on the artifact "
                f"{-s['artifact_top1_drop_points']:+.2f} points", "", squeeze_table(d["squeeze"]), ""]
    if result.get("pruned"):
        out += ["| model | target / backend | squeeze | MACs (orig -> pruned) | MACs ratio | measured (orig -> pruned) "
                "| speed-up | method |", "|---|---|---|---|---:|---|---:|---|"]
        for r in result["pruned"]:
            if "status" in r:
                out.append(f"| {r['model']} | {r['target']} / {r['backend']} | {r['squeeze']} | | | {r['status']} "
                           "| | |")
                continue
            fmt = (lambda v: f"{v:,}") if r["unit"] == "instructions" else (lambda v: f"{v:.3f}")
            out.append(f"| {r['model']} | {r['target']} / {r['backend']} | {r['squeeze']} | {r['macs'][0]:,} -> "
                       f"{r['macs'][1]:,} | {r['macs_ratio']}x | {fmt(r['values'][0])} -> {fmt(r['values'][1])} "
                       f"{r['unit']} | {r['speedup']}x | {r['method']} |")
    return "\n".join(out)


def _cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        return next(ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--squeeze", default="prune=0.5", help="the pipeline the resnet8 / mobilenetv2 rows compare")
    p.add_argument("--cortexm", default="cortex-m4")
    p.add_argument("--targets", nargs="+", default=["host", "CORTEXM"], help="host and/or a Cortex-M target")
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-digits", action="store_true")
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", type=Path, help="keep the bundles here")
    a = p.parse_args(argv)
    result = {"date": time.strftime("%Y-%m-%d"), "host": _cpu_name(), "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="edgecc-squeeze-") as tmp:
        root = a.keep or Path(tmp)
        if not a.skip_digits:
            result["digits"] = digits_rows(root, a.cortexm)
        result["pruned"] = []
        for model in a.models:
            targets = [a.cortexm if t == "CORTEXM" else t for t in a.targets]
            result["pruned"] += pruned_rows(model, a.squeeze, root, targets, a.iters, a.rounds, a.threads)
            print(f"{model}: done", file=sys.stderr)
    if a.json:
        a.json.write_text(json.dumps(result, indent=1, default=str))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
