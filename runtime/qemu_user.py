"""qemu-user: run aarch64 Linux bundles on this x86 machine under `qemu-aarch64`, with the aarch64 builds of the
runtimes taken from PyPI (`pip download --platform manylinux_2_28_aarch64`, cached, never committed).

The runner executes the bundle's own device scripts (run.sh / bench.sh), so what is checked here is exactly
what runs on the board. Times measured this way are emulated: they are labelled so, never device milliseconds.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from edgecc.errors import CannotRunHere, ToolError
from edgecc.tools import find_tool, run_tool
from edgecc.validate import check_inputs

QEMU_EMULATED = "emulated wall clock (qemu-aarch64 user mode on x86; not device time)"


def cache_dir() -> Path:
    return Path(os.environ.get("EDGECC_CACHE", Path.home() / ".cache" / "edgecc"))


def foreign_wheel(package: str, version: str, platform: str, python: str = "3.11") -> Path:
    """Download (once) and unpack a wheel built for another platform; returns the unpacked folder."""
    check_version(package, version)
    dest = cache_dir() / "wheels" / f"{package}-{version}-{platform}"
    if (dest / ".complete").is_file():
        return dest
    wheels = cache_dir() / "wheels" / "download"
    wheels.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--platform", platform,
            "--python-version", python, "-d", str(wheels), f"{package}=={version}"]
    try:
        run_tool(argv, timeout=900)
    except ToolError as e:
        raise CannotRunHere(f"could not fetch the {platform} wheel of {package}=={version}: {e}") from None
    stem = package.replace("-", "_")
    found = sorted(wheels.glob(f"{stem}-{version}-*{platform.split('_', 2)[-1]}*.whl"))
    if not found:
        raise CannotRunHere(f"no {platform} wheel of {package}=={version} found after download")
    tmp = Path(tempfile.mkdtemp(dir=wheels))
    with zipfile.ZipFile(found[-1]) as z:
        z.extractall(tmp)
    for f in tmp.rglob("*"):
        if f.is_file() and (f.suffix == "" or ".so" in f.name):
            f.chmod(0o755)
    (tmp / ".complete").write_text(found[-1].name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        import shutil

        shutil.rmtree(dest)
    os.rename(tmp, dest)
    return dest


_PLAIN = re.compile(r"[A-Za-z0-9_.+-]+")
QEMU_USER_TOOLS = ("qemu-aarch64",)


def transport_options(bundle) -> dict:
    """The qemu-user transport (emulator, -cpu, sysroot, wheel platform) of the bundle's target: from the installed
    target file when there is one, else the manifest's, checked so that an edited manifest names no other program,
    option or path shape. BundleError for a value that is not one."""
    from edgecc.errors import BundleError
    from edgecc.targets import list_targets

    installed = list_targets().get(bundle.manifest["target"].get("name", ""))
    opts = dict(installed.transport.options if installed is not None else
                bundle.manifest["target"].get("transport", {}).get("options", {}))
    for key, value in opts.items():
        ok = isinstance(value, str) and (
            value in QEMU_USER_TOOLS if key == "qemu" else
            Path(value).is_absolute() and ".." not in Path(value).parts if key == "sysroot" else
            bool(_PLAIN.fullmatch(value)))
        if not ok:
            raise BundleError(f"bundle {bundle.path.name}: transport option {key}={value!r} is not one edgecc runs "
                              "(the manifest was edited?); recompile the bundle")
    return opts


def check_version(package: str, version) -> str:
    """A version string as it may go into `pip download package==version`."""
    from edgecc.errors import BundleError

    if not isinstance(version, str) or not re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version):
        raise BundleError(f"{package} version {version!r} in the manifest is not a version; recompile the bundle")
    return version


class QemuUserRunner:
    """Runs an aarch64 bundle's run.sh / bench.sh with its tools wrapped in qemu-aarch64. Subclasses name the
    tools (env var -> aarch64 binary), their library folders and any extra environment in `_tools()`."""

    def __init__(self, bundle):
        self.bundle = bundle
        self.transport = transport_options(bundle)
        self.qemu = find_tool(self.transport.get("qemu", "qemu-aarch64"))
        self.cpu = self.transport.get("cpu", "max")
        self.sysroot = self.transport.get("sysroot", "/usr/aarch64-linux-gnu")
        if not Path(self.sysroot).is_dir():
            raise CannotRunHere(f"aarch64 sysroot {self.sysroot} missing (apt-get install g++-aarch64-linux-gnu)")
        self.where = f"qemu-aarch64 -cpu {self.cpu} (user-mode emulation)"
        io = bundle.manifest["io"]["inputs"]
        self._expected = [(tuple(i["shape"]), np.dtype(i["dtype"])) for i in io]
        self._names = [i["name"] for i in io]
        self.tools, self.libdirs, self.extra_env = self._tools()

    def _tools(self) -> tuple[dict[str, Path], list[Path], dict[str, str]]:
        raise NotImplementedError

    def qemu_prefix(self) -> list[str]:
        """The command line that runs an aarch64 binary here, with the runtime's libraries found."""
        ld = ":".join(str(d) for d in self.libdirs)
        return [self.qemu, "-cpu", self.cpu, "-L", self.sysroot, "-E", f"LD_LIBRARY_PATH={ld}"]

    def _env(self, work: Path) -> dict:
        """Each tool's env var points at a wrapper script that runs the aarch64 tool under qemu."""
        env = dict(self.extra_env)
        for var, tool in self.tools.items():
            wrapper = work / f"{var.lower()}.sh"
            wrapper.write_text("#!/bin/sh\nexec " + shlex.join([*self.qemu_prefix(), str(tool)]) + ' "$@"\n')
            wrapper.chmod(0o755)
            env[var] = str(wrapper)
        return env

    def _save_inputs(self, work: Path, inputs) -> list[str]:
        check_inputs(inputs, self._expected, self._names)
        files = []
        for i, a in enumerate(inputs):
            files.append(str(work / f"in_{i}.npy"))
            np.save(files[-1], np.ascontiguousarray(a))
        return files

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        n_out = len(self.bundle.manifest["io"]["outputs"])
        with tempfile.TemporaryDirectory() as d:
            work = Path(d)
            files = self._save_inputs(work, inputs)
            run_tool(["sh", str(self.bundle.path / "run.sh"), str(work / "out"), *files], env=self._env(work),
                     timeout=1800)
            return [np.load(work / "out" / f"output_{i}.npy") for i in range(n_out)]


