"""CUDA targets: the kernels compiled to cubin for the target's sm_XX with nvcc (no GPU needed), and the arch
read back from a cubin.
"""

from __future__ import annotations

from pathlib import Path

from edgecc.errors import ModelError


def precompile_cuda(executable, arch: str, workdir: Path) -> tuple[dict, list[str], str]:
    """Compile the CUDA source TVM embedded in `executable` to a cubin for `arch` with nvcc, here, so the arch
    is checked at build time. (TVM 0.27's CUDA runtime still JIT-compiles the embedded source at load.)"""
    import tvm_ffi

    from edgecc.tools import run_tool

    def walk(m):
        yield m
        for i in m.imports:
            yield from walk(i)

    sources = [tvm_ffi.Module.inspect_source(m, "") for m in walk(executable.mod) if m.kind == "cuda"]
    sources = [s for s in sources if s.strip()]
    if not sources:
        raise ModelError("TVM produced no CUDA kernels for a CUDA target")
    files, call = [], ""
    for i, code in enumerate(sources):
        src, out = f"kernels{i}.cu", f"kernels{i}.{arch}.cubin"
        (workdir / src).write_text(code)
        argv = ["nvcc", "--cubin", f"-arch={arch}", "-O3", src, "-o", out]
        run_tool(argv, cwd=workdir, timeout=1800)
        call = " ".join(argv)
        got = cubin_arch(workdir / out)
        if got != arch:
            raise ModelError(f"nvcc built {out} for {got}, expected {arch}")
        files += [src, out]
    info = {"arch": arch, "cubins": files[1::2], "checked": f"nvcc compiled the kernels; cubin ELF headers say {arch}",
            "runtime_note": "TVM 0.27's CUDA runtime JIT-compiles the embedded CUDA source at load time on the "
                            "device (needs NVRTC there); the cubins are the same source compiled here"}
    return info, files, call


def cubin_arch(path: Path) -> str:
    """The SM architecture in a cubin's ELF header (EF_CUDA_SM: bits 8-15 of e_flags for CUDA >= 12.8)."""
    import struct

    data = path.read_bytes()[:64]
    if data[:4] != b"\x7fELF":
        return "not-an-elf"
    (e_flags,) = struct.unpack_from("<I", data, 48)
    sm = (e_flags >> 8) & 0xFF or e_flags & 0xFF
    return f"sm_{sm}"
