"""ssh:// devices: copy a bundle (only the files whose sha256 changed), install its runtime in a venv on the
device, run its own run.sh / bench.sh there with the device's runtime, and pull back outputs and raw samples.

Host-key checking stays on (StrictHostKeyChecking=yes) and only key authentication is used (BatchMode), so an
unknown or changed host key is an error, never a prompt. Every command has a timeout.

    dev = SshDevice(parse_device("ssh://pi@board:22"), SshOptions(identity="~/.ssh/id_ed25519"))
    SshBench(bundle, device, options).bench(warmup=5, iters=50)
"""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
from pathlib import Path

import numpy as np

from edgecc.errors import DeviceError, DeviceInstallError, DeviceRunError, TargetError
from edgecc.runtime.devices import Device, SshOptions, run_chunked
from edgecc.runtime.stats import SSH_IREE, SSH_TVM, Timing

DEVICE_RUNTIMES = ("iree-base-runtime", "apache-tvm")  # what `deploy` may pip-install on a device
SSH_LOST = 255  # ssh's own exit status: connection refused, dropped, host key rejected, auth failed


class SshDevice:
    def __init__(self, device: Device, options: SshOptions):
        self.device, self.options = device, options
        self.target = f"{device.user}@{device.host}" if device.user else device.host

    def argv(self, command: str) -> list[str]:
        o = self.options
        argv = ["ssh", "-p", str(self.device.port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"ConnectTimeout={int(o.connect_timeout)}", "-o", "ServerAliveInterval=5",
                "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"]
        if o.identity:
            argv += ["-i", str(Path(o.identity).expanduser()), "-o", "IdentitiesOnly=yes"]
        if o.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={Path(o.known_hosts).expanduser()}"]
        for extra in o.extra:
            argv += ["-o", extra]
        return [*argv, "--", self.target, command]  # `--`: a destination never reads as an ssh option

    def run(self, command: str, timeout: float, stdin: bytes | None = None, check: bool = True,
            error=DeviceRunError, what: str = "") -> subprocess.CompletedProcess:
        """Run a shell command on the device. A lost connection or a timeout raises DeviceError; a non-zero
        exit of the command itself raises `error` (when check)."""
        argv = self.argv(command)
        try:
            proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.device.text}: no answer within {timeout:g}s (device hung?) running "
                              f"{command[:80]!r}") from None
        if proc.returncode == SSH_LOST:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise DeviceError(f"{self.device.text}: ssh failed: {err[-1] if err else 'connection lost'}")
        if check and proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise error(f"{self.device.text}: {what or '`' + command[:120] + '`'} exited {proc.returncode}: "
                        f"{err[-1] if err else '(no stderr)'}")
        return proc

    def sync(self, bundle, remote_dir: str, timeout: float = 600) -> tuple[list[str], int]:
        """Copy the files whose sha256 differs on the device (the manifest has every file's sha256), then
        check all of them there with `sha256sum -c`. Returns (copied files, files already up to date)."""
        files = {**{rel: meta["sha256"] for rel, meta in bundle.manifest["files"].items()}}
        from edgecc.bundle import MANIFEST, MANIFEST_HASH, sha256_file

        files[MANIFEST] = sha256_file(bundle.path / MANIFEST)
        files[MANIFEST_HASH] = sha256_file(bundle.path / MANIFEST_HASH)
        d = shlex.quote(remote_dir)
        names = " ".join(shlex.quote(f) for f in sorted(files))
        have = self.run(f"mkdir -p {d} && cd {d} && (sha256sum -- {names} 2>/dev/null || true)", timeout,
                        error=DeviceError).stdout.decode()
        remote = {}
        for line in have.splitlines():
            digest, _, name = line.partition("  ")
            remote[name.strip()] = digest
        changed = sorted(f for f, h in files.items() if remote.get(f) != h)
        if changed:
            tar = subprocess.run(["tar", "-C", str(bundle.path), "-cf", "-", "--", *changed], capture_output=True,
                                 check=True).stdout
            self.run(f"cd {d} && tar -xmf -", timeout, stdin=tar, error=DeviceError)
        sums = "".join(f"{h}  {f}\n" for f, h in sorted(files.items())).encode()
        self.run(f"cd {d} && sha256sum -c --quiet -", timeout, stdin=sums, error=DeviceError)
        return changed, len(files) - len(changed)

    def read_file(self, path: str, timeout: float = 120) -> bytes:
        return self.run(f"cat {shlex.quote(path)}", timeout).stdout


