"""IREE: torch.export → torch-mlir FX importer (linalg-on-tensors) → iree-compile → .vmfb.

ONNX sources go through iree-import-onnx instead of torch-mlir. Flags come from the target file; the
`host` CPU is resolved to its LLVM name at compile time and recorded, since such an artifact only runs on a
CPU with the same features.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from edgecc.compiler.artifact import Artifact, CompileOptions
from edgecc.compiler.backends import register_backend
from edgecc.compiler.errors import ModelError, UnsupportedOpError, require
from edgecc.compiler.tools import find_tool, repro_line, run_tool

_ILLEGAL_OP = re.compile(r"failed to legalize (?:operation|unresolved materialization)[^']*'([\w.]+)'")
_TORCH_OP = re.compile(r"'?torch\.(aten\.[\w.]+|prims\.[\w.]+)")


@register_backend("iree")
class IreeBackend:
    def compile(self, model, target, workdir: Path, options: CompileOptions) -> Artifact:
        cfg = target.backend("iree")
        work = workdir / "work"
        work.mkdir(exist_ok=True)
        mlir = work / "model.mlir"
        calls = []
        if model.kind == "onnx":
            argv = ["iree-import-onnx", str(model.onnx_path), "-o", str(mlir)]
            run_tool(argv, cwd=workdir)
            calls.append(repro_line([find_tool("iree-import-onnx")] + argv[1:]))
        else:
            calls.append(self._import_torch(model, mlir))
        flags = list(cfg.flags) + list(options.extra_flags)
        argv = ["iree-compile", str(mlir), *flags, "-o", str(workdir / "model.vmfb")]
        try:
            run_tool(argv, cwd=workdir, timeout=3600)
        except Exception as e:
            _raise_if_unsupported(str(getattr(e, "stderr", "")) or str(e), "iree")
            raise
        calls.append(repro_line([find_tool("iree-compile")] + argv[1:]))
        info = {"driver": cfg.driver or "local-task", "function": "main"}
        if "--iree-llvmcpu-target-cpu=host" in flags:
            info["host_cpu"] = host_cpu_name()
        return Artifact(files=["model.vmfb"], entry="model.vmfb", calls=calls, flags=flags, info=info)

    def _import_torch(self, model, mlir: Path) -> str:
        fx = require("torch_mlir.fx", "torch-mlir", "the IREE backend (torch-mlir FX importer)")
        ep = model.exported_program()
        try:
            module = fx.export_and_import(ep, output_type="linalg-on-tensors", func_name="main")
        except Exception as e:
            _raise_if_unsupported(str(e), "iree")
            raise ModelError(f"torch-mlir could not import {model.name}: {str(e).strip().splitlines()[0][:300]}") from e
        with open(mlir, "w") as f:
            module.operation.print(file=f, large_elements_limit=None, enable_debug_info=False)
        return (f"torch_mlir.fx.export_and_import(torch.export.export(<{model.name}>, inputs), "
                f"output_type='linalg-on-tensors', func_name='main') > {mlir.name}")

    def runner(self, bundle):
        from edgecc.runtime.local import IreeLocalRunner

        return IreeLocalRunner(bundle)

    def versions(self) -> dict[str, str]:
        return {p: _version(p) for p in ("iree-base-compiler", "iree-base-runtime", "torch-mlir", "torch")}


def _raise_if_unsupported(text: str, backend: str) -> None:
    m = _ILLEGAL_OP.search(text) or _TORCH_OP.search(text)
    if m and ("legalize" in text or "unsupported" in text.lower() or "not supported" in text.lower()):
        op = m.group(1).removeprefix("torch.")
        raise UnsupportedOpError(op, backend, suggestion="try --backend tvm",
                                 detail="torch-mlir/IREE has no lowering for it")


def host_cpu_name() -> str:
    """The LLVM name of this machine's CPU (what target-cpu=host resolves to)."""
    try:
        import tvm_ffi

        return str(tvm_ffi.get_global_func("target.llvm_get_system_cpu")())
    except Exception:
        import platform

        return platform.processor() or "unknown"


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"
