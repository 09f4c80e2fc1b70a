"""Build firmware with arm-none-eabi-gcc: libmodel.a for users' own firmware, and a QEMU/board ELF.

    libmodel.a   = model.c (AOT driver + weights) + kernels (C or LLVM object) + runtime/c workspace allocator
    firmware.elf = libmodel.a + runtime/c startup, semihosting, SysTick timing, harness main.c, reference input

Linker scripts are generated per board from the target file (ram/flash origin and size). Sizes come from the
ELF (arm-none-eabi-size -A): flash = text + rodata + exception tables + the .data load image;
RAM = .data + .bss (the arena is part of it) + the stack.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from edgecc.errors import BudgetError, ToolError
from edgecc.tools import repro_line, run_recorded, run_tool

RUNTIME_C = Path(__file__).resolve().parents[2] / "runtime" / "c"
LIB_SOURCES = ["src/workspace.c"]
FIRMWARE_SOURCES = ["src/startup.c", "src/semihost.c", "src/timing.c", "src/frame.c", "harness/main.c"]
FLASH_SECTIONS = (".text", ".rodata", ".ARM.extab", ".ARM.exidx", ".data")
RAM_SECTIONS = (".data", ".bss", ".stack")


def runtime_c_dir() -> Path:
    """runtime/c, from the source tree or the installed package data."""
    if RUNTIME_C.is_dir():
        return RUNTIME_C
    import edgecc.runtime

    return Path(edgecc.runtime.__file__).parent / "c"


def tvm_include_dirs() -> list[Path]:
    """Header folders shipped in the apache-tvm and apache-tvm-ffi wheels (dlpack, tvm/ffi, tvm/runtime)."""
    dirs = []
    for pkg in ("tvm_ffi", "tvm"):
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            raise ToolError(f"the micro backend needs the headers of the {pkg} wheel; pip install apache-tvm")
        dirs.append(Path(list(spec.submodule_search_locations)[0]) / "include")
    return dirs


def cpu_flags(target) -> list[str]:
    """gcc flags for the target's core: -mcpu, -mthumb, float ABI and FPU from the [cpu] table."""
    cpu = target.cpu
    flags = [f"-mcpu={cpu.cpu}", "-mthumb"]
    if cpu.float_abi:
        flags.append(f"-mfloat-abi={cpu.float_abi}")
    if cpu.fpu:
        flags.append(f"-mfpu={cpu.fpu}")
    return flags


def linker_script(target, board, stack_bytes: int) -> str:
    template = (runtime_c_dir() / "ld" / "cortex-m.ld.in").read_text()
    values = {"BOARD": board.name, "TARGET": target.name, "FLASH_ORIGIN": f"{board.flash_origin:#010x}",
              "FLASH_KB": board.flash_kb, "RAM_ORIGIN": f"{board.ram_origin:#010x}", "RAM_KB": board.ram_kb,
              "STACK_BYTES": stack_bytes}
    for key, value in values.items():
        template = template.replace(f"@{key}@", str(value))
    return template


@dataclass
class Firmware:
    files: list[str]
    calls: list[str]
    sections: dict[str, int]  # ELF section -> bytes
    flash_bytes: int
    ram_bytes: int
    lib_members: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"flash_bytes": self.flash_bytes, "ram_bytes": self.ram_bytes, "sections": self.sections}


