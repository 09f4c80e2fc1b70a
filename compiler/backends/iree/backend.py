"""IREE: torch.export → torch-mlir FX importer (linalg-on-tensors) → the rewrites of pipeline.py → iree-compile →
.vmfb.

ONNX sources go through iree-import-onnx instead of torch-mlir. Flags come from the target file; the
`host` CPU is resolved to its LLVM name at compile time and recorded, since such an artifact only runs on a
CPU with the same features.
"""

from __future__ import annotations

from pathlib import Path

from edgecc.compiler.artifact import Artifact, CompileOptions
from edgecc.compiler.backends import register_backend
from edgecc.errors import first_line
from edgecc.targets.host_cpu import cpu_isa_flags, host_cpu_name
from edgecc.tools import package_version, run_tool

from .cuda import flag_value, inspect_cuda_vmfb
from .device_scripts import write_device_scripts
from .executor import choose_executor
from .importer import entry_function, entry_signature, import_model, raise_if_onnx_op_fails, raise_if_unsupported
from .options import OPTIONS, IreeOptions
from .pipeline import MODULE_PASSES, TILE_PASSES, Build, run_passes

# the target flags a plain rebuild leaves out (_plain_build)
_PLAIN_DROPS = ("--iree-preprocessing-pass-pipeline", "--iree-opt-level")
# the passes' artifact info sections, in the manifest's order
_PASS_INFO = ("nhwc_rewrites", "nhwc_graph", "matmul_data_tiling_hints", "matmul_vector_tiles", "conv_vector_tiles",
              "conv_data_tiling")


