"""This machine's CPU, as targets with `cpu = "host"` resolve it: the LLVM CPU name and the ISA extensions.

    >>> host_cpu_name()        # doctest: +SKIP
    'znver5'
"""

from __future__ import annotations


def host_cpu_name() -> str:
    """The LLVM name of this machine's CPU (what target-cpu=host resolves to), via TVM's LLVM when installed,
    else the CPU model name from /proc/cpuinfo."""
    try:
        import tvm  # noqa: F401  (registers target.llvm_get_system_cpu)
        import tvm_ffi

        return str(tvm_ffi.get_global_func("target.llvm_get_system_cpu")())
    except Exception:
        return _cpuinfo_field("model name") or "unknown"


_ISA_PREFIXES = ("avx", "sse", "ssse", "fma", "f16c", "bmi", "amx", "vaes", "vpclmul", "gfni", "sha_ni", "adx",
                 "movbe", "popcnt", "lzcnt", "abm")


def cpu_isa_flags() -> list[str]:
    """The instruction-set extensions this CPU reports (x86 /proc/cpuinfo flags); [] where unknown."""
    flags = _cpuinfo_field("flags").split()
    return sorted(f for f in flags if f.startswith(_ISA_PREFIXES))


def _cpuinfo_field(name: str) -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
