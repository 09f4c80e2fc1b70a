"""rpc:// devices: a board farm behind a TVM RPC tracker. Request a device by key, upload the bundle's
TVM library, load it into a Relax VM on the device, time `main` with `time_evaluator`, release.

The RPC session lives in a worker process that prints one JSON line per chunk of samples; the parent gives
each line a deadline, so a server that dies or hangs costs a bounded number of fresh sessions (retries),
and the samples already printed are kept.

    python -m edgecc.runtime.rpc BUNDLE 127.0.0.1 9190 host-x86 --warmup 5 --iters 50 --chunk 10   # worker
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import subprocess
import sys
import time

from edgecc.errors import DeviceError, EdgeccError, TargetError
from edgecc.runtime.devices import Device, run_chunked
from edgecc.runtime.stats import RPC_TIME_EVALUATOR, Timing


def check_rpc_bundle(bundle) -> None:
    if bundle.backend != "tvm":
        raise TargetError(f"rpc:// devices run TVM bundles (a TVM RPC server loads the library); "
                          f"{bundle.path.name} is a {bundle.backend} bundle: use --device ssh://user@board")


class _Worker:
    """One RPC session in a child process; `samples(n)` reads the next chunk with a deadline."""

    def __init__(self, bundle, device: Device, warmup: int, timeout: float):
        self.device, self.timeout = device, timeout
        argv = [sys.executable, "-m", "edgecc.runtime.rpc", str(bundle.path), device.host, str(device.port),
                device.key, "--warmup", str(warmup), "--session-timeout", str(int(timeout))]
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


def check_tracker_reachable(device: Device, timeout: float) -> None:
    """A plain TCP connect to the tracker before any session: a refused or unroutable tracker is a one-line
    DeviceError now, not TVM's connect retries (5 s a try for a minute) repeated for every chunk retry."""
    try:
        socket.create_connection((device.host, device.port), timeout=min(timeout, 10)).close()
    except OSError as e:
        raise DeviceError(f"{device.text}: cannot reach the TVM RPC tracker at {device.host}:{device.port} "
                          f"({e.strerror or type(e).__name__}); is `python -m tvm.exec.rpc_tracker` running "
                          "there?") from None


def rpc_bench(bundle, device: Device, warmup: int, iters: int, chunk: int = 0, timeout: float = 600,
              retries: int = 2, on_chunk=None) -> Timing:
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


def probe_rpc_device(device: Device, timeout: float = 30) -> dict:
    """Check that the tracker answers and a server under the key serves a session; returns what the device
    says about itself (`num_threads`: the TVM runtime's thread pool there). Raises DeviceError in one line.
    Asked before tuning because MetaSchedule's RPC runner waits forever in the tracker's queue for a key that
    no server has."""
    from edgecc.errors import require

    require("tvm", "apache-tvm==0.27.0.post1", "TVM RPC devices")
    from tvm import rpc

    where = f"{device.text}: "
    try:  # a plain connect first: TVM's own retries for 5 s per try and logs each one
        socket.create_connection((device.host, device.port), timeout=min(timeout, 10)).close()
    except OSError as e:
        raise DeviceError(f"{where}cannot reach the tracker at {device.host}:{device.port}: "
                          f"{e.strerror or type(e).__name__}") from None
    tracker = _bounded(lambda: rpc.connect_tracker(device.host, device.port), timeout,
                       f"{where}the tracker at {device.host}:{device.port} did not answer")
    summary = _bounded(tracker.summary, timeout, f"{where}the tracker gave no summary")
    queue = summary.get("queue_info", {})
    if device.key not in queue:
        keys = ", ".join(sorted(queue)) or "none"
        raise DeviceError(f"{where}no RPC server registered under key {device.key!r} (keys on the tracker: {keys})")

    def ask():
        remote = tracker.request(device.key, priority=1, session_timeout=int(timeout), max_retry=1)
        threads = int(remote.get_function("runtime.NumThreads")())
        del remote  # ends the session: the device goes back to the tracker's pool
        return {"num_threads": threads}

    return _bounded(ask, timeout, f"{where}no session with a device under key {device.key!r}")


def _bounded(fn, timeout: float, what: str):
    """fn() in a daemon thread (TVM's RPC calls have no timeout of their own); DeviceError saying `what` when
    it fails or takes longer than `timeout`."""
    import threading

    box: dict = {}

    def call():
        try:
            box["value"] = fn()
        except Exception as e:  # refused connection, unknown host, session dropped
            box["error"] = e

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(timeout)
    if "error" in box:
        e = box["error"]
        text = str(e).strip().splitlines()
        raise DeviceError(f"{what}: {type(e).__name__}: {text[0] if text else ''}") from None
    if "value" not in box:
        raise DeviceError(f"{what} within {timeout:g}s")
    return box["value"]


def _worker(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("bundle")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("key")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--session-timeout", type=int, default=600)
    a = p.parse_args(argv)

    def say(obj):
        print(json.dumps(obj), flush=True)

    try:
        from edgecc.bundle import Bundle
        from edgecc.errors import require

        bundle = Bundle.load(a.bundle)
        check_rpc_bundle(bundle)
        tvm = require("tvm", "apache-tvm==0.27.0.post1", "TVM RPC devices")
        from tvm import relax, rpc

        inputs = bundle.reference_inputs()
    except EdgeccError as e:
        say({"error": str(e)})
        return 0
    try:
        tracker = rpc.connect_tracker(a.host, a.port)
        remote = tracker.request(a.key, priority=1, session_timeout=a.session_timeout, max_retry=1)
        lib = bundle.artifact()
        remote.upload(str(lib))
        dev = remote.cpu()
        vm = relax.VirtualMachine(remote.load_module(lib.name), dev)
        fn = bundle.manifest["artifact"]["info"].get("function", "main")
        vm.set_input(fn, *[tvm.runtime.tensor(x, device=dev) for x in inputs])
        if a.warmup:
            vm.time_evaluator("invoke_stateful", dev, number=1, repeat=a.warmup)(fn)
    except Exception as e:  # tracker unreachable, no such key, server died: all "device lost"
        say({"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}",
             "lost": True})
        return 0
    say({"ready": True, "device_env": {"rpc_device": str(dev)}})
    for line in sys.stdin:
        n = int(line)
        t0 = time.perf_counter()
        res = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=n)(fn)
        say({"samples_ms": [r * 1e3 for r in res.results], "wall_s": time.perf_counter() - t0})
    return 0  # stdin closed: the session (and the tracker's lease on the device) ends with this process


if __name__ == "__main__":
    raise SystemExit(_worker())
