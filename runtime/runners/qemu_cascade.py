"""Run a cascade's Cortex-M firmware (compiler/compose/cascade_firmware.py) in qemu-system-arm: every sample in one
boot, and per sample the answering model's output, which model answered, and the instructions it took.

    >>> r = QemuCascadeRunner(Path("out/firmware/firmware.elf"), "mps2-an386", io)   # doctest: +SKIP
    >>> run = r.run_many(x_test)                                                       # doctest: +SKIP
    >>> run.who[:5], run.instructions[:5]                                              # doctest: +SKIP
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecc.errors import ToolError, ValidationError
from edgecc.runtime.runners.qemu_system import METHOD, fault_message, qemu_argv
from edgecc.tools import repro_line, run_tool

SAMPLE = re.compile(r"^edgecc: sample (\d+) (little|big) ticks (\d+) score (\S+)$", re.M)


@dataclass
class CascadeRun:
    outputs: np.ndarray  # (N, classes): the answering model's output per sample
    who: np.ndarray  # (N,) 0 = little answered, 1 = big
    instructions: np.ndarray  # (N,) little + policy (+ big) per sample, QEMU instructions
    scores: np.ndarray  # (N,) the policy's score as the firmware computed it (7 significant digits)
    method: str = METHOD


class QemuCascadeRunner:
    """A cascade firmware in qemu-system-arm (-icount shift=0: the counts are deterministic)."""

    def __init__(self, elf: Path, machine: str, io: dict, timeout: float = 600):
        self.elf, self.machine, self.io, self.timeout = Path(elf), machine, io, timeout
        self.where = f"qemu-system-arm -M {machine}"

    def run_many(self, x: np.ndarray | None, mode: str = "cascade") -> CascadeRun:
        """Every sample of x (N, ...) through the cascade in one boot; None: the reference input compiled in.
        mode "little" / "big" runs that model alone (its own cost, in this same firmware)."""
        (spec,), (ospec,) = self.io["inputs"], self.io["outputs"]
        with tempfile.TemporaryDirectory(prefix="edgecc-qemu-cascade-") as tmp:
            tmp = Path(tmp)
            args, n = ["-", "output.bin", "1", mode], 1
            if x is not None:
                x = np.ascontiguousarray(x, dtype=spec["dtype"])
                if list(x.shape[1:]) != list(spec["shape"][1:]):
                    raise ValidationError(f"samples of shape {list(x.shape[1:])} != compiled shape {spec['shape']}")
                (tmp / "input.bin").write_bytes(x.tobytes())
                args, n = ["input.bin", "output.bin", str(len(x)), mode], len(x)
            argv = qemu_argv(self.elf, self.machine, args)
            proc = run_tool(argv, cwd=tmp, timeout=self.timeout, check=False)
            log = proc.stdout + proc.stderr
            if proc.returncode != 0 or "edgecc: done" not in log:
                why = fault_message(proc.returncode)
                tail = "; ".join(ln for ln in log.splitlines() if ln.startswith("edgecc: error"))[-400:]
                raise ToolError(f"cascade firmware failed in qemu-system-arm (exit {proc.returncode}"
                                f"{', ' + why if why else ''}): {tail}; repro: {repro_line(argv, tmp)}",
                                argv=argv, returncode=proc.returncode, stderr=log[-2000:], repro=repro_line(argv, tmp))
            raw = (tmp / "output.bin").read_bytes()
        cal = re.search(r"edgecc: calibration (\d+) instructions per 1024 ticks", log)
        if not cal or int(cal.group(1)) == 0:
            raise ToolError("cascade firmware printed no SysTick calibration; is it running under -icount?")
        per_1024 = int(cal.group(1))
        rows = SAMPLE.findall(log)
        if len(rows) != n:
            raise ToolError(f"cascade firmware reported {len(rows)} samples, {n} were sent")
        outputs = np.frombuffer(raw, dtype=ospec["dtype"]).reshape(n, *ospec["shape"][1:]).copy()
        return CascadeRun(outputs, np.array([r[1] == "big" for r in rows], dtype=np.int64),
                          np.array([round(int(r[2]) * per_1024 / 1024) for r in rows], dtype=np.int64),
                          np.array([float(r[3]) for r in rows]))
