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
from edgecc.compiler.backends.iree import _version, host_cpu_name
from edgecc.compiler.errors import ModelError, UnsupportedOpError, require

_UNSUPPORTED = re.compile(r"Unsupported (?:function types|op|operator)s?:?\s*\[?'?([\w.:]+)")


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
    def compile(self, model, target, workdir: Path, options: CompileOptions) -> Artifact:
        tvm = require("tvm", "apache-tvm==0.27.0.post1", "the TVM backend")
        cfg = target.backend("tvm")
        mod, import_call = self._import(model)
        tvm_target = resolve_tvm_target(cfg)
        try:
            executable = tvm.compile(mod, target=tvm.target.Target(tvm_target))
        except Exception as e:
            _raise_if_unsupported(str(e))
            raise
        so = workdir / "model.so"
        if cfg.cross_compiler:
            from tvm.contrib import cc

            executable.export_library(str(so), fcompile=cc.cross_compiler(cfg.cross_compiler))
        else:
            executable.export_library(str(so))
        calls = [import_call,
                 f"tvm.compile(mod, target=tvm.target.Target({tvm_target!r})).export_library('model.so'"
                 + (f", fcompile=cc.cross_compiler({cfg.cross_compiler!r}))" if cfg.cross_compiler else ")")]
        info = {"device": cfg.driver or "cpu", "function": "main", "tvm_target": tvm_target}
        return Artifact(files=["model.so"], entry="model.so", calls=calls, flags=[str(tvm_target)], info=info)

    def _import(self, model):
        require("tvm", "apache-tvm==0.27.0.post1", "the TVM backend")
        if model.kind == "onnx":
            import onnx
            from tvm.relax.frontend.onnx import from_onnx

            shapes = {n: list(a.shape) for n, a in zip(model.input_names, model.example_inputs)}
            dtypes = {n: str(a.dtype) for n, a in zip(model.input_names, model.example_inputs)}
            try:
                mod = from_onnx(onnx.load(str(model.onnx_path)), shape_dict=shapes, dtype_dict=dtypes)
            except Exception as e:
                _raise_if_unsupported(str(e))
                raise ModelError(f"TVM's ONNX frontend could not import {model.name}: {_line(e)}") from e
            return mod, f"tvm.relax.frontend.onnx.from_onnx(onnx.load({str(model.onnx_path)!r}), shape_dict={shapes})"
        from tvm.relax.frontend.torch import from_exported_program

        try:
            mod = from_exported_program(model.exported_program(), keep_params_as_input=False)
        except Exception as e:
            _raise_if_unsupported(str(e))
            raise ModelError(f"TVM's Relax frontend could not import {model.name}: {_line(e)}") from e
        return mod, f"tvm.relax.frontend.torch.from_exported_program(torch.export.export(<{model.name}>, inputs))"

    def runner(self, bundle):
        from edgecc.runtime.local import TvmLocalRunner

        return TvmLocalRunner(bundle)

    def versions(self) -> dict[str, str]:
        return {p: _version(p) for p in ("apache-tvm", "apache-tvm-ffi", "torch")}


def _raise_if_unsupported(text: str) -> None:
    m = _UNSUPPORTED.search(text)
    if m:
        raise UnsupportedOpError(m.group(1).strip("'\""), "tvm", suggestion="try --backend iree",
                                 detail="TVM's Relax frontend has no converter for it")


def _line(e: BaseException) -> str:
    return (str(e).strip() or type(e).__name__).splitlines()[0][:300]