@register_backend("iree")
class IreeBackend:
    # --option keys (the target file's [backends.iree] may set them too); --flag goes to iree-compile
    OPTIONS = OPTIONS
    TAKES_FLAGS = True
    PRECISIONS = {"fp32": "f32 throughout",
                  "fp16": "the model converted to f16 before import (every op; f32 inputs and outputs)",
                  "bf16": "the model converted to bf16 before import (every op; f32 inputs and outputs)"}
    PRECISION_AT_SOURCE = True  # compiler/precision.py converts it; iree-compile compiles the narrow types

    def compile(self, model, target, workdir: Path, options: CompileOptions) -> Artifact:
        cfg = target.backend("iree")
        opts = IreeOptions.parse(options.options, cfg.options)
        work = workdir / "work"
        work.mkdir(exist_ok=True)
        mlir = work / "model.mlir"
        call, graph_stats = import_model(model, mlir, workdir, opts.nhwc_graph)
        build = Build(mlir, workdir, opts, flags=list(cfg.flags) + io_dtype_flags(mlir), calls=[call],
                      graph_stats=graph_stats)
        if graph_stats is not None:
            build.info["nhwc_graph"] = graph_stats
        if opts.executor:
            build.info["executor"] = choose_executor(model, opts)
        try:
            run_passes(MODULE_PASSES, build)
            build.flags += list(options.extra_flags)
            run_passes(TILE_PASSES, build)
            argv = build.compile_argv(workdir / "model.vmfb")
            run_tool(argv, cwd=workdir, timeout=3600)
        except Exception as e:
            if model.kind != "onnx" and options.precision == "fp32":  # fp16/bf16: edgecc's rewrites assume f32
                raise_if_unsupported(str(getattr(e, "stderr", "")) or str(e), "iree")
                raise
            build, argv = self._plain_build(model, cfg, opts, workdir, options, e)
        build.calls.append(build.repro(argv))
        info = self._info(cfg, build)
        files = ["model.vmfb"]
        if opts.check_variant_flags:
            files.append(self._check_variant(build, info, options))
        if info["driver"] == "cuda":
            info["cuda"] = inspect_cuda_vmfb(workdir / "model.vmfb", flag_value(build.flags, "--iree-cuda-target"))
        files += write_device_scripts(workdir, info, len(model.example_inputs), len(model.output_names))
        return Artifact(files=files, entry="model.vmfb", calls=build.calls, flags=build.flags, info=info)

    def _plain_build(self, model, cfg, opts, workdir: Path, options: CompileOptions, error: Exception):
        """An ONNX or fp16/bf16 model whose build with edgecc's rewrites and the target's tuned flags failed (IREE
        3.13's "write affecting operations on global resources" on a 1-wide Conv1d and on an Inception-v2
        convolution, with the conv-to-channels-last pipeline or at -O3; edgecc's f32 rewrites on bf16): once more
        from a fresh import, with the target's flags less those. (Build, iree-compile argv); UnsupportedOpError
        naming the ONNX op if that fails too."""
        mlir = workdir / "work" / "model.plain.mlir"
        call, _ = import_model(model, mlir, workdir, False)
        flags = [f for f in cfg.flags if not f.startswith(_PLAIN_DROPS)] + io_dtype_flags(mlir)
        build = Build(mlir, workdir, opts, flags=flags + list(options.extra_flags), calls=[call], graph_stats=None)
        why = first_line(error, 1000).split("; repro:")[0].replace(f"{workdir}/", "")
        dropped = "/".join(_PLAIN_DROPS)
        build.info["fallback"] = f"plain build (no edgecc rewrites, no target {dropped} flags) after: {why[:300]}"
        argv = build.compile_argv(workdir / "model.vmfb")
        try:
            run_tool(argv, cwd=workdir, timeout=3600)
        except Exception as e:
            raise_if_onnx_op_fails(e, model, mlir)
            raise_if_unsupported(str(getattr(e, "stderr", "")) or str(e), "iree")
            raise
        return build, argv

    def _info(self, cfg, build: Build) -> dict:
        """The artifact info: how to run it, and what the passes did."""
        executor = build.info.get("executor")
        info = {"driver": executor["driver"] if executor else (cfg.driver or "local-task"),
                "function": entry_function(build.mlir),
                "device_runtime": f"pip install iree-base-runtime=={package_version('iree-base-runtime')}"}
        if "--iree-llvmcpu-target-cpu=host" in build.flags:
            # target-cpu=host code uses every ISA extension of this CPU: record them, runners check them
            info["host_cpu"] = host_cpu_name()
            info["host_cpu_isa"] = cpu_isa_flags()
        info.update((key, build.info[key]) for key in (*_PASS_INFO, "executor", "fallback") if key in build.info)
        if build.options.note:
            info["note"] = build.options.note
        return info

    def _check_variant(self, build: Build, info: dict, options: CompileOptions) -> str:
        """A second build whose numerics can be checked here (e.g. a generic Vulkan profile on lavapipe); its
        file. At fp16 the profile gets the Float16 capabilities the demoted model needs."""
        opts = build.options
        vflags = list(opts.check_variant_flags)
        if options.precision == "fp16":
            vflags += list(opts.check_variant_fp16_flags)
        vflags += list(options.extra_flags)
        vargv = ["iree-compile", build.relative(build.mlir), *vflags, "-o", "model.check.vmfb"]
        run_tool(vargv, cwd=build.workdir, timeout=3600)
        build.calls.append(build.repro(vargv))
        driver = info["driver"] if opts.check_variant_driver is None else opts.check_variant_driver
        info["check_variant"] = {"file": "model.check.vmfb", "flags": vflags, "driver": driver,
                                 "device": opts.check_variant_device}
        return "model.check.vmfb"

    def versions(self) -> dict[str, str]:
        return {p: package_version(p) for p in ("iree-base-compiler", "iree-base-runtime", "torch-mlir", "torch")}


def io_dtype_flags(mlir: Path) -> list[str]:
    """iree-compile flags the entry point's types need: float64 inputs or outputs stay float64 (IREE demotes f64 to
    f32 by default, and the caller's f64 buffers would then not match the function)."""
    return ["--iree-input-demote-f64-to-f32=false"] if "f64" in entry_signature(mlir) else []
