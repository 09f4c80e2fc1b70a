"""Every external tool goes through here: find the binary, run it, and fail with a reproducible error.

Lookup order for a tool: the environment variable (e.g. EDGECC_IREE_COMPILE), then the folder of the running
Python (a venv's bin/, where pip puts the wheels' console scripts), then PATH.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from edgecc.errors import ToolError

# tool -> (env var, package that ships it or how to get it)
KNOWN_TOOLS = {
    "iree-compile": ("EDGECC_IREE_COMPILE", "pip install iree-base-compiler"),
    "iree-import-onnx": ("EDGECC_IREE_IMPORT_ONNX", "pip install iree-base-compiler onnx"),
    "iree-run-module": ("EDGECC_IREE_RUN_MODULE", "pip install iree-base-runtime"),
    "iree-benchmark-module": ("EDGECC_IREE_BENCHMARK_MODULE", "pip install iree-base-runtime"),
    "arm-none-eabi-gcc": ("EDGECC_ARM_GCC", "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"),
    "qemu-system-arm": ("EDGECC_QEMU_SYSTEM_ARM", "apt-get install qemu-system-arm"),
    "qemu-aarch64": ("EDGECC_QEMU_AARCH64", "apt-get install qemu-user"),
    "aarch64-linux-gnu-g++": ("EDGECC_AARCH64_CXX", "apt-get install g++-aarch64-linux-gnu"),
    "nvcc": ("EDGECC_NVCC", "the CUDA toolkit"),
}


def _env_var(name: str) -> str:
    return KNOWN_TOOLS.get(name, ("EDGECC_" + name.upper().replace("-", "_"), ""))[0]


def find_tool(name: str) -> str:
    """Absolute path of tool `name`, or ToolError saying how to install it."""
    env = os.environ.get(_env_var(name))
    if env:
        if not Path(env).is_file():
            raise ToolError(f"{_env_var(name)}={env} does not exist")
        return env
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which(name)
    if found:
        return found
    hint = KNOWN_TOOLS.get(name, ("", ""))[1]
    raise ToolError(f"tool {name!r} not found (set {_env_var(name)} or put it on PATH"
                    + (f"; install: {hint})" if hint else ")"))


def repro_line(argv: list[str], cwd: str | Path | None = None) -> str:
    cmd = shlex.join(str(a) for a in argv)
    return f"cd {shlex.quote(str(cwd))} && {cmd}" if cwd else cmd


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when edgecc dies, even by SIGKILL, so no iree-compile goes on writing
    into a temp folder nobody owns (Linux prctl PR_SET_PDEATHSIG; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
        except OSError:
            pass


def run_tool(argv: list[str], cwd: str | Path | None = None, timeout: float | None = None,
             env: dict | None = None, check: bool = True, input: bytes | None = None
             ) -> subprocess.CompletedProcess:
    """Run argv (argv[0] is looked up with find_tool unless it is a path). Returns the CompletedProcess
    (stdout/stderr as text); on non-zero exit raises ToolError with argv, exit code, stderr tail and repro."""
    argv = [str(a) for a in argv]
    if os.sep not in argv[0]:
        argv[0] = find_tool(argv[0])
    full_env = None if env is None else {**os.environ, **env}
    try:
        proc = subprocess.run(argv, cwd=cwd, env=full_env, capture_output=True, timeout=timeout, input=input,
                              preexec_fn=die_with_parent)
    except subprocess.TimeoutExpired as e:
        raise ToolError(f"{Path(argv[0]).name} timed out after {timeout:.0f}s; repro: {repro_line(argv, cwd)}",
                        argv=argv, stderr=_text(e.stderr), repro=repro_line(argv, cwd)) from None
    out = subprocess.CompletedProcess(argv, proc.returncode, _text(proc.stdout), _text(proc.stderr))
    if check and proc.returncode != 0:
        tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-15:])
        # the first diagnostic of the whole output (compilers follow it with pages of IR), else the tail's
        first = next((ln for ln in (out.stderr or out.stdout).splitlines() if "error:" in ln.lower()), "") or \
            next((ln for ln in tail.splitlines() if "error" in ln.lower()), tail.splitlines()[-1] if tail else "")
        raise ToolError(f"{Path(argv[0]).name} failed (exit {proc.returncode}): {first.strip()[:300]}; "
                        f"repro: {repro_line(argv, cwd)}",
                        argv=argv, returncode=proc.returncode, stderr=tail, repro=repro_line(argv, cwd))
    return out


def run_recorded(argv: list[str], calls: list[str], cwd: str | Path | None = None, **kwargs
                 ) -> subprocess.CompletedProcess:
    """run_tool, after appending the call's one-line repro to `calls` (a stage's record of what it ran, which goes
    into the manifest), so the record holds the failing call too."""
    calls.append(repro_line(argv, cwd))
    return run_tool(argv, cwd=cwd, **kwargs)


def _text(b) -> str:
    if b is None:
        return ""
    return b.decode(errors="replace") if isinstance(b, bytes) else b


def package_version(pkg: str) -> str:
    """The installed version of a Python package, or "not installed" (for manifests and device scripts)."""
    from importlib import metadata

    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"
