"""qemu-user: run aarch64 Linux bundles on this x86 machine under `qemu-aarch64`, with the aarch64 builds of the
runtimes taken from PyPI (`pip download --platform manylinux_2_28_aarch64`, cached, never committed).

The runner executes the bundle's own device scripts (run.sh / bench.sh), so what is checked here is exactly
what runs on the board. Times measured this way are emulated: they are labelled so, never device milliseconds.
"""

from __future__ import annotations

import json
import re
import shlex
import tempfile
from pathlib import Path

import numpy as np

from edgecc.errors import CannotRunHere
from edgecc.runtime.runners.base import RunnerBase
from edgecc.runtime.runners.registry import register_runner
from edgecc.runtime.tvm_native import PLATFORM, build_runner, runtime_libdirs
from edgecc.runtime.wheels import foreign_wheel
from edgecc.tools import find_tool, run_tool
from edgecc.validate import check_inputs

QEMU_EMULATED = "emulated wall clock (qemu-aarch64 user mode on x86; not device time)"


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


class QemuUserRunner(RunnerBase):
    """Runs an aarch64 bundle's run.sh / bench.sh with its tools wrapped in qemu-aarch64. Subclasses name the
    tools (env var -> aarch64 binary), their library folders and any extra environment in `_tools()`."""

    spawns_per_run = True

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


@register_runner("iree", "qemu-user")
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


@register_runner("tvm", "qemu-user")
class TvmQemuRunner(QemuUserRunner):
    """Runs an aarch64 TVM bundle under qemu-aarch64: through the bundle's own run.sh / bench.sh and tvm_runner
    when it carries them, else with the cached tvm_runner called directly (same command line)."""

    def _tools(self):
        m, t = self.bundle.manifest, self.transport
        versions = m.get("versions", {})
        platform, python = t.get("wheel_platform", PLATFORM), t.get("python", "3.11")
        tvm_v, ffi_v = versions.get("apache-tvm"), versions.get("apache-tvm-ffi")
        libdirs = runtime_libdirs(tvm_v, ffi_v, platform, python)
        self.scripts = all((self.bundle.path / f).is_file() for f in ("run.sh", "bench.sh", "tvm_runner"))
        self.binary = (self.bundle.path / "tvm_runner" if self.scripts
                       else build_runner(None, tvm_v, ffi_v, platform, python))
        self.module = self.bundle.path / m["artifact"]["entry"]
        self.function = m["artifact"].get("info", {}).get("function", "main")
        # TVM_LIBRARY_PATH: the scripts then need not look for (host) TVM through python3
        return {"TVM_RUNNER": self.binary}, libdirs, {"TVM_LIBRARY_PATH": ":".join(str(d) for d in libdirs)}

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if self.scripts:
            return super().run(inputs)
        n_out = len(self.bundle.manifest["io"]["outputs"])
        with tempfile.TemporaryDirectory() as d:
            work = Path(d)
            files = self._save_inputs(work, inputs)
            (work / "out").mkdir()
            run_tool([*self.qemu_prefix(), str(self.binary), str(self.module), self.function, str(work / "out"),
                      *files], timeout=1800)
            return [np.load(work / "out" / f"output_{i}.npy") for i in range(n_out)]

    def time(self, inputs, warmup: int, iters: int) -> dict:
        with tempfile.TemporaryDirectory() as d:
            work = Path(d)
            files = self._save_inputs(work, inputs)
            out = work / "bench.json"
            if self.scripts:
                run_tool(["sh", str(self.bundle.path / "bench.sh"), str(iters), str(out), str(warmup), *files],
                         env=self._env(work), timeout=3600)
                data = json.loads(out.read_text())
            else:
                proc = run_tool([*self.qemu_prefix(), str(self.binary), "--bench", str(iters), str(warmup),
                                 str(self.module), self.function, "-", *files], timeout=3600)
                data = json.loads(proc.stdout.strip().splitlines()[-1])
        samples = [float(s) for s in data["samples_ms"]]
        return {"samples": samples, "unit": "ms", "method": QEMU_EMULATED, "warmup": warmup,
                "iterations": len(samples),
                "extra": {"tool": "tvm_runner (steady_clock around each VM call)", "qemu_cpu": self.cpu,
                          "via": "bundle bench.sh" if self.scripts else "cached tvm_runner"}}
