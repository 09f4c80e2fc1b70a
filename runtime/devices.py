"""Where a bundle runs: `--device host | qemu | ssh://user@host[:port] | rpc://tracker:port/key | board[:NAME]`.

A device that drops or hangs mid-benchmark costs bounded retries of the chunk it was running; the samples
already taken are kept and the run is marked partial with the reason — never a silent zero.

    dev = parse_device("ssh://pi@orangepi.local:22")
    timing = bench_on_device(bundle, dev, warmup=5, iters=50)
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from edgecc.errors import DeviceError, EdgeccError, TargetError
from edgecc.runtime.stats import Timing

KINDS = ("host", "qemu", "ssh", "rpc", "board")
LOCAL_TRANSPORTS = {"host": ("local",), "qemu": ("qemu-user", "qemu-system-arm")}


@dataclass(frozen=True)
class Device:
    kind: str  # one of KINDS
    text: str  # what the user wrote, shown in reports
    user: str = ""
    host: str = ""
    port: int = 0
    key: str = ""  # rpc: the tracker's device key; board: the board name


@dataclass
class SshOptions:
    """How to reach an ssh device. Host-key checking is always on; keys only (BatchMode)."""

    identity: str = ""  # -i KEY (default: ssh's own)
    known_hosts: str = ""  # UserKnownHostsFile (default: ~/.ssh/known_hosts)
    connect_timeout: float = 10
    extra: list[str] = field(default_factory=list)  # more -o KEY=VALUE
    remote_dir: str = ""  # where bundles go (default: ~/.edgecc/bundles/<bundle>)
    venv: str = ""  # the device venv with the bundle's runtime (default: ~/.edgecc/venvs/<package>-<version>)
    python: str = "python3"  # the device interpreter that creates the venv
    pip_args: list[str] = field(default_factory=list)  # e.g. --find-links DIR --no-index


def parse_device(text: str | None) -> Device | None:
    """`None` (no --device) keeps the default: the bundle runs where its own runner runs from here."""
    if text is None:
        return None
    t = text.strip()
    if t in ("host", "qemu", "board"):
        return Device(t, t)
    if t.startswith("board:"):
        return Device("board", t, key=t.split(":", 1)[1])
    m = re.fullmatch(r"ssh://(?:([^-@/:\s][^@/:\s]*)@)?([^-@/:\s][^@/:\s]*)(?::(\d+))?/?", t)
    if m:
        return Device("ssh", t, user=m.group(1) or "", host=m.group(2), port=_port(m.group(3) or "22", text))
    m = re.fullmatch(r"rpc://([^-@/:\s][^@/:\s]*):(\d+)/([^/\s]+)", t)
    if m:
        return Device("rpc", t, host=m.group(1), port=_port(m.group(2), text), key=m.group(3))
    raise TargetError(f"unknown device {text!r}; use host, qemu, ssh://user@host[:port], "
                      "rpc://tracker-host:port/device-key or board[:NAME]")


def _port(text: str, device: str) -> int:
    if not 0 < int(text) < 65536:
        raise TargetError(f"device {device!r}: port {int(text)} is not a TCP port (1-65535)")
    return int(text)


def check_local_device(bundle, device: Device) -> None:
    """host / qemu: the bundle must be one whose runner runs there (its target's transport)."""
    transport = bundle.manifest["target"].get("transport", {}).get("kind", "local")
    if transport not in LOCAL_TRANSPORTS[device.kind]:
        where = {"local": "host", "qemu-user": "qemu", "qemu-system-arm": "qemu"}.get(transport, "ssh://user@board")
        raise TargetError(f"bundle {bundle.path.name} is for {bundle.manifest['target']['name']} "
                          f"(transport {transport}); it does not run on --device {device.kind}: use --device {where}")


def bench_on_device(bundle, device: Device | None, warmup: int = 5, iters: int = 50, threads: int = 0,
                    ssh: SshOptions | None = None, chunk: int = 0, timeout: float = 600, retries: int = 2,
                    on_chunk=None) -> Timing:
    """Time `bundle` on `device`; remote devices in chunks with bounded retries (see module doc)."""
    from edgecc.runtime.bench import bench_bundle

    if device is None or device.kind in ("host", "qemu"):
        if device is not None:
            check_local_device(bundle, device)
        return bench_bundle(bundle, warmup=warmup, iters=iters, threads=threads, timeout=timeout)
    if device.kind == "ssh":
        from edgecc.runtime.runners import SshBench

        return SshBench(bundle, device, ssh or SshOptions()).bench(warmup, iters, chunk=chunk, timeout=timeout,
                                                                     retries=retries, on_chunk=on_chunk)
    if device.kind == "rpc":
        from edgecc.runtime.runners import RpcBench

        return RpcBench(bundle, device).bench(warmup, iters, chunk=chunk, timeout=timeout, retries=retries,
                                              on_chunk=on_chunk)
    raise TargetError(f"--device {device.text} cannot time a bundle (a board is flashed with `edgecc deploy`; "
                      "time it with its own harness)")


def run_chunked(measure, iters: int, chunk: int, retries: int, on_chunk=None, backoff: float = 0.5):
    """Collect `iters` samples by calling `measure(n)` for chunks of n. A chunk that fails (DeviceError) is
    retried up to `retries` times; after that the samples so far are returned with the reason.
    Returns (samples, reason, attempts); reason is "" when complete. Raises DeviceError if no sample came."""
    samples: list[float] = []
    failures, attempts, reason = 0, 0, ""
    chunk = max(1, chunk or iters)
    while len(samples) < iters:
        n = min(chunk, iters - len(samples))
        attempts += 1
        try:
            got = measure(n)
        except DeviceError as e:
            failures += 1
            if failures > retries:
                reason = f"device lost after {len(samples)} of {iters} samples ({failures} tries): {e}"
                break
            time.sleep(backoff * failures)
            continue
        if not got:
            raise DeviceError("the device returned no samples for a chunk (is bench.sh writing its JSON?)")
        failures = 0
        samples += got
        if on_chunk is not None:
            on_chunk(len(samples), iters)
    if not samples:
        raise DeviceError(f"no sample completed on the device: {reason}")
    return samples, reason, attempts


def describe(device: Device | None, bundle=None) -> dict:
    """The device as reports show it."""
    if device is None or device.kind in ("host", "qemu"):
        kind = "host"
        if bundle is not None:
            transport = bundle.manifest["target"].get("transport", {}).get("kind", "local")
            kind = "qemu" if transport.startswith("qemu") else "host"
        return {"spec": device.text if device else kind, "kind": kind}
    return {"spec": device.text, "kind": device.kind}


__all__ = ["Device", "EdgeccError", "SshOptions", "bench_on_device", "describe", "parse_device", "run_chunked"]
