"""Per-kernel instruction counts of a micro bundle in QEMU: a profiling build of the same firmware.

The AOT driver calls `EDGECC_PROFILE_STEP(i)` after kernel i (emit.py, int8.py): a no-op in the bundle's firmware,
a SysTick read in a build with `-DEDGECC_PROFILE`. `profile_kernels` rebuilds the firmware from the bundle's own
sources (model.c, the kernels, the harness) with that flag in a temporary folder, runs one timed inference in
qemu-system-arm under `-icount shift=0` and converts each kernel's ticks to instructions with the harness's
calibration, as the QemuCortexMRunner does for whole inferences. The bundle is not changed.

    >>> rows = profile_kernels(Bundle.load("build/digits-cnn-cortex-m4-micro"))["kernels"]   # doctest: +SKIP
    >>> rows[1]                                                                              # doctest: +SKIP
    {'step': 1, 'kernel': 'edgecc_q8_conv', 'comment': 'conv + relu', 'instructions': 20312, 'share': 0.41}
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from pathlib import Path

from edgecc.errors import BundleError, CannotRunHere, ToolError

KERNEL_FILES = ("kernels.c", "kernels.o", "int8_kernels.c")
METHOD = "QEMU icount per kernel (instructions, not time), profiling build with -DEDGECC_PROFILE"


def _kernel_names(bundle) -> list[tuple[str, str, list[int]]]:
    """(kernel, comment, element counts of its constant arguments) per step: from the artifact info (int8: its
    steps run in graph order, no argument shapes needed) or the fp32 AOT driver's step comments and tensors."""
    info = bundle.manifest["artifact"]["info"]
    if "int8" in str(info.get("codegen", "")):
        return [(k["kernel"], k.get("comment", ""), []) for k in info["kernels"]]
    text = (Path(bundle.path) / "model.c").read_text()
    consts = {n: math.prod(int(d) for d in shape.split("x"))
              for n, shape in re.findall(r"^static const DLTensor (\w+) = .*/\* const ([0-9x]+)", text, re.M)}
    return [(m.group(1), "", [consts[a] for a in m.group(2).split(", ") if a in consts])
            for m in re.finditer(r"^  /\* \d+: (\w+)\(([^)]*)\)", text, re.M)]


def profile_kernels(bundle, timeout: float = 300) -> dict:
    """{"method", "total_instructions", "kernels": [{step, kernel, comment, instructions, share}]} (see above)."""
    from edgecc.compiler.micro.link import build_firmware
    from edgecc.runtime.runners import QemuCortexMRunner
    from edgecc.targets import get_target

    m = bundle.manifest
    info = m["artifact"]["info"]
    src = Path(bundle.path)
    if "EDGECC_PROFILE_STEP" not in (src / "model.c").read_text():
        raise BundleError(f"{src}: its model.c has no per-kernel profiling hooks (built by an older edgecc); "
                          "recompile the bundle")
    if not info.get("qemu_machine"):
        raise CannotRunHere(f"board {info.get('board')} has no QEMU machine: per-kernel counts need the board")
    target = get_target(m["target"].get("source") or m["target"]["name"])
    board = target.board(info.get("board"))
    kernels = [f for f in KERNEL_FILES if f in m["files"]]
    stack = info.get("memory", {}).get("stack_bytes", 8192)
    opt = next((f for f in m["compile"].get("flags", []) if re.fullmatch(r"-O[0-3sz]", f)), "-O2")
    with tempfile.TemporaryDirectory(prefix="edgecc-profile-") as tmp:
        work = Path(tmp)
        for f in ("model.c", "model.h", "harness_data.c", *kernels):
            shutil.copyfile(src / f, work / f)
        build_firmware(work, target, board, kernels, opt=opt, stack_bytes=stack,
                       extra_flags=(*m["options"].get("extra_flags", []), "-DEDGECC_PROFILE"))
        counts = QemuCortexMRunner(work / "firmware.elf", info["qemu_machine"], info["io"], timeout).kernel_counts()
    names = _kernel_names(bundle)
    if len(counts) != len(names):
        raise ToolError(f"the profiling firmware reported {len(counts)} kernels, the bundle has {len(names)}")
    total = sum(counts) or 1
    rows = [{"step": i, "kernel": k, "comment": c, "instructions": n, "share": round(n / total, 4),
             **({"arg_elements": e} if e else {})} for i, ((k, c, e), n) in enumerate(zip(names, counts, strict=True))]
    return {"method": METHOD, "ran_on": f"qemu-system-arm -M {info['qemu_machine']}",
            "unit": "instructions", "total": sum(counts), "kernels": rows}
