"""TVM: torch.export -> Relax (from_exported_program; ONNX via the Relax ONNX frontend) -> tvm.compile -> .so.

Targets are dicts in the target file (TVM 0.27 takes them as such). `mcpu = "host"` is resolved to this
machine's LLVM CPU name, since TVM refuses `-mcpu=native`. A foreign triple is exported with the target's
cross compiler. CPU targets are built with the target's MetaSchedule database (tuning.py).
"""

from __future__ import annotations

from pathlib import Path

from edgecc.compiler.artifact import Artifact, CompileOptions, bool_option
from edgecc.compiler.backends import register_backend
from edgecc.compiler.backends.tvm.cuda import precompile_cuda
from edgecc.compiler.backends.tvm.device_scripts import write_gpu_device_files
from edgecc.compiler.backends.tvm.importer import _raise_if_unsupported, import_relax
from edgecc.errors import ModelError, require
from edgecc.targets.host_cpu import host_cpu_name
from edgecc.tools import package_version


def resolve_tvm_target(cfg) -> dict:
    target = dict(cfg.tvm_target)
    if target.get("mcpu") == "host":
        target["mcpu"] = host_cpu_name()
    host = dict(cfg.tvm_host)
    if host.get("mcpu") == "host":
        host["mcpu"] = host_cpu_name()
    if host:
        target["host"] = host
    return target


