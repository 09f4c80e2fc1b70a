"""Baselines on the same device in the same run: ONNX Runtime, OpenVINO, ExecuTorch (XNNPACK) and PyTorch eager on
the bundle's model and reference input, each in its own process, with the same thread count, timed the same way
(wall clock around each call; how each runtime is set up: runtime/baseline_sessions.py). Only on this machine:
elsewhere they say "not run: needs ..." instead of a number, and a peer that is not installed says which extra
installs it. The fastest of them on a run is the bar its artifact is held to (report.fastest_peer).

Reading a model source is the compiler's frontends' job, not the runtime's: the caller passes its model loader
(`edgecc.compiler.frontends.load_model`), and each worker process imports it by its module and name.

    EDGECC_THREADS=N python -m edgecc.runtime.baselines ort BUNDLE --load edgecc.compiler.frontends:load_model \
        --warmup 5 --iters 50   # worker: JSON
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgecc.runtime.baseline_sessions import SESSIONS
from edgecc.runtime.bench import worker_env
from edgecc.runtime.stats import Timing, summarize
from edgecc.tools import die_with_parent

BASELINES = {"ort": "onnxruntime", "openvino": "openvino", "executorch": "executorch-xnnpack", "torch": "pytorch-eager"}
# what a worker imports, and the extra of edgecc's pyproject that pins it
INSTALL = {"ort": ("onnxruntime", "full"), "openvino": ("openvino", "openvino"),
           "executorch": ("executorch", "executorch"), "torch": ("torch", "full")}
WALL_CLOCK_BASELINE = "wall clock (time.perf_counter_ns around each call, own process)"


def installed(name: str) -> bool:
    """Whether the baseline's runtime can be imported here (the workers run this same interpreter)."""
    try:
        return importlib.util.find_spec(INSTALL[name][0]) is not None
    except (ImportError, ValueError):
        return False


def run_baselines(bundle, names: list[str], device_kind: str, warmup: int, iters: int, threads: int,
                  edgecc_p50: float | None, timeout: float = 900, *, load_model,
                  cache: Path | None = None) -> list[dict]:
    """Each baseline timed in its own worker process. `load_model(source, input_shapes=..., name=...)` loads the
    bundle's model there (an importable module-level function: the workers import it by name). `cache`: a folder
    where the workers keep what they export (model.onnx, model.xnnpack.pte) for the next worker of the same model.

        base = run_baselines(bundle, ["ort", "openvino"], "host", 5, 50, 2, 1.9, load_model=load_model)
    """
    loader = f"{load_model.__module__}:{load_model.__qualname__}"
    out = []
    for name in names:
        label = BASELINES[name]
        if device_kind not in ("host",):
            out.append({"name": label, "status": "not run",
                        "reason": f"not run: needs {label} on the device ({device_kind}); baselines run on the host"})
            continue
        if not installed(name):
            module, extra = INSTALL[name]
            out.append({"name": label, "status": "not run",
                        "reason": f"not run: pip install edgecc[{extra}] ({module} is not installed)"})
            continue
        argv = [sys.executable, "-m", "edgecc.runtime.baselines", name, str(bundle.path), "--load", loader,
                "--warmup", str(warmup), "--iters", str(iters), *(["--cache", str(cache)] if cache else [])]
        try:  # the same worker environment as edgecc's bundles get (runtime/bench.py)
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=worker_env(threads),
                                  preexec_fn=die_with_parent)
        except subprocess.TimeoutExpired:
            out.append({"name": label, "status": "failed", "reason": f"timed out after {timeout:g}s"})
            continue
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        data = json.loads(lines[-1]) if lines else {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
        if "error" in data:
            out.append({"name": label, "status": "not run", "reason": f"not run: {data['error']}"})
            continue
        timing = Timing(**data["timing"])
        p50 = timing.stats()["p50"]
        out.append({"name": label, "status": "ok", "timing": timing.to_dict(), "max_abs_error": data["max_abs_error"],
                    "speedup": (p50 / edgecc_p50) if edgecc_p50 else None})
    return out


def _load(bundle, loader: str):
    module, _, name = loader.partition(":")
    load_model = getattr(importlib.import_module(module), name)
    m = bundle.manifest
    shapes = [tuple(i["shape"]) for i in m["io"]["inputs"]]
    return load_model(m["model"]["source"], input_shapes=shapes, name=m["model"]["name"])


def _worker(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("which", choices=sorted(BASELINES))
    p.add_argument("bundle")
    p.add_argument("--load", required=True, help="module:function that loads a model source")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--cache", type=Path, help="keep exported models here (default: a temporary folder)")
    a = p.parse_args(argv)
    threads = int(os.environ.get("EDGECC_THREADS", "0"))
    try:
        from edgecc.bundle import Bundle
        from edgecc.validate import flatten_outputs

        bundle = Bundle.load(a.bundle)
        inputs = [np.ascontiguousarray(x) for x in bundle.reference_inputs()]
        loaded = _load(bundle, a.load)
        with tempfile.TemporaryDirectory() as d:
            work = a.cache or Path(d)
            work.mkdir(parents=True, exist_ok=True)
            fn, setup = SESSIONS[a.which](loaded, threads, work)
            outs = fn(inputs)
            for _ in range(a.warmup):
                fn(inputs)
            samples = []
            for _ in range(a.iters):
                t0 = time.perf_counter_ns()
                fn(inputs)
                samples.append((time.perf_counter_ns() - t0) / 1e6)
        outs = [np.asarray(o.detach().numpy() if hasattr(o, "detach") else o) for o in flatten_outputs(outs)]
        refs = bundle.reference_outputs()
        err = max((float(np.max(np.abs(o.astype(np.float64) - r))) for o, r in zip(outs, refs, strict=True)),
                  default=0.0)
    except Exception as e:  # a baseline that cannot run says why; it never fails the benchmark
        print(json.dumps({"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"}))
        return 0
    timing = {"samples": samples, "unit": "ms", "method": WALL_CLOCK_BASELINE, "warmup": a.warmup,
              "iterations": a.iters, "extra": {"threads": threads or "runtime default", "version": _version(a.which),
                                               **setup}}
    print(json.dumps({"timing": timing, "max_abs_error": err, "stats": summarize(samples)}))
    return 0


def _version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(INSTALL[name][0])
    except metadata.PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    raise SystemExit(_worker())
