"""Relax → TIR kernels + a flat list of kernel calls: the front half of the micro backend.

The ExportedProgram is imported into Relax, legalized to TIR, fused, and turned into explicit destination
passing (CallTIRRewrite): `main` becomes a straight line of `kernel(args..., outs...)` calls on statically
shaped tensors. Instead of running the VM's StaticPlanBlockMemory we read that line ourselves into
`KernelCall`s over named `TensorInfo`s, so the memory plan (plan.py) sees every tensor and every kernel's
scratch, and the AOT emitter (emit.py) can write plain C for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from edgecc.errors import ModelError, UnsupportedOpError

RELAX_PASSES = (
    "DecomposeOpsForInference", "CanonicalizeBindings", "DeadCodeElimination", "LegalizeOps",
    "AnnotateTIROpPattern", "FoldConstant", "FuseOps", "FuseTIR", "DeadCodeElimination",
    "RewriteDataflowReshape", "ToNonDataflow", "RemovePurityChecking", "CallTIRRewrite", "AttachGlobalSymbol",
)


@dataclass
class TensorInfo:
    """One tensor of the kernel-call graph. `kind`: input | output | const | temp | view (of `alias_of`)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str
    alias_of: str | None = None
    value: np.ndarray | None = None  # constants only

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class KernelCall:
    kernel: str  # PrimFunc name == its global symbol
    args: list[str]  # tensor names, inputs then outputs (destination passing)
    workspace_bytes: int = 0  # filled by the kernel build: scratch it asks TVMBackendAllocWorkspace for


@dataclass
class LoweredModel:
    """What `lower_to_tir` returns: scheduled kernels plus the call list over named tensors."""

    name: str
    kernels: object  # tvm.IRModule of PrimFuncs
    calls: list[KernelCall]
    tensors: dict[str, TensorInfo]
    inputs: list[str]
    outputs: list[str]
    relax_text: str = ""
    passes: list[str] = field(default_factory=lambda: list(RELAX_PASSES))

    def root(self, name: str) -> str:
        """The tensor that owns `name`'s memory (views alias their source)."""
        while self.tensors[name].alias_of:
            name = self.tensors[name].alias_of
        return name

    @property
    def weight_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values() if t.kind == "const")



def lower_to_tir(exported_program, name: str = "model", schedule: bool = True) -> LoweredModel:
    """Lower a torch.export ExportedProgram to scheduled TIR kernels and the call list that runs them.

    Example:
        lowered = lower_to_tir(torch.export.export(net, (x,)), "cifar-cnn")
        [c.kernel for c in lowered.calls]   # ['fused_conv2d_add_relu', 'max_pool2d', ...]
    """
    import tvm
    from tvm import relax
    from tvm.relax.frontend.torch import from_exported_program

    from edgecc.compiler.micro.schedule import schedule_for_mcu

    try:
        mod = from_exported_program(exported_program, keep_params_as_input=False)
    except Exception as e:  # the importer names the missing op in its message
        op = re.search(r"[Uu]nsupported.*?(\w+(?:\.\w+)+)", str(e))
        raise UnsupportedOpError(op.group(1) if op else "(import)", "micro",
                                 "try --backend tvm or --backend iree on a CPU target",
                                 detail=str(e).strip().splitlines()[-1][:200]) from e
    mod = tvm.transform.Sequential([getattr(relax.transform, p)() for p in RELAX_PASSES])(mod)
    main = mod["main"]

    kernels = {}
    for gv, func in mod.functions.items():
        if isinstance(func, tvm.tirx.PrimFunc):
            func = schedule_for_mcu(func) if schedule else func
            kernels[gv] = func.with_attr("global_symbol", gv.name_hint)
    lowered = LoweredModel(name=name, kernels=tvm.IRModule(kernels), calls=[], tensors={}, inputs=[],
                           outputs=[], relax_text=main.script(show_meta=False))
    _read_main(main, lowered)
    called = {c.kernel for c in lowered.calls}  # e.g. a reshape kernel replaced by a view is left unused
    lowered.kernels = tvm.IRModule({gv: f for gv, f in kernels.items() if gv.name_hint in called})
    return lowered


