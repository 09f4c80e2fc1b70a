"""rpc:// devices: a board farm behind a TVM RPC tracker. What reaches it from here: the bundle check, a plain
TCP probe of the tracker, and asking a device under a key about itself (before tuning on it).

Timing on it is edgecc.runtime.runners.RpcBench.
"""

from __future__ import annotations

import socket

from edgecc.errors import DeviceError, TargetError
from edgecc.runtime.devices import Device


def check_rpc_bundle(bundle) -> None:
    if bundle.backend != "tvm":
        raise TargetError(f"rpc:// devices run TVM bundles (a TVM RPC server loads the library); "
                          f"{bundle.path.name} is a {bundle.backend} bundle: use --device ssh://user@board")


def check_tracker_reachable(device: Device, timeout: float) -> None:
    """A plain TCP connect to the tracker before any session: a refused or unroutable tracker is a one-line
    DeviceError now, not TVM's connect retries (5 s a try for a minute) repeated for every chunk retry."""
    try:
        socket.create_connection((device.host, device.port), timeout=min(timeout, 10)).close()
    except OSError as e:
        raise DeviceError(f"{device.text}: cannot reach the TVM RPC tracker at {device.host}:{device.port} "
                          f"({e.strerror or type(e).__name__}); is `python -m tvm.exec.rpc_tracker` running "
                          "there?") from None


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
