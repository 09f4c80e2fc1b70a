"""Timings keep their raw samples; statistics are computed on demand. A number never travels without its
unit and the method that measured it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

WALL_CLOCK = "wall clock (time.perf_counter_ns around each call, one process per runtime)"
QEMU_ICOUNT = "QEMU icount (instructions, not time)"
SSH_IREE = "device wall clock (iree-benchmark-module on the device over ssh; one sample per repetition)"
SSH_TVM = "device steady_clock around each call (tvm_runner on the device over ssh)"
RPC_TIME_EVALUATOR = "device timer (TVM RPC time_evaluator, number=1: one call per sample)"


@dataclass
class Timing:
    samples: list[float]
    unit: str  # "ms" | "instructions"
    method: str
    warmup: int = 0
    iterations: int = 0
    partial: bool = False
    partial_reason: str = ""  # why the run stopped early (device dropped / hung); samples taken are kept
    extra: dict = field(default_factory=dict)

    def stats(self) -> dict:
        return summarize(self.samples)

    def to_dict(self) -> dict:
        return {**asdict(self), "stats": self.stats()}


def summarize(samples) -> dict:
    if not len(samples):
        return {"n": 0}
    a = np.asarray(samples, dtype=np.float64)
    return {"n": int(a.size), "min": float(a.min()), "p50": float(np.percentile(a, 50)),
            "p90": float(np.percentile(a, 90)), "p99": float(np.percentile(a, 99)), "mean": float(a.mean()),
            "std": float(a.std()), "max": float(a.max())}