class IreeQemuRunner(QemuUserRunner):
    """IREE bundles: the aarch64 iree-run-module / iree-benchmark-module from the iree-base-runtime wheel."""

    def _tools(self):
        version = self.bundle.manifest["versions"].get("iree-base-runtime", "3.13.0")
        root = foreign_wheel("iree-base-runtime", version,
                             self.transport.get("wheel_platform", "manylinux_2_28_aarch64"),
                             self.transport.get("python", "3.11"))
        tools = {"IREE_RUN_MODULE": root / "iree" / "_runtime_libs" / "iree-run-module",
                 "IREE_BENCHMARK_MODULE": root / "iree" / "_runtime_libs" / "iree-benchmark-module"}
        return tools, [root / "iree_base_runtime.libs"], {}

    def time(self, inputs, warmup: int, iters: int) -> dict:
        with tempfile.TemporaryDirectory() as d:
            work = Path(d)
            out = work / "bench.json"
            run_tool(["sh", str(self.bundle.path / "bench.sh"), str(iters), str(out)], env=self._env(work),
                     timeout=3600)
            data = json.loads(out.read_text())
        runs = [b for b in data.get("benchmarks", []) if b.get("run_type") == "iteration"]
        scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
        samples = [b["real_time"] * scale[b.get("time_unit", "ms")] for b in runs]
        return {"samples": samples, "unit": "ms", "method": QEMU_EMULATED, "warmup": 0, "iterations": len(samples),
                "extra": {"tool": "iree-benchmark-module", "qemu_cpu": self.cpu,
                          "iterations_per_sample": runs[0].get("iterations") if runs else None}}


def iree_qemu_runner(bundle) -> IreeQemuRunner:
    return IreeQemuRunner(bundle)
