"""Run edgecc Cortex-M firmware in qemu-system-arm: semihosting for files and exit code, -icount for counts.

Under `-icount shift=0` QEMU advances virtual time by exactly 1 ns per guest instruction, so the SysTick
ticks the harness reports are a fixed multiple of the instructions executed; the harness measures that
multiple on a loop of known length ("calibration") and we convert. The numbers are **instructions executed
in QEMU**, deterministic and comparable between builds, but not cycles and not time on a real core.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

from edgecc.errors import ToolError, ValidationError
from edgecc.runtime.runners.base import RunnerBase
from edgecc.runtime.runners.registry import register_runner
from edgecc.tools import find_tool, repro_line, run_tool

METHOD = "QEMU icount (instructions, not time)"


def qemu_argv(elf: Path, machine: str, args: list[str]) -> list[str]:
    semihosting = ",".join(["enable=on", "target=native", "arg=firmware", *[f"arg={a}" for a in args]])
    return [find_tool("qemu-system-arm"), "-M", machine, "-display", "none", "-monitor", "none", "-serial", "null",
            "-icount", "shift=0", "-semihosting-config", semihosting, "-kernel", str(Path(elf).resolve())]


def fault_message(rc: int) -> str:
    names = {103: "HardFault", 104: "MemManage fault", 105: "BusFault", 106: "UsageFault (or stack overflow)"}
    return names.get(rc, "")


@register_runner("micro", "qemu-system-arm")
class QemuCortexMRunner(RunnerBase):
    """Runs a micro bundle's firmware.elf in qemu-system-arm. `run()` returns outputs, `time()` samples."""

    def __init__(self, elf: Path, machine: str, io: dict, timeout: float = 300, output_format: str = "raw"):
        self.elf, self.machine, self.io, self.timeout = Path(elf), machine, io, timeout
        self.output_format = output_format  # "raw", or edgecc-frame/1: a split front's framed cut tensor
        self.where = f"qemu-system-arm -M {machine}"
        self.last_log = ""

    def _invoke(self, inputs: list[np.ndarray] | None, warmup: int, iters: int) -> tuple[list[np.ndarray], dict]:
        with tempfile.TemporaryDirectory(prefix="edgecc-qemu-") as tmp:
            tmp = Path(tmp)
            in_arg = "-"
            if inputs is not None:
                specs = self.io["inputs"]
                if len(inputs) != len(specs):
                    raise ValidationError(f"firmware takes {len(specs)} input(s), got {len(inputs)}")
                raw = b""
                for a, s in zip(inputs, specs, strict=True):
                    a = np.ascontiguousarray(a, dtype=s["dtype"])
                    if list(a.shape) != list(s["shape"]):
                        raise ValidationError(f"input shape {list(a.shape)} != compiled shape {s['shape']}")
                    raw += a.tobytes()
                (tmp / "input.bin").write_bytes(raw)
                in_arg = "input.bin"
            argv = qemu_argv(self.elf, self.machine, [in_arg, "output.bin", str(warmup), str(iters)])
            proc = run_tool(argv, cwd=tmp, timeout=self.timeout, check=False)
            log = proc.stdout + proc.stderr
            self.last_log = log
            if proc.returncode != 0 or "edgecc: done" not in log:
                why = fault_message(proc.returncode)
                tail = "; ".join(ln for ln in log.splitlines() if ln.startswith("edgecc:"))[-400:]
                raise ToolError(f"firmware failed in qemu-system-arm (exit {proc.returncode}"
                                f"{', ' + why if why else ''}): {tail}; repro: {repro_line(argv, tmp)}",
                                argv=argv, returncode=proc.returncode, stderr=log[-2000:],
                                repro=repro_line(argv, tmp))
            raw = (tmp / "output.bin").read_bytes()
        if self.output_format != "raw":
            return self._frames(raw), parse_log(log)
        outputs, off = [], 0
        for s in self.io["outputs"]:
            n = int(np.prod(s["shape"])) * np.dtype(s["dtype"]).itemsize
            outputs.append(np.frombuffer(raw[off:off + n], dtype=s["dtype"]).reshape(s["shape"]).copy())
            off += n
        return outputs, parse_log(log)

    def _frames(self, raw: bytes) -> list[np.ndarray]:
        """The outputs from the tensor frames the firmware wrote (edgecc.runtime.frame), checked against the io."""
        from edgecc.runtime.frame import read_frames

        outputs = read_frames(raw, "the firmware's output file")
        specs = self.io["outputs"]
        got = [(list(o.shape), str(o.dtype)) for o in outputs]
        if got != [(list(s["shape"]), s["dtype"]) for s in specs]:
            raise ValidationError(f"the firmware sent frames {got}, its manifest says "
                                  f"{[(s['shape'], s['dtype']) for s in specs]}; recompile the bundle")
        return outputs

    def run_many(self, x: np.ndarray) -> np.ndarray:
        """Outputs of the (one-input, one-output) model on every sample of x (N, ...), all in one QEMU boot: the
        firmware reads the samples one after another from a semihosting file and writes each output."""
        (spec,), (ospec,) = self.io["inputs"], self.io["outputs"]
        x = np.ascontiguousarray(x, dtype=spec["dtype"])
        if list(x.shape[1:]) != list(spec["shape"][1:]) or spec["shape"][0] != 1:
            raise ValidationError(f"samples of shape {list(x.shape[1:])} != compiled shape {spec['shape']}")
        with tempfile.TemporaryDirectory(prefix="edgecc-qemu-") as tmp:
            tmp = Path(tmp)
            (tmp / "input.bin").write_bytes(x.tobytes())
            argv = qemu_argv(self.elf, self.machine, ["input.bin", "output.bin", "0", "1", str(len(x))])
            proc = run_tool(argv, cwd=tmp, timeout=self.timeout, check=False)
            log = proc.stdout + proc.stderr
            if proc.returncode != 0 or "edgecc: done" not in log:
                tail = "; ".join(ln for ln in log.splitlines() if ln.startswith("edgecc:"))[-400:]
                raise ToolError(f"firmware failed in qemu-system-arm (exit {proc.returncode}): {tail}; "
                                f"repro: {repro_line(argv, tmp)}", argv=argv, returncode=proc.returncode,
                                stderr=log[-2000:], repro=repro_line(argv, tmp))
            raw = (tmp / "output.bin").read_bytes()
        return np.frombuffer(raw, dtype=ospec["dtype"]).reshape(len(x), *ospec["shape"][1:]).copy()

    def run_samples(self, samples: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
        """One QEMU boot for every sample of a one-input, one-output batch-1 model (run_many); one boot per
        sample otherwise."""
        ins, outs = self.io["inputs"], self.io["outputs"]
        if len(samples) > 1 and len(ins) == 1 and len(outs) == 1 and ins[0]["shape"][:1] == [1]:
            out = self.run_many(np.concatenate([s[0] for s in samples]))
            return [[out[i:i + 1]] for i in range(len(samples))]
        return [self.run(s) for s in samples]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Outputs of one inference on `inputs` (fed to the firmware through a semihosting file)."""
        return self._invoke(inputs, 0, 1)[0]

    def kernel_counts(self, inputs: list[np.ndarray] | None = None) -> list[int]:
        """Instructions of each kernel of one inference; the firmware must be a profiling build (-DEDGECC_PROFILE,
        edgecc.compiler.micro.profile_firmware), whose driver reports the ticks after each kernel."""
        return self._invoke(inputs, 0, 1)[1]["steps"]

    def time(self, inputs: list[np.ndarray] | None, warmup: int = 1, iters: int = 5) -> dict:
        """Per-inference instruction counts: {"samples": [...], "unit": "instructions", "method": ...}."""
        _, stats = self._invoke(inputs, warmup, iters)
        return {"samples": stats["instructions"], "unit": "instructions", "method": METHOD, "warmup": warmup,
                "iterations": iters,
                "extra": {"machine": self.machine, "resolution_instructions": stats["resolution"],
                          "workspace_peak_bytes": stats["workspace_peak"]}}


def parse_log(log: str) -> dict:
    """Read the harness lines: calibration, per-iteration ticks, workspace peak, and a profiling build's
    per-kernel ticks of the timed run ("steps", as instructions)."""
    cal = re.search(r"edgecc: calibration (\d+) instructions per 1024 ticks", log)
    if not cal or int(cal.group(1)) == 0:
        raise ToolError("firmware printed no SysTick calibration; is it running under -icount?")
    per_1024 = int(cal.group(1))
    ticks = [int(t) for t in re.findall(r"^edgecc: ticks (\d+)", log, re.M)]
    peak = re.search(r"edgecc: workspace peak (\d+)", log)
    steps = [int(t) for t in re.findall(r"^edgecc: step \d+ ticks (\d+)", log, re.M)]
    return {"instructions": [round(t * per_1024 / 1024) for t in ticks], "ticks": ticks,
            "steps": [round(t * per_1024 / 1024) for t in steps],
            "resolution": round(per_1024 / 1024), "workspace_peak": int(peak.group(1)) if peak else 0}
