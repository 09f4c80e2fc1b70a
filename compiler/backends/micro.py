"""micro: PyTorch or ONNX → TVM TIR kernels + edgecc AOT C → Cortex-M firmware (what microTVM did, on TVM 0.27).

    lower_to_tir (micro/lower.py)      Relax legalize + fuse, kernels scheduled for small scratch
    build_kernels (micro/kernels.py)   kernels as C (gcc) or a Thumb object (LLVM)
    plan_arena (micro/plan.py)         one static arena, offsets by liveness, vs the lower bound
    emit_aot_c (micro/emit.py)         model.c / model.h: weights in flash, kernels called in order
    build_firmware (micro/link.py)     libmodel.a + firmware.elf/.bin/.hex for the board, sizes from the ELF
    QemuCortexMRunner (runtime/runners/qemu_system.py)  runs it in qemu-system-arm; cost in QEMU instructions

Options (target `[backends.micro] options`, overridable per compile): codegen "c" | "llvm", opt (gcc -O level),
stack_kb, schedule (False: legalized kernels as TVM emits them, for comparison); with --quantize int8 also
patch_stages=N [patch_grid=RxC]: the first N ops run patch by patch to cut peak RAM (micro/patch.py).

Default codegen, measured (benchmarks/cortexm.py, QEMU instructions per inference, sum over cifar-cnn + resnet8 +
ds-cnn): C with gcc -O3 on every core (M4 124.8M vs LLVM 177.6M; M7 125.3M vs 145.0M; M55 123.2M vs LLVM+MVE
145.0M). LLVM wins on the depthwise ds-cnn (M55 with Helium: 10.9M vs 15.5M) and loses on the dense 3x3
convolutions, where gcc -O3 handles the inlined padding predicate better; gcc -O2 is 3x worse than -O3 there.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
from pathlib import Path

from edgecc.compiler.artifact import Artifact, CompileOptions
from edgecc.compiler.backends import register_backend
from edgecc.compiler.micro.firmware import board_info, check_budget, memory_info, tensor_io
from edgecc.compiler.micro.options import switch_option
from edgecc.errors import TargetError, require


def _checked_options(opts: dict) -> tuple[str, bool, int]:
    """(codegen, schedule, stack bytes) from the target's options with the user's over them; a one-line
    TargetError for a value the build cannot use."""
    codegen = opts.get("codegen", "c")
    if codegen not in ("c", "llvm"):
        raise TargetError(f"micro codegen {codegen!r} is not one of c, llvm")
    if str(opts.get("opt", "-O2")) not in ("-O0", "-O1", "-O2", "-O3", "-Os", "-Oz"):
        raise TargetError(f"--option opt={opts['opt']}: expected one of -O0 -O1 -O2 -O3 -Os -Oz")
    if not str(opts.get("stack_kb", 8)).isdigit() or int(str(opts.get("stack_kb", 8))) < 1:
        raise TargetError(f"--option stack_kb={opts['stack_kb']}: expected a whole number of KiB, 1 or more")
    schedule = switch_option(opts, "schedule", True)
    return codegen, schedule, int(str(opts.get("stack_kb", 8))) * 1024


FRAMES = {"off": [], "file": ["-DEDGECC_FRAME_OUTPUT"], "uart": ["-DEDGECC_FRAME_OUTPUT", "-DEDGECC_FRAME_UART"]}


def _frame_flags(opts: dict) -> list[str]:
    """The harness defines for --option frames=off|file|uart (a split front: outputs as tensor frames, in the
    semihosting output file, and with uart also on the board's UART, runtime/c/include/edgecc/frame.h)."""
    frames = str(opts.get("frames", "off"))
    if frames not in FRAMES:
        raise TargetError(f"--option frames={frames}: expected one of {', '.join(FRAMES)}")
    return FRAMES[frames]


def _import_relax(model):
    """The TVM backend's Relax import (torch.export or the ONNX frontend), its refusals named for this backend."""
    from edgecc.compiler.backends.tvm.importer import import_relax
    from edgecc.errors import UnsupportedOpError

    try:
        return import_relax(model)[0]
    except UnsupportedOpError as e:
        raise UnsupportedOpError(e.op, "micro", "try --backend tvm or --backend iree on a CPU target",
                                 detail=e.detail or "TVM's Relax frontend has no converter for it") from e


def _framed(artifact: Artifact, frame_flags: list[str]) -> Artifact:
    """The artifact with its harness's output format named in the manifest (the runner reads frames by it)."""
    if frame_flags:
        from edgecc.runtime.frame import FORMAT

        artifact.info["output_format"] = FORMAT
    return artifact


@register_backend("micro")
class MicroBackend:
    INT8_ARITHMETIC = "integer"  # --quantize int8: edgecc's int8 C kernels, bit-exact with run_int8
    PRECISIONS = {"fp32": "f32 kernels"}
    PRECISION_REFUSED = "the micro backend compiles fp32 or int8 kernels (--quantize int8), not fp16/bf16"
    OPTIONS = {"codegen": "c (default) or llvm", "opt": "gcc optimisation level: -O0 -O1 -O2 -O3 -Os -Oz",
               "schedule": "1/0: edgecc's TIR schedules (0: TVM's defaults)", "stack_kb": "stack size in KiB, >= 1",
               "frames": "off (default) | file | uart: the harness sends outputs as tensor frames (split fronts)",
               "patch_stages": "int8: run the first N ops patch by patch (MCUNetV2) to cut peak RAM",
               "patch_grid": "with patch_stages: R or RxC tiles of op N's output (default: smallest arena)",
               "inplace": "int8: 1 (default) fuses residual adds into convs and writes outputs over dying inputs; "
                          "0: the tensor-level arena plan",
               "specialize": "int8: 1 (default) compiles the kernels with model.c so gcc specializes them per "
                             "layer; 0: one generic copy"}
    TAKES_FLAGS = True  # arm-none-eabi-gcc flags


    def compile(self, model, target, workdir: Path, options: CompileOptions) -> Artifact:
        tvm = require("tvm", "apache-tvm", "the micro backend")
        from edgecc.compiler.micro.emit import c_prefix, emit_aot_c, emit_reference_input
        from edgecc.compiler.micro.kernels import build_kernels
        from edgecc.compiler.micro.link import build_firmware, cpu_flags
        from edgecc.compiler.micro.lower import lower_to_tir
        from edgecc.compiler.micro.plan import check_plan, model_buffers, plan_arena

        if target.kind != "mcu":
            raise TargetError(f"the micro backend builds microcontroller firmware; target {target.name!r} is "
                              f"a {target.kind} target (use backend iree or tvm)")
        cfg = target.backend("micro")
        opts = {**cfg.options, **options.options}
        codegen, schedule, stack_bytes = _checked_options(opts)
        if getattr(model, "qgraph", None) is None and ("patch_stages" in opts or "patch_grid" in opts):
            raise TargetError("--option patch_stages runs edgecc's int8 kernels patch by patch: add --quantize int8")
        board = target.board(options.board or None)
        frame_flags = _frame_flags(opts)
        if frame_flags:  # the harness's framing is a compile-time switch of runtime/c/harness/main.c
            options = dataclasses.replace(options, extra_flags=(*options.extra_flags, *frame_flags))
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        if getattr(model, "qgraph", None) is not None:  # --quantize int8: edgecc's int8 kernels, no TVM
            from edgecc.compiler.micro.int8_backend import compile_int8

            return _framed(compile_int8(model, target, board, workdir, opts, options, stack_bytes), frame_flags)

        lowered = lower_to_tir(_import_relax(model), model.name, schedule=schedule)
        tvm_target = dict(cfg.tvm_target) if codegen == "llvm" else {"kind": "c"}
        built = build_kernels(lowered.kernels, codegen, tvm_target, workdir)
        for call in lowered.calls:
            call.workspace_bytes = built.workspace.get(call.kernel, 0)
        plan = plan_arena(model_buffers(lowered))
        check_plan(plan)

        io = {"inputs": [tensor_io(lowered.tensors[n]) for n in lowered.inputs],
              "outputs": [tensor_io(lowered.tensors[n]) for n in lowered.outputs]}
        check_budget(model.name, target, board, plan.size, stack_bytes, io, lowered.weight_bytes)

        importer = "the ONNX frontend" if model.kind == "onnx" else "torch.export"
        note = (f"Generated from {model.name} by {importer} -> TVM {tvm.__version__} Relax -> TIR kernels "
                f"({codegen} codegen) for {target.name} / {board.name}.")
        model_c, model_h = emit_aot_c(lowered, built.symbols, plan, note)
        (workdir / "model.c").write_text(model_c)
        (workdir / "model.h").write_text(model_h)
        (workdir / "harness_data.c").write_text(emit_reference_input(model.example_inputs))
        (workdir / "model.relax.py").write_text(lowered.relax_text)
        (workdir / "memory_plan.json").write_text(json.dumps(plan.to_dict(), indent=1))

        fw = build_firmware(workdir, target, board, built.files, opt=opts.get("opt", "-O2"),
                            stack_bytes=stack_bytes, extra_flags=tuple(options.extra_flags))
        files = ["model.c", "model.h", "harness_data.c", "model.relax.py", "memory_plan.json", *built.files,
                 *fw.files]
        info = {
            **board_info(board),
            "codegen": codegen,
            "tvm_target": tvm_target,
            "io": io,
            "c_prefix": c_prefix(model.name),
            "kernels": [{"kernel": c.kernel, "args": c.args, "workspace_bytes": c.workspace_bytes}
                        for c in lowered.calls],
            "memory": memory_info(plan, lowered.weight_bytes, stack_bytes, fw, board),
            "relax_passes": lowered.passes,
        }
        return _framed(Artifact(files=files, entry="firmware.elf", calls=[built.call, *fw.calls],
                                flags=cpu_flags(target) + [opts.get("opt", "-O2"), *options.extra_flags], info=info),
                       frame_flags)

    def versions(self) -> dict:
        from edgecc.tools import run_tool

        out = {}
        try:
            out["tvm"] = importlib.metadata.version("apache-tvm")
        except importlib.metadata.PackageNotFoundError:
            out["tvm"] = "not installed"
        for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
            try:
                out[tool] = run_tool([tool, "--version"]).stdout.splitlines()[0].strip()
            except Exception as e:  # a missing tool is reported, not fatal, in a manifest
                out[tool] = f"unavailable ({e})"
        return out
