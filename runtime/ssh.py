"""ssh:// devices: copy a bundle (only the files whose sha256 changed), install its runtime in a venv on the
device, run its own run.sh / bench.sh there with the device's runtime, and pull back outputs and raw samples.

Host-key checking stays on (StrictHostKeyChecking=yes) and only key authentication is used (BatchMode), so an
unknown or changed host key is an error, never a prompt. Every command has a timeout.

    dev = SshDevice(parse_device("ssh://pi@board:22"), SshOptions(identity="~/.ssh/id_ed25519"))
    deploy_ssh(bundle, device, options)

Timing over ssh is edgecc.runtime.runners.SshBench.
"""

from __future__ import annotations

import io
import re
import shlex
import subprocess
from pathlib import Path

import numpy as np

from edgecc.errors import DeviceError, DeviceInstallError, DeviceRunError, TargetError
from edgecc.runtime.devices import Device, SshOptions

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
