"""When: before conv_data_tiling_hints.py (few-channel convolutions left direct, with data tiling on).
What: the target's IREE preprocessing pipeline (the channels-last convolution pass) is run on the module file with
iree-opt, so that the convolutions can be rewritten in the NHWC form IREE compiles; that pipeline then leaves the
iree-compile flags."""

from __future__ import annotations

from pathlib import Path

from edgecc.tools import find_tool, repro_line, run_tool

PREPROCESSING = "--iree-preprocessing-pass-pipeline="


def channels_last_first(mlir: Path, flags: list[str], workdir: Path, calls: list[str]) -> list[str]:
    """Run the target's preprocessing pipeline on `mlir` in place, its repro line into `calls`; the flags without
    it (unchanged, and nothing run, when the flags have none)."""
    pipeline = next((f[len(PREPROCESSING):] for f in flags if f.startswith(PREPROCESSING)), None)
    if pipeline is None:
        return flags
    # iree-compile nests it on util.func (its input is already converted); the imported module has func.func
    out = mlir.with_name("model.channels_last.mlir")  # not in place: iree-opt reads its input mapped
    argv = ["iree-opt", f"--pass-pipeline={pipeline.replace('util.func(', 'func.func(')}", str(mlir), "-o", str(out)]
    run_tool(argv, cwd=workdir, timeout=3600)
    out.replace(mlir)
    calls.append(repro_line([find_tool("iree-opt")] + argv[1:]) + f" && mv {out.name} {mlir.name}")
    return [f for f in flags if not f.startswith(PREPROCESSING)]
