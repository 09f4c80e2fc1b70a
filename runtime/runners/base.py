"""The role every runner plays, stated once: callers call these methods and never probe for them.

A runner runs a bundle's artifact where it can run from here (this CPU, a GPU here, an emulator, a check build)
and times it there. Runners that cannot time honestly (a check build says nothing about the device's speed) raise
CannotRunHere from `time()` with the reason, which reports show instead of a number.
"""

from __future__ import annotations

import os
import time
from typing import Protocol, runtime_checkable

import numpy as np

from edgecc.runtime.stats import WALL_CLOCK


@runtime_checkable
class Runner(Protocol):
    where: str  # where the outputs were computed, as the manifest and reports say it
    note: str  # what a check here does not cover ("" when it covers the artifact itself)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Outputs of one inference on `inputs` (the bundle's input shapes and dtypes)."""
        ...

    def run_many(self, x: np.ndarray) -> np.ndarray:
        """Outputs of a one-input, one-output model on every sample of x (N, ...)."""
        ...

    def run_samples(self, samples: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
        """Outputs of one inference per sample (each a list of inputs), in this one runner session."""
        ...

    def time(self, inputs: list[np.ndarray] | None, warmup: int, iters: int) -> dict:
        """Raw samples, as the fields of edgecc.runtime.stats.Timing: samples, unit, method, warmup, iterations,
        extra."""
        ...


class RemoteBench(Protocol):
    """Times a bundle on a remote device (ssh://, rpc://) in chunks, keeping the samples of a device that drops."""

    def bench(self, warmup: int, iters: int, chunk: int = 0, timeout: float = 600, retries: int = 2,
              on_chunk=None): ...


class RunnerBase:
    """What most runners share: no note, and `run_many` as one `run()` per sample (a runner with a batch path, like
    the Cortex-M firmware reading every sample in one boot, overrides it)."""

    where = "host"
    note = ""
    spawns_per_run = False  # True: every run() starts a process (an emulator, a tool), so many runs cost minutes

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def run_many(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([self.run([x[i:i + 1]])[0] for i in range(len(x))])

    def run_samples(self, samples: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
        return [self.run(s) for s in samples]


class WallClockRunner(RunnerBase):
    """Runners whose own `run()` is what is timed: wall clock around each call, in the benchmark worker process
    (runtime/bench.py), after `warmup` untimed calls."""

    def time(self, inputs, warmup: int, iters: int) -> dict:
        threads = os.environ.get("EDGECC_THREADS", "runtime default")
        for _ in range(warmup):
            self.run(inputs)
        samples = []
        for _ in range(iters):
            t0 = time.perf_counter_ns()
            self.run(inputs)
            samples.append((time.perf_counter_ns() - t0) / 1e6)
        return {"samples": samples, "unit": "ms", "method": WALL_CLOCK, "warmup": warmup, "iterations": iters,
                "extra": {"threads": threads}}
