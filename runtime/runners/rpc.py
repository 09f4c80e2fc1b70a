"""Timing a TVM bundle on an rpc:// device: request a device by key from the tracker, upload the bundle's TVM
library, load it into a Relax VM on the device, time `main` with `time_evaluator`, release.

The RPC session lives in a worker process that prints one JSON line per chunk of samples; the parent gives
each line a deadline, so a server that dies or hangs costs a bounded number of fresh sessions (retries),
and the samples already printed are kept. The worker is edgecc.runtime.runners.rpc_worker.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys

from edgecc.errors import DeviceError, TargetError
from edgecc.runtime.devices import Device, run_chunked
from edgecc.runtime.rpc import check_rpc_bundle, check_tracker_reachable
from edgecc.runtime.stats import RPC_TIME_EVALUATOR, Timing


class RpcBench:
    """Times a TVM bundle on a device behind a TVM RPC tracker, one worker process per RPC session."""

    def __init__(self, bundle, device: Device):
        self.bundle, self.device = bundle, device

    def bench(self, warmup: int, iters: int, chunk: int = 0, timeout: float = 600, retries: int = 2,
              on_chunk=None) -> Timing:
        bundle, device = self.bundle, self.device
        check_rpc_bundle(bundle)
        check_tracker_reachable(device, timeout)
        state: dict = {"worker": None, "info": {}, "sessions": 0}

        def measure(n):
            if state["worker"] is None:
                state["worker"] = _Worker(bundle, device, warmup if not state["sessions"] else 0, timeout)
                state["info"], state["sessions"] = state["worker"].info, state["sessions"] + 1
            try:
                return state["worker"].samples(n)
            except DeviceError:
                state["worker"] = None
                raise

        try:
            samples, reason, attempts = run_chunked(measure, iters, chunk or iters, retries, on_chunk)
        finally:
            if state["worker"] is not None:
                state["worker"].proc.stdin.close()  # the worker releases the session on EOF
                try:
                    state["worker"].proc.wait(15)
                except subprocess.TimeoutExpired:
                    state["worker"].close()
        return Timing(samples=samples, unit="ms", method=RPC_TIME_EVALUATOR, warmup=warmup, iterations=iters,
                      partial=bool(reason), partial_reason=reason,
                      extra={"device": device.text, "tracker": f"{device.host}:{device.port}", "key": device.key,
                             "sessions": state["sessions"], "chunks": attempts, **state["info"].get("device_env", {})})


class _Worker:
    """One RPC session in a child process; `samples(n)` reads the next chunk with a deadline."""

    def __init__(self, bundle, device: Device, warmup: int, timeout: float):
        self.device, self.timeout = device, timeout
        argv = [sys.executable, "-m", "edgecc.runtime.runners.rpc_worker", str(bundle.path), device.host,
                str(device.port), device.key, "--warmup", str(warmup), "--session-timeout", str(int(timeout))]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        self.info = self._line(timeout)  # the worker's first line: session open, module loaded

    def _line(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.close()
            raise DeviceError(f"{self.device.text}: no answer within {timeout:g}s (no free device with key "
                              f"{self.device.key!r}, or it hung)")
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().strip().splitlines() if self.proc.poll() is not None else []
            self.close()
            raise DeviceError(f"{self.device.text}: RPC session ended: {err[-1] if err else 'connection lost'}")
        data = json.loads(line)
        if "error" in data:
            self.close()
            raise (DeviceError if data.get("lost") else TargetError)(f"{self.device.text}: {data['error']}")
        return data

    def samples(self, n: int) -> list[float]:
        try:
            self.proc.stdin.write(f"{n}\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.close()
            raise DeviceError(f"{self.device.text}: RPC session ended (worker gone)") from None
        return self._line(self.timeout)["samples_ms"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
        self.proc.wait()