@register_backend("tvm")
class TvmBackend:
    OPTIONS = {"tuning_db": "MetaSchedule database folder (default: the target's, targets/tuning/<target>/)",
               "fast_math": "1 (default) or 0: CPU float32 exp/tanh/erf/sigmoid as TOPI's vectorizable "
                            "approximations, or libm calls",
               "int8": "--quantize int8 arithmetic: integer (default where the CPU has AVX-512 VNNI: integer "
                       "kernels, bit-exact with TFLite arithmetic) or qdq (the QDQ ONNX graph, float arithmetic)"}
    PRECISIONS = {"fp32": "f32 throughout",
                  "fp16": "Relax ToMixedPrecision: convolution and matmul operands in f16, f32 accumulation (f32 i/o)"}
    PRECISION_REFUSED = "TVM's mixed-precision pass casts to float16 only: use --precision fp16, or --backend iree"
    TAKES_FLAGS = False  # tvm.compile takes no command-line flags

    def int8_arithmetic(self, qgraph, target, options: dict) -> str:
        """'integer' where --quantize int8 builds run integer kernels (int8.py) for `target`, else 'qdq'."""
        return "integer" if not self._int8_refusal(qgraph, target, options) else "qdq"

    def _int8_refusal(self, qgraph, target, options: dict) -> str:
        """Why a quantized model is compiled from its QDQ graph rather than in integers ('' when it is not)."""
        choice = options.get("int8", "integer")
        if choice not in ("integer", "qdq"):
            raise ModelError(f"--option int8={choice!r}: give integer or qdq")
        if choice == "qdq":
            return "--option int8=qdq"
        require("tvm", "apache-tvm==0.27.0.post1", "the TVM backend")
        from edgecc.compiler.backends.tvm.int8 import int8_integer_supported

        return int8_integer_supported(qgraph, resolve_tvm_target(target.backend("tvm")))

    def compile(self, model, target, workdir: Path, options: CompileOptions) -> Artifact:
        tvm = require("tvm", "apache-tvm==0.27.0.post1", "the TVM backend")
        cfg = target.backend("tvm")
        qgraph = getattr(model, "qgraph", None)
        if qgraph is not None:
            refusal = self._int8_refusal(qgraph, target, options.options)
            if not refusal:
                return self._compile_int8(qgraph, cfg, workdir)
        mod, import_call = import_relax(model)
        if options.precision == "fp16":
            from tvm import relax

            mod = relax.transform.ToMixedPrecision(out_dtype="float32")(relax.transform.ConvertToDataflow()(mod))
            import_call += "; relax.transform.ToMixedPrecision(out_dtype='float32')(mod)"
        tvm_target = resolve_tvm_target(cfg)
        tuning: dict = {}
        own = bool(options.options.get("tuning_db"))  # the user's database, applied even where it covers part
        fast_math = bool_option(options.options, "fast_math", True)
        try:
            if tvm_target.get("kind") == "llvm":
                # CPU: the target's MetaSchedule database where it has one, default schedules for the rest
                from edgecc.compiler.backends.tvm import tuning as tvm_tune

                db = Path(options.options["tuning_db"]) if own else tvm_tune.database_dir(target.name)
                executable, tuning = tvm_tune.build(mod, tvm_target, db, partial=own, fast_math=fast_math)
            else:
                executable = tvm.compile(mod, target=tvm.target.Target(tvm_target))
        except Exception as e:
            _raise_if_unsupported(str(e))
            raise
        so = workdir / "model.so"
        if cfg.cross_compiler:
            from tvm.support import cc

            executable.export_library(str(so), fcompile=cc.cross_compiler(cfg.cross_compiler))
        else:
            executable.export_library(str(so))
        db_arg = repr(tuning.get("tuning_database"))
        build_call = (f"edgecc.compiler.backends.tvm.tuning.build(mod, {tvm_target!r}, {db_arg}, partial={own}"
                      f"{'' if fast_math else ', fast_math=False'})"
                      if tuning
                      else f"tvm.compile(mod, target=tvm.target.Target({tvm_target!r}))")
        fcompile = f", fcompile=tvm.support.cc.cross_compiler({cfg.cross_compiler!r})" if cfg.cross_compiler else ""
        calls = [import_call, f"{build_call}.export_library('model.so'{fcompile})"]
        info = {"device": cfg.driver or "cpu", "function": "main", "tvm_target": tvm_target, **tuning}
        if qgraph is not None:
            info["int8"] = f"QDQ graph, float arithmetic between quantize/dequantize ({refusal})"
        files = ["model.so"]
        if cfg.cross_compiler and tvm_target.get("mtriple", "").startswith("aarch64") and info["device"] == "cpu":
            # the bundle carries a native aarch64 runner + run.sh/bench.sh: the same ones run under qemu here
            from edgecc.errors import CannotRunHere
            from edgecc.runtime.tvm_native import write_device_files

            try:
                files += write_device_files(workdir, n_inputs=len(model.example_inputs), function=info["function"])
                info["device_runtime"] = f"pip install apache-tvm=={package_version('apache-tvm')}"
            except CannotRunHere as e:  # e.g. no network for the aarch64 wheels: the .so is still the artifact
                info["device_files"] = f"not included: {e}"
        if tvm_target.get("kind") == "cuda":
            info["cuda"], cuda_files, call = precompile_cuda(executable, tvm_target["arch"], workdir)
            files += cuda_files
            calls.append(call)
        if info["device"] in ("cuda", "opencl"):
            files += write_gpu_device_files(workdir, info["device"], info["function"])
            tvm_version = package_version("apache-tvm")
            info["device_runtime"] = (f"pip install apache-tvm=={tvm_version} (its wheels carry the CUDA "
                                      "runtime, x86-64 and aarch64)" if info["device"] == "cuda" else
                                      "a TVM runtime built with USE_OPENCL=ON (the apache-tvm wheels have no OpenCL)")
        return Artifact(files=files, entry="model.so", calls=calls, flags=[str(tvm_target)], info=info)


    def _compile_int8(self, qgraph, cfg, workdir: Path) -> Artifact:
        """The quantized graph in integer kernels (int8.py), for an x86 CPU with AVX-512 VNNI."""
        import tvm

        from edgecc.compiler.backends.tvm.int8 import int8_relax_module

        tvm_target = resolve_tvm_target(cfg)
        executable = tvm.compile(int8_relax_module(qgraph, tvm_target), target=tvm.target.Target(tvm_target))
        executable.export_library(str(workdir / "model.so"))
        calls = [f"mod = edgecc.compiler.backends.tvm.int8.int8_relax_module(quantized.qgraph, {tvm_target!r})",
                 f"tvm.compile(mod, target=tvm.target.Target({tvm_target!r})).export_library('model.so')"]
        info = {"device": "cpu", "function": "main", "tvm_target": tvm_target,
                "int8": "integer kernels: uint8 NHWC activations, AVX-512 VNNI (vpdpbusd) convolutions and dense "
                        "layers, int32 accumulation, TFLite fixed-point requantization (bit-exact with the "
                        "numpy integer reference)"}
        return Artifact(files=["model.so"], entry="model.so", calls=calls, flags=[str(tvm_target)], info=info)

    def versions(self) -> dict[str, str]:
        return {p: package_version(p) for p in ("apache-tvm", "apache-tvm-ffi", "torch")}
