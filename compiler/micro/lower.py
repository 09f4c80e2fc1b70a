"""Relax → TIR kernels + a flat list of kernel calls: the front half of the micro backend.

The model, imported into Relax by the TVM backend's importer (torch.export or ONNX), is legalized to TIR,
fused, and turned into explicit destination passing (CallTIRRewrite): `main` becomes a straight line of
`kernel(args..., outs...)` calls on statically shaped tensors. Instead of running the VM's
StaticPlanBlockMemory we read that line ourselves into `KernelCall`s over named `TensorInfo`s, so the memory
plan (plan.py) sees every tensor and every kernel's scratch, and the AOT emitter (emit.py) can write plain C
for it.
"""

from __future__ import annotations

import hashlib
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
    copies: dict[str, str] = field(default_factory=dict)  # output tensor -> the tensor it is a copy of
    passes: list[str] = field(default_factory=lambda: ["fold_batchnorm", *RELAX_PASSES])

    def root(self, name: str) -> str:
        """The tensor that owns `name`'s memory (views alias their source)."""
        while self.tensors[name].alias_of:
            name = self.tensors[name].alias_of
        return name

    @property
    def weight_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values() if t.kind == "const")



def lower_to_tir(mod, name: str = "model", schedule: bool = True) -> LoweredModel:
    """Lower a Relax IRModule (from `import_relax`: torch.export or the ONNX frontend) to scheduled TIR kernels
    and the call list that runs them.

    Example:
        mod, _ = import_relax(load_model("cifar-cnn"))
        lowered = lower_to_tir(mod, "cifar-cnn")
        [c.kernel for c in lowered.calls]   # ['fused_conv2d_add_relu', 'max_pool2d', ...]
    """
    import tvm
    from tvm import relax

    from edgecc.compiler.backends.tvm.fold_batchnorm import fold_batchnorm
    from edgecc.compiler.micro.schedule import schedule_for_mcu

    # BatchNorm folded into the weights first: otherwise every conv epilogue keeps a per-element divide.
    mod = tvm.transform.Sequential([getattr(relax.transform, p)() for p in RELAX_PASSES])(fold_batchnorm(mod))
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
    reader = _MainReader(lowered)
    reader.read_params(main.params)
    for block in main.body.blocks:
        for binding in block.bindings:
            reader.read_binding(binding.var, binding.value)
    reader.read_outputs(main.body.body)


class _MainReader:
    """The state of one walk over `main`: which tensor each Relax var and constant is."""

    def __init__(self, lowered: LoweredModel):
        import tvm

        self.lowered, self.tensors = lowered, lowered.tensors
        self.var_name: dict = {}  # relax.Var -> tensor name
        self.consts: dict = {}  # (shape, dtype, sha256 of the bytes) -> tensor name
        self.alloc_op = tvm.ir.Op.get("relax.builtin.alloc_tensor")
        self.reshape_op = tvm.ir.Op.get("relax.reshape")

    def tensor_of(self, expr) -> str:
        from tvm import relax

        if _is_tensor_const(expr):
            shape, dtype = _shape_dtype(expr.ty)
            value = expr.value.numpy()
            # equal constants are one weight in flash: FoldConstant makes a copy of a transposed weight for
            # each use, and an unrolled RNN uses it at every time step (a GRU over 49 frames: 49 copies)
            key = (shape, dtype, hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest())
            if key not in self.consts:
                n = self.consts[key] = f"w{len(self.consts)}"
                self.tensors[n] = TensorInfo(n, shape, dtype, "const", value=value)
            return self.consts[key]
        if isinstance(expr, relax.Var) and expr in self.var_name:
            return self.var_name[expr]
        raise UnsupportedOpError(type(expr).__name__, "micro", detail=f"unexpected argument {expr}")

    def read_params(self, params) -> None:
        for i, p in enumerate(params):
            shape, dtype = _shape_dtype(p.ty)
            n = f"input{i}"
            self.tensors[n] = TensorInfo(n, shape, dtype, "input")
            self.var_name[p] = n
            self.lowered.inputs.append(n)

    def _new_tensor(self, var, kind: str, alias_of: str | None = None) -> None:
        shape, dtype = _shape_dtype(var.ty)
        n = f"t{len(self.tensors)}"
        self.tensors[n] = TensorInfo(n, shape, dtype, kind, alias_of=alias_of)
        self.var_name[var] = n

    def read_binding(self, var, value) -> None:
        import tvm
        from tvm import relax

        if isinstance(value, relax.Call) and value.op.same_as(self.alloc_op):
            self._new_tensor(var, "temp")
        elif isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar):
            self.lowered.calls.append(KernelCall(value.op.name_hint, [self.tensor_of(a) for a in value.args]))
        elif isinstance(value, relax.Call) and value.op.same_as(self.reshape_op):
            self._new_tensor(var, "view", alias_of=self.tensor_of(value.args[0]))
        elif isinstance(value, relax.Var):
            self.var_name[var] = self.tensor_of(value)
        elif isinstance(value, relax.Tuple):
            self.var_name[var] = [self.tensor_of(f) for f in value.fields]
        elif isinstance(value, relax.TupleGetItem):  # one output of a tuple-returning kernel (split, an RNN step)
            fields = self.var_name.get(value.tuple_value)
            if not isinstance(fields, list):
                raise UnsupportedOpError("TupleGetItem", "micro", detail=f"of a non-tuple {value.tuple_value}")
            self.var_name[var] = fields[value.index]
        elif isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op):
            raise UnsupportedOpError(value.op.name, "micro", "try --backend tvm or --backend iree on a CPU target",
                                     detail="no TIR legalization for it")
        else:
            raise UnsupportedOpError(type(value).__name__, "micro", detail=str(value)[:200])

    def read_outputs(self, result) -> None:
        from tvm import relax

        outs = self.var_name[result] if isinstance(result, relax.Var) else (
            [self.tensor_of(f) for f in result.fields] if isinstance(result, relax.Tuple) else
            [self.tensor_of(result)])
        if isinstance(outs, str):
            outs = [outs]
        for n in outs:
            root = self.lowered.root(n)
            if self.tensors[root].kind == "temp":
                self.tensors[root].kind = "output"
                self.lowered.outputs.append(n)
                continue
            # an output no kernel writes to its own buffer (the model returns an input, a weight, or one tensor
            # twice): a tensor of its own that the AOT code fills with a copy after the kernels
            src = self.tensors[n]
            copy = f"t{len(self.tensors)}"
            self.tensors[copy] = TensorInfo(copy, src.shape, src.dtype, "output")
            self.lowered.copies[copy] = n
            self.lowered.outputs.append(copy)


def _is_tensor_const(expr) -> bool:
    """A weight: TVM 0.27 calls Relax constants `GenericConst` (its `.value` is the tensor)."""
    import tvm
    from tvm import relax

    return isinstance(expr, tvm.ir.expr.GenericConst) and isinstance(expr.ty, relax.TensorType)
