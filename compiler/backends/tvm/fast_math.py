"""Vectorizable exp, tanh, erf and sigmoid for the CPU: TOPI's polynomial approximations in place of the calls.

LLVM has no vector form of `llvm.exp`/`tanhf`/`erff` without a vector math library, so a vectorized TIR loop over
them is unrolled into one libm call per lane. On the MLPerf Tiny LSTM and GRU models their gate functions were a
third of all kernel time (64 sigmoids + 64 tanh: 0.5-0.6 us a step). TOPI's fast_exp, fast_tanh and fast_erf
(Cephes/Eigen-style polynomials, the ones TVM's FastMathTransform uses, a few ulp from libm on float32) are plain
arithmetic that vectorizes.

The rewrite works on the fused TIR functions, so it also reaches the exp in softmax and the erf in GELU that
legalization writes inside larger functions; sigmoid(x) becomes 1 / (1 + fast_exp(-x)). Only float32 calls are
rewritten (TOPI's approximations are float32 ones). Measured against libm over [-88.3, 88.3]
(tests/integration/test_tvm_fast_math.py): within 5e-6 relative or 1e-6 absolute; fast_exp clamps its argument to
+-88.376 (inf above it, 0 below), and tanh may land an ulp past +-1. `--option fast_math=0` turns it off.
"""

from __future__ import annotations

import functools


@functools.cache
def _template(name: str):
    """(x, expression of x) for TOPI's fast_<name> on float32, built from its TE definition with every stage
    inlined into one expression."""
    from tvm import s_tir, te, tirx, topi

    a = te.placeholder((1,), "float32", name="a")
    sch = s_tir.Schedule(te.create_prim_func([a, getattr(topi, f"fast_{name}")(a)]))
    *stages, _ = sch.get_child_blocks(sch.get_sblock("root"))
    for stage in stages:
        sch.compute_inline(stage)
    [last] = sch.get_child_blocks(sch.get_sblock("root"))
    value = sch.get(last).body.value
    x = tirx.Var("x", "float32")
    return x, _replace_loads(value, x)


def _replace_loads(expr, var):
    """`expr` with every BufferLoad (the template's one input element) replaced by `var`."""
    import tvm_ffi
    from tvm.ir import expr as ir

    return tvm_ffi.structural_map(expr, [(ir.TensorLoad, lambda _load: var)])


def _fast(name: str, arg):
    """Let x = arg in fast_<name>(x)."""
    from tvm import tirx

    x, body = _template(name)
    bound = tirx.Var("x", "float32")
    return tirx.Let(bound, arg, _substitute(body, x, bound))


def _substitute(expr, old, new):
    import tvm_ffi
    from tvm.ir import expr as ir

    return tvm_ffi.structural_map(expr, [(ir.Var, lambda v: new if v.same_as(old) else v)])


REWRITTEN = {"tirx.exp": "exp", "tirx.tanh": "tanh", "tirx.erf": "erf", "tirx.sigmoid": "sigmoid"}


def _rewrite_call(call):
    from tvm import tirx

    kind = REWRITTEN.get(getattr(call.op, "name", None))
    if kind is None or str(call.ty) != "float32":
        return call
    [arg] = call.args
    if kind == "sigmoid":
        one = tirx.const(1.0, "float32")
        return one / (one + _fast("exp", -arg))
    return _fast(kind, arg)


def fast_math(mod):
    """Every float32 exp/tanh/erf/sigmoid call in the module's TIR functions replaced (module docstring)."""
    import tvm_ffi
    from tvm import tirx
    from tvm.ir import expr as ir

    out = mod.clone()
    for gv, func in mod.functions_items():
        if isinstance(func, tirx.PrimFunc):
            new = tvm_ffi.structural_map(func, [(ir.Call, _rewrite_call)])
            if not new.same_as(func):
                out.update_func(gv, new)
    return out
