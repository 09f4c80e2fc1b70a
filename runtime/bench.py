"""The benchmark harness: each runtime runs in its own process (TVM/IREE worker threads spin and distort
anything that shares their process), the parent collects the raw samples.

    EDGECC_THREADS=N python -m edgecc.runtime.bench BUNDLE --warmup 5 --iters 50   # worker: prints JSON
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from edgecc.errors import BundleError, CannotRunHere, EdgeccError
from edgecc.runtime.stats import Timing
from edgecc.tools import die_with_parent

# glibc's malloc puts its large blocks on transparent huge pages with this tunable (THP in `madvise` mode, the Debian
# default, gives them only to memory that asks). IREE's runtime takes its transient buffers from malloc; on the 2-core
# Zen 5 VM, ResNet-18 at 2 threads went 13.0 -> 12.55 ms (10 interleaved rounds; 1 thread 19.6 -> 19.3 ms), while
# MobileNetV2 and ONNX Runtime did not move. Every benchmark worker gets it, the baselines too, and IREE's bench.sh
# exports it; glibc before 2.35 and other C libraries ignore it.
HUGE_PAGE_TUNABLE = "glibc.malloc.hugetlb=1"


def worker_env(threads: int = 0) -> dict[str, str]:
    """The environment of a benchmark worker process: thread count (read by the runners and by TVM's thread pool at
    start-up) and the huge-page malloc tunable, added to any GLIBC_TUNABLES already set."""
    env = dict(os.environ)
    if threads:
        env["EDGECC_THREADS"] = env["TVM_NUM_THREADS"] = str(threads)
    tunables = env.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb=" not in tunables:
        env["GLIBC_TUNABLES"] = f"{tunables}:{HUGE_PAGE_TUNABLE}" if tunables else HUGE_PAGE_TUNABLE
    return env


def bench_bundle(bundle, warmup: int = 5, iters: int = 50, threads: int = 0, timeout: float = 1800) -> Timing:
    """Time a bundle where it runs from here, in a fresh worker process, with its runner's `time()`: wall clock
    around `run()` for most (runners.WallClockRunner), the emulator's or device tool's own measure for the others."""
    argv = [sys.executable, "-m", "edgecc.runtime.bench", str(bundle.path), "--warmup", str(warmup),
            "--iters", str(iters)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=worker_env(threads),
                              preexec_fn=die_with_parent)
    except subprocess.TimeoutExpired:
        raise EdgeccError(f"benchmark of {bundle.path.name} took longer than --timeout {timeout:g}s; give it more "
                          "time or fewer --iters") from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise EdgeccError(f"benchmark worker failed (exit {proc.returncode}): {err}")
    data = json.loads(lines[-1])
    if "error" in data:
        raise (CannotRunHere if data.get("kind") == "CannotRunHere" else BundleError)(data["error"])
    return Timing(**data)


def _worker(argv=None) -> int:
    from edgecc.bundle import Bundle

    p = argparse.ArgumentParser()
    p.add_argument("bundle")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=50)
    a = p.parse_args(argv)
    try:
        bundle = Bundle.load(a.bundle)
        runner = bundle.runner()
        inputs = bundle.reference_inputs()
        timing = runner.time(inputs, a.warmup, a.iters)
    except EdgeccError as e:
        print(json.dumps({"error": str(e), "kind": type(e).__name__}))
        return 0
    print(json.dumps(timing))
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker())