def runtime_requirement(bundle) -> tuple[str, str]:
    """(package, version) the device needs, from the manifest's `device_runtime` ("pip install pkg==ver")."""
    text = bundle.manifest["artifact"]["info"].get("device_runtime", "")
    spec = text.split()[-1] if text.startswith("pip install") else ""
    if "==" not in spec:
        raise TargetError(f"bundle {bundle.path.name} does not say what runtime its device needs "
                          f"(backend {bundle.backend}); it cannot be deployed over ssh")
    pkg, ver = spec.split("==", 1)
    if pkg not in DEVICE_RUNTIMES or not re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", ver):
        raise TargetError(f"bundle {bundle.path.name}: device runtime {text!r} is not one edgecc installs (one of "
                          f"{', '.join(DEVICE_RUNTIMES)} at a plain version); the manifest was edited, recompile it")
    return pkg, ver


def default_remote_dir(bundle, options: SshOptions) -> str:
    return options.remote_dir or f".edgecc/bundles/{bundle.path.name}"


def default_venv(bundle, options: SshOptions) -> str:
    pkg, ver = runtime_requirement(bundle)
    return options.venv or f".edgecc/venvs/{pkg}-{ver}"


def env_prefix(venv: str) -> str:
    """Shell that puts the device venv's tools first (iree-benchmark-module; python3 for TVM's libraries)."""
    v = shlex.quote(venv)
    return (f'if [ -x {v}/bin/python ]; then PATH="$(cd {v} && pwd)/bin:$PATH"; '
            f'PYTHON="$(cd {v} && pwd)/bin/python"; export PATH PYTHON; fi; ')


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


def deploy_ssh(bundle, device: Device, options: SshOptions, timeout: float = 900, log=None) -> dict:
    """Copy, install the runtime (idempotent), run once on the reference input, compare. Raises DeviceError
    (copy), DeviceInstallError, DeviceRunError or ValidationError (mismatch); returns what was done."""
    say = log or (lambda msg: None)
    ssh = SshDevice(device, options)
    rdir, venv = default_remote_dir(bundle, options), default_venv(bundle, options)
    pkg, ver = runtime_requirement(bundle)
    copied, kept = ssh.sync(bundle, rdir, timeout)
    say(f"copied {len(copied)} file(s), {kept} already there -> {rdir}")

    v = shlex.quote(venv)
    probe = (f"{v}/bin/python -c 'import importlib.metadata as m; print(m.version(\"{pkg}\"))' 2>/dev/null "
             "|| true")
    installed = ssh.run(probe, 60, error=DeviceError).stdout.decode().strip()
    if installed == ver:
        say(f"{pkg}=={ver} already installed in {venv}")
        install = "already installed"
    else:
        pip = " ".join(shlex.quote(a) for a in options.pip_args)
        cmd = (f"([ -x {v}/bin/python ] || {shlex.quote(options.python)} -m venv {v}) && "
               f"{v}/bin/python -m pip install -q --disable-pip-version-check {pip} {shlex.quote(f'{pkg}=={ver}')}")
        say(f"installing {pkg}=={ver} into {venv}")
        ssh.run(cmd, timeout, error=DeviceInstallError, what=f"pip install {pkg}=={ver} into {venv}")
        install = "installed"

    out = ".edgecc-deploy-out"
    ssh.run(f"{env_prefix(venv)}cd {shlex.quote(rdir)} && rm -rf {out} && timeout {int(timeout)} sh run.sh {out}",
            timeout + 15, error=DeviceRunError, what="run.sh (one inference on the reference input)")
    outputs = [np.load(io.BytesIO(ssh.read_file(f"{rdir}/{out}/output_{i}.npy")), allow_pickle=False)
               for i in range(len(bundle.manifest["io"]["outputs"]))]
    from edgecc.runtime.deploy import compare_outputs

    err = compare_outputs(bundle, outputs)
    home = ssh.run("pwd", 30, error=DeviceError).stdout.decode().strip()
    where = rdir if rdir.startswith("/") else f"{home}/{rdir}"
    return {"device": device.text, "location": f"{ssh.target}:{where}", "artifact": f"{where}/"
            f"{bundle.manifest['artifact']['entry']}", "files_copied": copied, "files_unchanged": kept,
            "runtime": f"{pkg}=={ver}", "venv": venv, "install": install, "max_abs_error": err}