def _compile_all(jobs: list[tuple[list[str], Path]], calls: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:  # the build machine is small and shared
        for argv, cwd in jobs:
            calls.append(repro_line(argv, cwd))
        list(pool.map(lambda j: run_tool(j[0], cwd=j[1], timeout=600), jobs))


def elf_sections(elf: Path) -> dict[str, int]:
    out = run_tool(["arm-none-eabi-size", "-A", str(elf)]).stdout
    sections = {}
    for line in out.splitlines():
        m = re.match(r"^(\.\S+)\s+(\d+)\s+(\d+)", line)
        if m and not m.group(1).startswith((".debug", ".comment", ".ARM.attributes")):
            sections[m.group(1)] = int(m.group(2))
    return sections


def build_firmware(workdir: Path, target, board, kernel_files: list[str], opt: str = "-O2",
                   stack_bytes: int = 8192, extra_flags: tuple[str, ...] = ()) -> Firmware:
    """Compile and link everything in `workdir` (model.c, kernels.c|o, harness_data.c are already there).

    Example: `build_firmware(Path("b"), get_target("cortex-m4"), target.board(), ["kernels.c"])`.
    """
    workdir = Path(workdir)
    rt = runtime_c_dir()
    objdir = workdir / "obj"
    objdir.mkdir(exist_ok=True)
    cflags = c_flags(cpu_flags(target) + [opt, *extra_flags], [workdir])
    gcc = "arm-none-eabi-gcc"
    calls: list[str] = []

    lib_srcs = [("model.c", workdir / "model.c")] + [(Path(s).name, rt / s) for s in LIB_SOURCES]
    lib_objs = [f for f in kernel_files if f.endswith(".o")]
    unity = included_sources(workdir)  # kernels model.c compiles itself (int8 --option specialize=1)
    lib_srcs += [(f, workdir / f) for f in kernel_files if f.endswith(".c") and f not in unity]
    fw_srcs = [(Path(s).name, rt / s) for s in FIRMWARE_SOURCES] + [("harness_data.c", workdir / "harness_data.c")]
    jobs = []
    for name, src in lib_srcs + fw_srcs:
        flags = cflags + (["-DEDGECC_HARNESS"] if name == "main.c" else [])
        jobs.append(([gcc, *flags, "-c", str(src), "-o", str(objdir / (Path(name).stem + ".o"))], workdir))
    _compile_all(jobs, calls)

    members = [str(objdir / (Path(n).stem + ".o")) for n, _ in lib_srcs] + [str(workdir / o) for o in lib_objs]
    lib = workdir / "libmodel.a"
    lib.unlink(missing_ok=True)
    run_recorded(["arm-none-eabi-ar", "rcs", str(lib), *members], calls, cwd=workdir)

    fw = link_elf(workdir, target, board, [str(objdir / (Path(n).stem + ".o")) for n, _ in fw_srcs] + [str(lib)],
                  stack_bytes, calls)
    shutil.rmtree(objdir)
    fw.lib_members = [Path(m).name for m in members]
    return fw


def included_sources(workdir: Path) -> set[str]:
    """The .c files workdir/model.c #includes: one translation unit with the model, so not compiled again.

    Example: `included_sources(bundle.path)` -> {"int8_kernels.c"} for an int8 bundle built with specialize=1.
    """
    model_c = Path(workdir) / "model.c"
    text = model_c.read_text() if model_c.exists() else ""
    return set(re.findall(r'^#include "([\w.-]+\.c)"', text, re.M))


def c_flags(flags: list[str], include_dirs: list[Path]) -> list[str]:
    """gcc flags of every firmware source: the core's flags and -O level (`flags`), warnings, sections for
    --gc-sections, and the include folders (`include_dirs`, runtime/c/include, TVM's headers)."""
    includes = [f"-I{d}" for d in include_dirs] + [f"-I{runtime_c_dir() / 'include'}"]
    return [*flags, "-std=gnu11", "-ffunction-sections", "-fdata-sections", "-fno-common", "-Wall",
            "-Wno-unused-variable", "-Wno-unused-but-set-variable", "-Wno-unused-function",
            *includes, *[f"-I{d}" for d in tvm_include_dirs()]]


def link_elf(workdir: Path, target, board, objects: list[str], stack_bytes: int, calls: list[str]) -> Firmware:
    """Link `objects` into workdir/firmware.elf (+ .bin, .hex) for the board, sizes from the ELF; an overflowing
    region is a BudgetError saying how much the firmware needs."""
    gcc = "arm-none-eabi-gcc"
    (workdir / "firmware.ld").write_text(linker_script(target, board, stack_bytes))
    argv = [gcc, *cpu_flags(target), "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
            "-Wl,--gc-sections", f"-Wl,-Map={workdir / 'firmware.map'}", f"-T{workdir / 'firmware.ld'}",
            *objects, "-lm", "-o", str(workdir / "firmware.elf")]
    try:
        run_recorded(argv, calls, cwd=workdir)
    except ToolError as e:
        m = re.search(r"region `(\w+)' overflowed by (\d+) bytes", e.stderr or "")
        if m:
            region, over = m.group(1), int(m.group(2))
            have = board.ram_kb if region == "RAM" else board.flash_kb
            raise BudgetError(f"firmware needs {have + (over + 1023) // 1024} KB {region}, board {board.name} has "
                              f"{have} KB; try --quantize int8 or a board with more {region}") from None
        raise
    for fmt, ext in (("binary", "bin"), ("ihex", "hex")):
        run_recorded(["arm-none-eabi-objcopy", "-O", fmt, str(workdir / "firmware.elf"),
                      str(workdir / f"firmware.{ext}")], calls, cwd=workdir)
    sections = elf_sections(workdir / "firmware.elf")
    flash = sum(v for k, v in sections.items() if k in FLASH_SECTIONS)
    ram = sum(v for k, v in sections.items() if k in RAM_SECTIONS)
    files = ["libmodel.a", "firmware.elf", "firmware.bin", "firmware.hex", "firmware.map", "firmware.ld"]
    return Firmware(files, calls, sections, flash, ram)
