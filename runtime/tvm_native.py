"""A native runner for TVM Relax-VM bundles on aarch64 Linux (run here under qemu-aarch64 by
edgecc.runtime.runners.TvmQemuRunner).

`tvm_runner` (source: runtime/tvm_native/runner.cc) loads model.so with the TVM runtime, sets the Relax VM up as
`tvm.relax.VirtualMachine(mod, tvm.cpu())` does, runs one function on .npy inputs and writes .npy outputs (or
times the calls). It is cross-compiled with `aarch64-linux-gnu-g++` against the headers and libraries of the
aarch64 apache-tvm / apache-tvm-ffi wheels (downloaded once into the edgecc cache, never committed), and the
binary is cached under a key of those versions and the sha256 of runner.cc.

The same binary goes into the bundle (`write_device_files`) with run.sh / bench.sh, so what qemu checks here is
what runs on the board. Times measured under qemu are emulated and labelled so, never device milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from edgecc.errors import CannotRunHere, ToolError
from edgecc.runtime.wheels import cache_dir, foreign_wheel
from edgecc.tools import run_tool

TVM_FALLBACK = "0.27.0.post1"
PLATFORM = "manylinux_2_28_aarch64"
CXX = "aarch64-linux-gnu-g++"


def _installed(package: str, fallback: str | None = None) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        if fallback:
            return fallback
        raise CannotRunHere(f"{package} is not installed here; cannot tell which {package} to build against") from None


def runner_source() -> Path:
    return Path(str(resources.files("edgecc.runtime").joinpath("tvm_native", "runner.cc")))


def tvm_wheels(tvm_version: str | None = None, ffi_version: str | None = None, platform: str = PLATFORM,
               python: str = "3.11") -> tuple[Path, Path]:
    """Unpacked aarch64 apache-tvm and apache-tvm-ffi wheels: (tvm package folder, tvm_ffi package folder)."""
    tvm_version = tvm_version or _installed("apache-tvm", TVM_FALLBACK)
    ffi_version = ffi_version or _installed("apache-tvm-ffi")
    tvm_root = foreign_wheel("apache-tvm", tvm_version, platform, python) / "tvm"
    ffi_root = foreign_wheel("apache-tvm-ffi", ffi_version, platform, python) / "tvm_ffi"
    for f in (tvm_root / "lib" / "libtvm_runtime.so", ffi_root / "lib" / "libtvm_ffi.so", ffi_root / "include"):
        if not f.exists():
            raise CannotRunHere(f"the {platform} TVM wheels lack {f.relative_to(f.parents[2])}")
    return tvm_root, ffi_root


def runtime_libdirs(tvm_version: str | None = None, ffi_version: str | None = None, platform: str = PLATFORM,
                    python: str = "3.11") -> list[Path]:
    tvm_root, ffi_root = tvm_wheels(tvm_version, ffi_version, platform, python)
    return [tvm_root / "lib", ffi_root / "lib"]


def build_runner(cache: Path | None = None, tvm_version: str | None = None, ffi_version: str | None = None,
                 platform: str = PLATFORM, python: str = "3.11", cxx: str = CXX) -> Path:
    """The aarch64 `tvm_runner` binary, built once per (TVM, tvm-ffi versions, runner.cc) into the cache."""
    tvm_version = tvm_version or _installed("apache-tvm", TVM_FALLBACK)
    ffi_version = ffi_version or _installed("apache-tvm-ffi")
    src = runner_source()
    sha = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    out_dir = Path(cache or cache_dir()) / "tvm_native" / f"tvm-{tvm_version}-ffi-{ffi_version}-{platform}-{sha}"
    binary = out_dir / "tvm_runner"
    if binary.is_file():
        return binary
    tvm_root, ffi_root = tvm_wheels(tvm_version, ffi_version, platform, python)
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".tvm_runner.")
    os.close(fd)
    argv = [cxx, "-O2", "-std=c++17", f"-I{ffi_root / 'include'}", "-o", tmp, str(src),
            f"-L{tvm_root / 'lib'}", f"-L{ffi_root / 'lib'}",
            # model.so needs the Relax VM from libtvm_runtime even though runner.cc names only tvm-ffi symbols
            "-Wl,--no-as-needed", "-ltvm_runtime", "-ltvm_ffi", "-Wl,--as-needed"]
    try:
        run_tool(argv, timeout=600)
    except ToolError:
        Path(tmp).unlink(missing_ok=True)
        raise
    os.chmod(tmp, 0o755)
    os.replace(tmp, binary)
    (out_dir / "build.json").write_text(json.dumps({"argv": argv, "apache-tvm": tvm_version,
                                                    "apache-tvm-ffi": ffi_version, "runner_sha256": sha}, indent=1))
    return binary


def write_device_files(workdir: Path, n_inputs: int, function: str = "main", module: str = "model.so",
                       cache: Path | None = None) -> list[str]:
    """Put the aarch64 tvm_runner and run.sh / bench.sh into a bundle's work folder; returns the names written.

    On the board: `pip install apache-tvm==<version>` (for libtvm_runtime.so / libtvm_ffi.so), then
    `./run.sh [OUT_DIR] [IN.npy ...]` or `./bench.sh [ITERATIONS] [OUT.json] [WARMUP]`.
    """
    workdir = Path(workdir)
    shutil.copy2(build_runner(cache), workdir / "tvm_runner")
    (workdir / "tvm_runner").chmod(0o755)
    from edgecc.runtime.device_scripts import default_inputs, render_scripts

    subst = {"@TVM_VERSION@": _installed("apache-tvm", TVM_FALLBACK), "@MODULE@": module, "@FUNCTION@": function,
             "@DEFAULT_INPUTS@": default_inputs(n_inputs)}
    return ["tvm_runner", *render_scripts(workdir, {"tvm_run.sh": "run.sh", "tvm_bench.sh": "bench.sh"}, subst)]
