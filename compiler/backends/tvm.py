"""TVM: torch.export → Relax (from_exported_program; ONNX via the Relax ONNX frontend) → tvm.compile → .so.

Targets are dicts in the target file (TVM 0.27 takes them as such). `mcpu = "host"` is resolved to this
machine's LLVM CPU name, since TVM refuses `-mcpu=native`. A foreign triple is exported with the target's
cross compiler.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgecc.compiler.artifact import Artifact, CompileOptions
from edgecc.compiler.backends import register_backend
from edgecc.errors import ModelError, UnsupportedOpError, first_line, require
from edgecc.targets.host_cpu import host_cpu_name
from edgecc.tools import package_version

_UNSUPPORTED = re.compile(r"Unsupported (?:function types|op|operator)s?:?\s*\[?'?([\w.:]+)")


def write_gpu_device_files(workdir: Path, device: str, function: str, module: str = "model.so") -> list[str]:
    """run.sh / bench.sh for a GPU bundle: TVM's Python runtime on the device (tvm_device.py)."""
    from edgecc.runtime.device_scripts import render_scripts

    subst = {"@TVM_VERSION@": package_version("apache-tvm"), "@MODULE@": module, "@FUNCTION@": function,
             "@DEVICE@": device}
    return render_scripts(workdir, {"tvm_device.py": "tvm_device.py", "tvm_device_run.sh": "run.sh",
                                    "tvm_device_bench.sh": "bench.sh"}, subst)


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
    OPTIONS = {"tuning_db": "MetaSchedule database folder (default: the target's, targets/tuning/<target>/)"}
    TAKES_FLAGS = False  # tvm.compile takes no command-line flags

    def compile(self, model, target, workdir: Path, options: CompileOptions) -> Artifact:
        tvm = require("tvm", "apache-tvm==0.27.0.post1", "the TVM backend")
        cfg = target.backend("tvm")
        mod, import_call = import_relax(model)
        tvm_target = resolve_tvm_target(cfg)
        tuning: dict = {}
        try:
            if tvm_target.get("kind") == "llvm":
                # CPU: the target's MetaSchedule database where it has one, default schedules for the rest
                from edgecc.compiler import tvm_tune

                db = Path(options.options["tuning_db"]) if options.options.get("tuning_db") else \
                    tvm_tune.database_dir(target.name)
                executable, tuning = tvm_tune.build(mod, tvm_target, db)
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
        build_call = (f"edgecc.compiler.tvm_tune.build(mod, {tvm_target!r}, {db_arg})" if tuning
                      else f"tvm.compile(mod, target=tvm.target.Target({tvm_target!r}))")
        fcompile = f", fcompile=tvm.support.cc.cross_compiler({cfg.cross_compiler!r})" if cfg.cross_compiler else ""
        calls = [import_call, f"{build_call}.export_library('model.so'{fcompile})"]
        info = {"device": cfg.driver or "cpu", "function": "main", "tvm_target": tvm_target, **tuning}
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


    def versions(self) -> dict[str, str]:
        return {p: package_version(p) for p in ("apache-tvm", "apache-tvm-ffi", "torch")}


def precompile_cuda(executable, arch: str, workdir: Path) -> tuple[dict, list[str], str]:
    """Compile the CUDA source TVM embedded in `executable` to a cubin for `arch` with nvcc, here, so the arch
    is checked at build time. (TVM 0.27's CUDA runtime still JIT-compiles the embedded source at load.)"""
    import tvm_ffi

    from edgecc.tools import run_tool

    def walk(m):
        yield m
        for i in m.imports:
            yield from walk(i)

    sources = [tvm_ffi.Module.inspect_source(m, "") for m in walk(executable.mod) if m.kind == "cuda"]
    sources = [s for s in sources if s.strip()]
    if not sources:
        raise ModelError("TVM produced no CUDA kernels for a CUDA target")
    files, call = [], ""
    for i, code in enumerate(sources):
        src, out = f"kernels{i}.cu", f"kernels{i}.{arch}.cubin"
        (workdir / src).write_text(code)
        argv = ["nvcc", "--cubin", f"-arch={arch}", "-O3", src, "-o", out]
        run_tool(argv, cwd=workdir, timeout=1800)
        call = " ".join(argv)
        got = cubin_arch(workdir / out)
        if got != arch:
            raise ModelError(f"nvcc built {out} for {got}, expected {arch}")
        files += [src, out]
    info = {"arch": arch, "cubins": files[1::2], "checked": f"nvcc compiled the kernels; cubin ELF headers say {arch}",
            "runtime_note": "TVM 0.27's CUDA runtime JIT-compiles the embedded CUDA source at load time on the "
                            "device (needs NVRTC there); the cubins are the same source compiled here"}
    return info, files, call


def cubin_arch(path: Path) -> str:
    """The SM architecture in a cubin's ELF header (EF_CUDA_SM: bits 8-15 of e_flags for CUDA >= 12.8)."""
    import struct

    data = path.read_bytes()[:64]
    if data[:4] != b"\x7fELF":
        return "not-an-elf"
    (e_flags,) = struct.unpack_from("<I", data, 48)
    sm = (e_flags >> 8) & 0xFF or e_flags & 0xFF
    return f"sm_{sm}"


def _raise_if_unsupported(text: str) -> None:
    m = _UNSUPPORTED.search(text)
    if m:
        raise UnsupportedOpError(m.group(1).strip("'\""), "tvm", suggestion="try --backend iree",
                                 detail="TVM's Relax frontend has no converter for it")



def import_relax(model):
    """torch.export (or the Relax ONNX frontend) -> a Relax IRModule; returns (mod, the exact call, for the
    manifest). Example: `mod, call = import_relax(load_model("resnet8"))`."""
    require("tvm", "apache-tvm==0.27.0.post1", "the TVM backend")
    if model.kind == "onnx":
        import onnx
        from tvm.relax.frontend.onnx import from_onnx

        shapes = {n: list(a.shape) for n, a in zip(model.input_names, model.example_inputs, strict=True)}
        dtypes = {n: str(a.dtype) for n, a in zip(model.input_names, model.example_inputs, strict=True)}
        try:
            mod = from_onnx(onnx.load(str(model.onnx_path)), shape_dict=shapes, dtype_dict=dtypes)
        except Exception as e:
            _raise_if_unsupported(str(e))
            raise ModelError(f"TVM's ONNX frontend could not import {model.name}: {first_line(e, 300)}") from e
        return mod, f"tvm.relax.frontend.onnx.from_onnx(onnx.load({str(model.onnx_path)!r}), shape_dict={shapes})"
    from tvm.relax.frontend.torch import from_exported_program

    try:
        mod = from_exported_program(model.exported_program(), keep_params_as_input=False)
    except Exception as e:
        _raise_if_unsupported(str(e))
        raise ModelError(f"TVM's Relax frontend could not import {model.name}: {first_line(e, 300)}") from e
    return mod, f"tvm.relax.frontend.torch.from_exported_program(torch.export.export(<{model.name}>, inputs))"