def _shape_dtype(ty) -> tuple[tuple[int, ...], str]:
    from tvm import relax

    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        raise ModelError(f"micro backend needs statically shaped tensors, got {ty}")
    try:
        shape = tuple(int(d) for d in ty.shape.values)
    except TypeError:
        raise ModelError(f"micro backend needs static shapes; {ty} has a symbolic dimension "
                         "(export with fixed input shapes)") from None
    return shape, str(ty.dtype)


def _read_main(main, lowered: LoweredModel) -> None:
    """Walk the straight-line `main` after CallTIRRewrite into tensors and kernel calls."""
    import tvm
    from tvm import relax

    tensors = lowered.tensors
    var_name: dict = {}  # relax.Var -> tensor name
    consts: list = []  # (constant, tensor name)

    def tensor_of(expr) -> str:
        if _is_tensor_const(expr):
            for c, n in consts:
                if c.same_as(expr):
                    return n
            n = f"w{len(consts)}"
            shape, dtype = _shape_dtype(expr.ty)
            tensors[n] = TensorInfo(n, shape, dtype, "const", value=expr.value.numpy())
            consts.append((expr, n))
            return n
        if isinstance(expr, relax.Var) and expr in var_name:
            return var_name[expr]
        raise UnsupportedOpError(type(expr).__name__, "micro", detail=f"unexpected argument {expr}")

    for i, p in enumerate(main.params):
        shape, dtype = _shape_dtype(p.ty)
        n = f"input{i}"
        tensors[n] = TensorInfo(n, shape, dtype, "input")
        var_name[p] = n
        lowered.inputs.append(n)

    alloc_op = tvm.ir.Op.get("relax.builtin.alloc_tensor")
    reshape_op = tvm.ir.Op.get("relax.reshape")
    body = main.body
    for block in body.blocks:
        for binding in block.bindings:
            var, value = binding.var, binding.value
            if isinstance(value, relax.Call) and value.op.same_as(alloc_op):
                shape, dtype = _shape_dtype(var.ty)
                n = f"t{len(tensors)}"
                tensors[n] = TensorInfo(n, shape, dtype, "temp")
                var_name[var] = n
            elif isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar):
                lowered.calls.append(KernelCall(value.op.name_hint, [tensor_of(a) for a in value.args]))
            elif isinstance(value, relax.Call) and value.op.same_as(reshape_op):
                src = tensor_of(value.args[0])
                shape, dtype = _shape_dtype(var.ty)
                n = f"t{len(tensors)}"
                tensors[n] = TensorInfo(n, shape, dtype, "view", alias_of=src)
                var_name[var] = n
            elif isinstance(value, relax.Var):
                var_name[var] = tensor_of(value)
            elif isinstance(value, relax.Tuple):
                var_name[var] = [tensor_of(f) for f in value.fields]
            elif isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op):
                raise UnsupportedOpError(value.op.name, "micro",
                                         "try --backend tvm or --backend iree on a CPU target",
                                         detail="no TIR legalization for it")
            else:
                raise UnsupportedOpError(type(value).__name__, "micro", detail=str(value)[:200])

    result = body.body
    outs = var_name[result] if isinstance(result, relax.Var) else (
        [tensor_of(f) for f in result.fields] if isinstance(result, relax.Tuple) else [tensor_of(result)])
    if isinstance(outs, str):
        outs = [outs]
    for i, n in enumerate(outs):
        root = lowered.root(n)
        if tensors[root].kind != "temp":
            # an output that is an input, a weight or already an output: the AOT code has to copy it
            raise UnsupportedOpError("identity output", "micro",
                                     detail=f"output {i} is {tensors[root].kind} {root}, not computed by a kernel")
        tensors[root].kind = "output"
        lowered.outputs.append(n)


def _is_tensor_const(expr) -> bool:
    """A weight: TVM 0.27 calls Relax constants `GenericConst` (its `.value` is the tensor)."""
    import tvm
    from tvm import relax

    return isinstance(expr, tvm.ir.expr.GenericConst) and isinstance(expr.ty, relax.TensorType)
