"""Timing a bundle on an ssh:// device: its own bench.sh run there (edgecc.runtime.ssh copies it and reaches the
device), in chunks, so a device that drops keeps the samples taken."""

from __future__ import annotations

import json
import shlex

from edgecc.errors import DeviceError, DeviceRunError, TargetError
from edgecc.runtime.devices import Device, SshOptions, run_chunked
from edgecc.runtime.ssh import SshDevice, default_remote_dir, default_venv, env_prefix
from edgecc.runtime.stats import SSH_IREE, SSH_TVM, Timing


class SshBench:
    """Times a bundle on an ssh device with the bundle's own bench.sh, in chunks (see devices.run_chunked)."""

    def __init__(self, bundle, device: Device, options: SshOptions):
        if bundle.backend not in ("iree", "tvm") or "bench.sh" not in bundle.manifest["files"]:
            raise TargetError(f"bundle {bundle.path.name} ({bundle.backend}) has no bench.sh to run on an ssh "
                              "device; Cortex-M bundles are flashed with `edgecc deploy --device board`")
        self.bundle, self.device, self.options = bundle, device, options
        self.ssh = SshDevice(device, options)
        self.dir = default_remote_dir(bundle, options)
        self.venv = default_venv(bundle, options)

    def _bench_sh(self, n: int, warmup: int, timeout: float) -> str:
        out = f".edgecc-bench-{n}.json"
        args = f"{n} {out}" + (f" {warmup}" if self.bundle.backend == "tvm" else "")
        # `timeout` on the device too, so a hung runtime dies there rather than lingering after we give up
        return (f"{env_prefix(self.venv)}cd {shlex.quote(self.dir)} && timeout {int(timeout)} sh bench.sh {args} "
                f">/dev/null && cat {out} && rm -f {out}")

    def _measure(self, n: int, warmup: int, timeout: float) -> list[float]:
        proc = self.ssh.run(self._bench_sh(n, warmup, timeout), timeout + 15, check=False)
        if proc.returncode == 124:  # the device-side `timeout` fired: the runtime hung
            raise DeviceError(f"{self.device.text}: bench.sh hung (killed after {timeout:g}s)")
        if proc.returncode != 0:  # not a dropped link: retrying would fail the same way
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise DeviceRunError(f"{self.device.text}: bench.sh exited {proc.returncode}: "
                                 f"{err[-1] if err else '(no stderr)'} (install the runtime there with "
                                 "`edgecc deploy`, or pass --venv)")
        try:
            data = json.loads(proc.stdout.decode())
        except json.JSONDecodeError:
            raise DeviceError(f"{self.device.text}: bench.sh printed no JSON") from None
        if self.bundle.backend == "tvm":
            return [float(x) for x in data["samples_ms"]]
        runs = [b for b in data.get("benchmarks", []) if b.get("run_type") == "iteration"]
        scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
        return [b["real_time"] * scale[b.get("time_unit", "ms")] for b in runs][:n]

    def environment(self, timeout: float = 30) -> dict:
        cmd = ("uname -srm; nproc; (grep -m1 -E 'model name|Hardware|Model' /proc/cpuinfo || true) | cut -d: -f2-; "
               + env_prefix(self.venv) + "command -v iree-benchmark-module >/dev/null && "
               "iree-benchmark-module --version 2>/dev/null | head -1 || true")
        lines = self.ssh.run(cmd, timeout, error=DeviceError).stdout.decode().splitlines() + ["", "", "", ""]
        return {"os": lines[0].strip(), "cpu_count": lines[1].strip(), "cpu": lines[2].strip(),
                "runtime": lines[3].strip()}

    def bench(self, warmup: int, iters: int, chunk: int = 0, timeout: float = 600, retries: int = 2,
              on_chunk=None) -> Timing:
        copied, _ = self.ssh.sync(self.bundle, self.dir, timeout)
        env = self.environment()
        if warmup and self.bundle.backend == "iree":  # iree-benchmark-module has no warm-up of its own
            self._measure(warmup, 0, timeout)
        first = [True]

        def measure(n):
            w = warmup if first[0] else 0  # TVM's bench.sh warms up before its first chunk only
            got = self._measure(n, w, timeout)
            first[0] = False
            return got

        samples, reason, attempts = run_chunked(measure, iters, chunk or iters, retries, on_chunk)
        method = SSH_TVM if self.bundle.backend == "tvm" else SSH_IREE
        return Timing(samples=samples, unit="ms", method=method, warmup=warmup, iterations=iters,
                      partial=bool(reason), partial_reason=reason,
                      extra={"device": self.device.text, "remote_dir": self.dir, "files_copied": len(copied),
                             "chunks": attempts, "device_env": env})
