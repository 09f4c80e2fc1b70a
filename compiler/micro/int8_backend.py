"""The micro backend's int8 path: QGraph -> int8 program -> arena plan -> model.c -> firmware (same link as fp32)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edgecc.compiler.artifact import Artifact
from edgecc.compiler.micro.options import switch_option
from edgecc.errors import TargetError


def inplace_option(opts: dict) -> bool:
    """--option inplace=1 (default): residual adds fused into their conv and outputs written over dying inputs;
    0: the tensor-level plan (every tensor its own buffer, every add its own kernel). With patch_stages the
    default is 0: the patch stage replaces whole-tensor steps, which the fused and shared ones are not yet."""
    patch = opts.get("patch_stages") is not None
    inplace = switch_option(opts, "inplace", not patch)
    if patch and inplace:
        raise TargetError("--option inplace=1 does not combine with patch_stages yet; drop one of them")
    return inplace


def specialize_option(opts: dict) -> bool:
    """--option specialize=1 (default): the kernels are compiled in model.c's translation unit, so gcc sees
    every layer's constant parameters and clones the kernels it judges worth it per layer (interprocedural
    constant propagation: loop bounds, strides and zero points folded); 0: one generic copy, linked."""
    return switch_option(opts, "specialize", True)


def compile_int8(model, target, board, workdir: Path, opts: dict, options, stack_bytes: int) -> Artifact:
    from edgecc.compiler.micro.emit import c_prefix, emit_reference_input
    from edgecc.compiler.micro.firmware import board_info, check_budget, memory_info, tensor_io
    from edgecc.compiler.micro.int8 import KERNEL_SOURCE, HeaderView, emit_int8_c, plan_int8
    from edgecc.compiler.micro.link import build_firmware, cpu_flags, runtime_c_dir
    from edgecc.compiler.micro.patch_emit import PATCH_SOURCE, patch_options, patched_int8
    from edgecc.compiler.micro.plan import check_plan, plan_arena

    inplace = inplace_option(opts)
    prog = plan_int8(model.qgraph, model.name, inplace=inplace)
    tensor_prog = plan_int8(model.qgraph, model.name, inplace=False) if inplace else prog  # what it is below
    patch = patch_options(opts)
    if patch:  # --option patch_stages=N [patch_grid=RxC]: the first N ops tile by tile (patch.py)
        prog, patch_report = patched_int8(prog, *patch)
    plan = plan_arena(prog.buffers())
    check_plan(plan)
    tensor_level = plan if prog is tensor_prog else plan_arena(tensor_prog.buffers())
    view = HeaderView(prog)
    io = {"inputs": [tensor_io(view.tensors["input0"])], "outputs": [tensor_io(view.tensors["output0"])]}
    for spec, name in ((io["inputs"][0], model.input_names[0]), (io["outputs"][0], model.output_names[0])):
        spec["name"] = name
    check_budget(model.name, target, board, plan.size, stack_bytes, io, prog.weight_bytes)

    note = (f"Generated from {model.name} (int8, calibrated on {model.calibration['source']}) for {target.name} / "
            f"{board.name}; kernels: edgecc runtime/c {KERNEL_SOURCE}.")
    model_c, model_h = emit_int8_c(prog, plan, note)
    specialize = specialize_option(opts)
    if specialize:  # one translation unit: the kernels see each call's constant parameters
        model_c = f'#include "{Path(KERNEL_SOURCE).name}"  /* --option specialize=1 */\n' + model_c
    (workdir / "model.c").write_text(model_c)
    (workdir / "model.h").write_text(model_h)
    (workdir / "harness_data.c").write_text(emit_reference_input(model.example_inputs))
    (workdir / "memory_plan.json").write_text(json.dumps({**plan.to_dict(), "inplace_outputs": prog.inplace}, indent=1))
    sources = [KERNEL_SOURCE] + ([PATCH_SOURCE] if patch else [])
    for src in sources:
        shutil.copyfile(runtime_c_dir() / src, workdir / Path(src).name)
    opt = opts.get("opt", "-O2")
    fw = build_firmware(workdir, target, board, [Path(s).name for s in sources], opt=opt, stack_bytes=stack_bytes,
                        extra_flags=tuple(options.extra_flags))
    files = ["model.c", "model.h", "harness_data.c", "memory_plan.json", *[Path(s).name for s in sources], *fw.files]
    info = {
        **board_info(board),
        "codegen": "int8 C kernels (edgecc runtime/c, TFLite arithmetic)",
        "io": io,
        "c_prefix": c_prefix(prog.name),
        "kernels": [{"kernel": s.kernel.split("(")[0], "comment": s.comment, "scratch_bytes": s.scratch_bytes}
                    for s in prog.steps],
        "memory": memory_info(plan, prog.weight_bytes, stack_bytes, fw, board, weights_note="weights = int8 "
                              "weights + int32 biases and multipliers + int8 shifts"),
    }
    if patch:
        info["memory"]["patch"] = patch_report
    info["memory"].update({  # what in-place outputs and fused residual adds saved against one buffer per tensor
        "inplace": inplace, "specialize": specialize, "tensor_level_arena_bytes": tensor_level.size,
        "tensor_level_lower_bound_bytes": tensor_level.lower_bound, "inplace_outputs": dict(prog.inplace)})
    return Artifact(files=files, entry="firmware.elf", calls=fw.calls, flags=cpu_flags(target) + [opt],
                    info=info)
