"""Build the TIR kernels for a Cortex-M: C source (target "c") or a Thumb object (LLVM).

Both go through TVM's default s_tir pipeline plus the host finalization passes, with asserts skipped (a
static-shape model has nothing left to check at run time). The result keeps TVM-FFI's packed calling
convention (DLTensor arguments), which the AOT driver calls directly. We also read each kernel's scratch
requests (TVMBackendAllocWorkspace calls) from the final TIR so the memory plan can place them in the arena.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CODEGENS = ("c", "llvm")
FFI_PREFIX = "__tvm_ffi_"  # MakePackedAPI names the packed entry of kernel `k` "__tvm_ffi_k"


@dataclass
class BuiltKernels:
    codegen: str
    files: list[str]  # written into the work folder: kernels.c or kernels.o (+ kernels.ll for LLVM)
    symbols: dict[str, str]  # kernel name -> C symbol of its packed entry
    workspace: dict[str, int]  # kernel name -> scratch bytes requested from TVMBackendAllocWorkspace
    tvm_target: dict
    call: str  # the API call, for the manifest


# TVM's C codegen prints a non-finite constant with the C++ stream's spelling plus the literal's suffix: `inff`,
# `-inff`, `nanf` for float32 (also under a `(half)` cast), `inf`, `nan` for float64. No C compiler knows them
# (`nanf` is even a math.h function); `math.h`'s INFINITY and NAN are what C spells them.
_NON_FINITE = re.compile(r"(?<![\w.>])(inff|nanf|inf|nan)(?![\w(])")
_C_NON_FINITE = {"inff": "((float)INFINITY)", "nanf": "((float)NAN)", "inf": "((double)INFINITY)",
                 "nan": "((double)NAN)"}
_C_STRING = re.compile(r'"(?:\\.|[^"\\\n])*"')


def portable_c(source: str) -> str:
    """`source` (TVM-generated C) with its non-finite constants spelled the C way, string literals untouched.

    Example: `portable_c("y = v > -inff ? v : 0;")` == `"y = v > -((float)INFINITY) ? v : 0;"`.
    """
    out, pos = [], 0
    for m in _C_STRING.finditer(source):
        out.append(_NON_FINITE.sub(lambda t: _C_NON_FINITE[t.group(1)], source[pos:m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(_NON_FINITE.sub(lambda t: _C_NON_FINITE[t.group(1)], source[pos:]))
    return "".join(out)


_WORKSPACE_CALL = re.compile(r"TVMBackendAllocWorkspace\(([^,]+),([^,]+),\s*(?:T\.uint64\()?([^,)]+)")


def _workspace_requests(func) -> int:
    """Sum of the sizes a lowered kernel passes to TVMBackendAllocWorkspace, each rounded up to 16 bytes.

    TVM 0.27 has no Python TIR visitor, so this reads the printed TIR; a size that is not a constant refuses.
    """
    total = 0
    for _, _, nbytes in _WORKSPACE_CALL.findall(func.script()):
        nbytes = nbytes.strip().rstrip("uUlL")
        if not nbytes.isdigit():
            raise ValueError(f"kernel asks for a workspace of non-constant size {nbytes!r}")
        total += (int(nbytes) + 15) // 16 * 16
    return total


# TIR intrinsics that TVM 0.27 lowers for LLVM but gives no C lowering (an ONNX Abs/Softsign/Softplus stopped with
# "Unresolved call tirx.fabs"): the C library function of the same name, `f`-suffixed for float32.
_C_LIBM = ("fabs", "exp2", "fmod")
_registered: list[str] = []


def _register_c_libm() -> None:
    import tvm

    for name in _C_LIBM:
        op = tvm.ir.Op.get(f"tirx.{name}")
        if name in _registered or op.get_attr("default.FLowerIntrinsic") is not None:
            continue

        def lower(call, name=name):
            dtype = str(call.ty.dtype)
            return tvm.tirx.call_pure_extern(dtype, name + ("f" if dtype == "float32" else ""), *call.args)

        tvm.ir.register_op_attr(f"tirx.{name}", "default.FLowerIntrinsic", lower)
        _registered.append(name)


def build_kernels(kernels, codegen: str, tvm_target: dict, workdir: Path) -> BuiltKernels:
    """Compile an IRModule of scheduled PrimFuncs to `workdir/kernels.c` (codegen "c") or `kernels.o` ("llvm").

    Example: `build_kernels(lowered.kernels, "c", {"kind": "c"}, Path("out"))`.
    """
    import tvm

    if codegen not in CODEGENS:
        raise ValueError(f"codegen {codegen!r} is not one of {', '.join(CODEGENS)}")
    target = tvm.target.Target(tvm_target)
    target = target.with_host(target)
    if codegen == "c":
        _register_c_libm()
    config = {"tirx.disable_assert": True}
    with tvm.transform.PassContext(opt_level=3, config=config):
        mod = tvm.tirx.transform.BindTarget(target)(kernels)
        pipeline, finalize_host, _ = tvm.tirx.get_tir_pipeline("s_tir")
        mod = pipeline(mod)
        mod = finalize_host()(mod)
        mod = tvm.tirx.transform.SkipAssert()(mod)
        runtime_mod = tvm.get_global_func("target.build." + target.kind.name)(mod, target)

    names = [gv.name_hint for gv in kernels.functions]
    workspace = {}
    for gv, func in mod.functions.items():
        name = gv.name_hint.removeprefix(FFI_PREFIX)
        if name in names:
            workspace[name] = max(workspace.get(name, 0), _workspace_requests(func))
    workdir = Path(workdir)
    if codegen == "c":
        (workdir / "kernels.c").write_text(portable_c(runtime_mod.inspect_source()))
        files = ["kernels.c"]
    else:
        runtime_mod.write_to_file(str(workdir / "kernels.o"))
        (workdir / "kernels.ll").write_text(runtime_mod.inspect_source("ll"))
        files = ["kernels.o", "kernels.ll"]
    call = (f"tvm.tirx.get_tir_pipeline('s_tir') + finalize_host + SkipAssert; target.build.{target.kind.name}"
            f"(mod, Target({tvm_target}))")
    return BuiltKernels(codegen, files, {n: FFI_PREFIX + n for n in names}, workspace, dict(tvm_target), call)
