"""The int8 micro path: a quantized QGraph -> `model.c` calling edgecc's int8 kernels (runtime/c/src/int8_kernels.c).

No TVM here: the kernels are hand-written C with TFLite arithmetic (int32 accumulation, fixed-point
requantization), so the emitter only lays out weights and the arena and writes the calls. Activations live in the
arena as int8 NHWC; the model keeps float32 NCHW inputs and outputs (quantized / dequantized at the edges), so the
harness, the runner and validation are the same as for fp32 bundles.

    plan_int8(graph)   -> Int8Program: kernel steps, NHWC tensors, arena buffers (plan.py plans them); by default
                          residual adds fused into their conv (int8_fusion.py) and outputs written over inputs
                          that die at a step that is safe in place (plan.inplace_aliases); inplace=False gives
                          the tensor-level plan
    emit_int8_c(program, plan, note) -> (model.c, model.h)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgecc.compiler.micro.emit import PROFILE_HOOK, _c_values, arena_lines, c_prefix, emit_header
from edgecc.compiler.micro.int8_fusion import conv_add_operands, residual_fusions
from edgecc.compiler.micro.lower import TensorInfo
from edgecc.compiler.micro.plan import ArenaPlan, Buffer, InPlace, inplace_aliases
from edgecc.errors import UnsupportedOpError

KERNEL_SOURCE = "src/int8_kernels.c"


@dataclass
class Int8Step:
    kernel: str  # C call text, with ARENA(name) placeholders resolved by the emitter
    args: list[str]  # arena tensors it touches (inputs then output)
    scratch_bytes: int = 0
    comment: str = ""
    inplace: tuple[str, ...] = ()  # inputs the kernel may overwrite with its output (args[-1]), if they die here


@dataclass
class Int8Program:
    name: str
    graph: object
    chw: dict[str, tuple[int, int, int]]  # tensor -> (c, h, w) of its NHWC storage
    steps: list[Int8Step] = field(default_factory=list)
    consts: list[tuple[str, str, np.ndarray]] = field(default_factory=list)  # (C type, name, values)
    alias: dict[str, str] = field(default_factory=dict)  # flatten views -> source tensor
    functions: list[str] = field(default_factory=list)  # generated C functions the steps call (patch_emit.py)
    inplace: dict[str, str] = field(default_factory=dict)  # outputs written over an input -> that input's buffer

    def root(self, n: str) -> str:
        while n in self.alias or n in self.inplace:
            n = self.alias.get(n) or self.inplace[n]
        return n

    def share_buffers(self) -> None:
        """Let each step's output take the buffer of an input that dies there, where the kernel allows it."""
        uses = [[self.root(a) for a in s.args] for s in self.steps]
        sizes = {n: int(np.prod(c)) for n, c in self.chw.items()}
        cands = [InPlace(i, self.root(s.args[-1]), self.root(x)) for i, s in enumerate(self.steps) for x in s.inplace]
        self.inplace.update(inplace_aliases(uses, sizes, cands))

    def buffers(self) -> list[Buffer]:
        first, last = {}, {}
        for i, s in enumerate(self.steps):
            for a in s.args:
                r = self.root(a)
                first.setdefault(r, i)
                last[r] = i
        out = [Buffer(n, int(np.prod(self.chw[n])), first[n], last[n]) for n in first]
        out += [Buffer(f"scratch{i}", s.scratch_bytes, i, i) for i, s in enumerate(self.steps) if s.scratch_bytes]
        return out

    @property
    def weight_bytes(self) -> int:
        return sum(v.nbytes for _, _, v in self.consts if not isinstance(v, str))


def _chw(shape) -> tuple[int, int, int]:
    if len(shape) == 4:
        return int(shape[1]), int(shape[2]), int(shape[3])
    if len(shape) == 2:
        return int(shape[1]), 1, 1
    raise UnsupportedOpError(f"{len(shape)}-D tensor", "micro int8", detail="4-D NCHW or 2-D tensors only")


def plan_int8(g, name: str, inplace: bool = True) -> Int8Program:
    """Turn a quantized QGraph into kernel steps over NHWC int8 tensors; inplace=False: one buffer per tensor
    and every add its own kernel (the tensor-level plan).

    Example: `plan_arena(plan_int8(g, "resnet8").buffers()).size` is the arena of the fused, in-place plan.
    """
    if any(op.relu6 for op in g.ops):  # the C kernels clamp at [act_min, 127]
        from edgecc.errors import UnsupportedOpError

        raise UnsupportedOpError("relu6", "the micro int8 kernels", "use ReLU for a Cortex-M int8 build, or "
                                 "compile this model in fp32 (without --quantize)")
    prog = Int8Program(name, g, {})
    fusions = residual_fusions(g) if inplace else {}
    fused_adds = set(fusions.values())
    chw = prog.chw
    src_layout: dict[str, tuple[int, int, int]] = {}  # tensor -> (c, h, w) order its elements are stored in
    chw[g.input] = _chw(g.shapes[g.input])
    src_layout[g.input] = chw[g.input]
    s_in, zp_in = g.qparams[g.input]
    prog.steps.append(Int8Step(f"edgecc_q8_quantize((const float*)inputs[0], {{{g.input}}}, {_args(chw[g.input])}, "
                               f"{_f(s_in)}, {zp_in})", [g.input], comment="quantize the float input"))
    for i, op in enumerate(g.ops):
        a = op.inputs[0]
        if i in fused_adds:
            continue  # computed in the epilogue of its conv
        if op.kind == "flatten":
            chw[op.output] = _chw(g.shapes[op.output])
            src_layout[op.output] = src_layout[a]
            prog.alias[op.output] = a
            continue
        chw[op.output] = _chw(g.shapes[op.output])
        src_layout[op.output] = chw[op.output]
        if op.kind in ("conv", "dense"):
            _conv_step(prog, i, op, src_layout[a], fusions.get(i))
            if i in fusions:
                add_out = g.ops[fusions[i]].output
                chw[add_out], src_layout[add_out] = chw[op.output], chw[op.output]
        elif op.kind == "add":
            _add_step(prog, i, op)
        elif op.kind == "maxpool":
            (kh, kw), (sh, sw), (ph, pw) = op.attrs["kernel"], op.attrs["stride"], op.attrs["padding"]
            (ci, hi, wi), (co, ho, wo) = chw[a], chw[op.output]
            prm = f"{{{hi}, {wi}, {ci}, {ho}, {wo}, {co}, {kh}, {kw}, {sh}, {sw}, {ph}, {pw}, 0, 0, -128}}"
            prog.consts.append(("edgecc_q8_conv_params", f"p{i}", prm))
            prog.steps.append(Int8Step(f"edgecc_q8_maxpool(&p{i}, {{{a}}}, {{{op.output}}})", [a, op.output],
                                       comment="max pool"))
        elif op.kind == "avgpool":
            ci, hi, wi = chw[a]
            prog.steps.append(Int8Step(f"edgecc_q8_global_avgpool({{{a}}}, {{{op.output}}}, {hi}, {wi}, {ci})",
                                       [a, op.output], comment="global average pool"))
        else:
            raise UnsupportedOpError(op.kind, "micro int8")
    out = g.output
    s_o, zp_o = g.qparams[out]
    c, h, w = src_layout[out]
    prog.steps.append(Int8Step(f"edgecc_q8_dequantize({{{out}}}, (float*)outputs[0], {c}, {h}, {w}, {_f(s_o)}, "
                               f"{zp_o})", [out], comment="dequantize the output"))
    if inplace:
        prog.share_buffers()
    return prog


def _zero_points(g, op) -> tuple[int, int, int]:
    """(input zero point, output zero point, activation minimum: the output's 0.0 after a fused ReLU)."""
    zp_a, zp_o = g.qparams[op.inputs[0]][1], g.qparams[op.output][1]
    return zp_a, zp_o, zp_o if op.relu else -128


def _conv_step(prog: Int8Program, i: int, op, layout: tuple[int, int, int], fused: int | None = None) -> None:
    """A conv (or a dense, as a 1x1 conv on a 1x1 image) step; `layout`: how its input's elements are stored;
    `fused`: the index of the residual add its epilogue computes (edgecc_q8_conv_add), if any."""
    a = op.inputs[0]
    zp_a, zp_o, act_min = _zero_points(prog.graph, op)
    (ci, hi, wi), (co, ho, wo) = prog.chw[a], prog.chw[op.output]
    w = op.w_q
    if op.kind == "dense":
        lc, lh, lw = layout  # columns follow PyTorch's (c, h, w) flatten; storage is (h, w, c)
        w = w.reshape(w.shape[0], lc, lh, lw).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
        kh = kw = sh = sw = 1
        ph = pw = 0
        ci, hi, wi, ho, wo = w.shape[1], 1, 1, 1, 1
        depthwise = False
    else:
        kh, kw = w.shape[2:]
        (sh, sw), (ph, pw), groups = op.attrs["stride"], op.attrs["padding"], op.attrs["groups"]
        depthwise = groups > 1
        if depthwise and not (groups == ci == co and w.shape[1] == 1):
            raise UnsupportedOpError("grouped conv2d", "micro int8",
                                     detail="groups must be 1 or depthwise with multiplier 1")
        w = w.transpose(2, 3, 0, 1).reshape(kh, kw, co) if depthwise else w.transpose(0, 2, 3, 1)
    prm = (f"{{{hi}, {wi}, {ci}, {ho}, {wo}, {co}, {kh}, {kw}, {sh}, {sw}, {ph}, {pw}, {zp_a}, {zp_o}, "
           f"{act_min}}}")
    prog.consts.append(("edgecc_q8_conv_params", f"p{i}", prm))
    if depthwise:
        wflat = w.reshape(-1)
        scratch = 4 * co
        call = "edgecc_q8_depthwise_conv"
        stype = "int32_t"
    else:
        kdim = w[0].size
        kdim4 = (kdim + 3) // 4 * 4
        wpad = np.zeros((co, kdim4), np.int8)
        wpad[:, :kdim] = w.reshape(co, kdim)
        wflat = conv_weight_layout(wpad)
        scratch = 4 * kdim4  # the im2col of two output pixels, int16
        call = "edgecc_q8_conv"
        stype = "int16_t"
    prog.consts += [("int8_t", f"w{i}", wflat.reshape(-1)), ("int32_t", f"b{i}", op.b_q),
                    ("int32_t", f"m{i}", op.multiplier), ("int8_t", f"s{i}", op.shift)]
    comment = f"{op.kind}{' depthwise' if depthwise else ''}{' + relu' if op.relu else ''}"
    args, add_args, overwrite = [a, op.output], "", ()
    if fused is not None:
        args, add_args, overwrite, note = _fused_add(prog, i, fused)
        call, scratch, comment = "edgecc_q8_conv_add", scratch + 2 * co, comment + note  # + a pixel pair's values
    prog.steps.append(Int8Step(
        f"{call}(&p{i}, {{{a}}}, w{i}, b{i}, m{i}, s{i}, {add_args}{{{args[-1]}}}, ({stype}*)SCRATCH)",
        args, scratch, comment, overwrite))


def _fused_add(prog: Int8Program, i: int, j: int) -> tuple[list[str], str, tuple[str, ...], str]:
    """(arena args, extra call arguments, inputs the sum may overwrite, comment) of conv i with add j fused."""
    add, a = prog.graph.ops[j], prog.graph.ops[i].inputs[0]
    res, prm = conv_add_operands(prog.graph, i, j)
    prog.consts.append(("edgecc_q8_add_params", f"p{j}", "{" + ", ".join(map(str, prm)) + "}"))
    overwrite = (res,) if prog.root(res) != prog.root(a) else ()  # never the input the im2col still reads
    return [a, res, add.output], f"&p{j}, {{{res}}}, ", overwrite, f" + add{' + relu' if add.relu else ''} (fused)"


def conv_weight_layout(w: np.ndarray) -> np.ndarray:
    """[oc][kdim4] int8 -> edgecc_q8_conv's order: channel pairs interleaved per group of four k (the kernel loads
    one word of each channel of a pair per step), an odd last channel as it is.

    >>> conv_weight_layout(np.arange(16, dtype=np.int8).reshape(2, 8)).tolist()
    [0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15]
    """
    co, k4 = w.shape
    even = co // 2 * 2
    pairs = w[:even].reshape(co // 2, 2, k4 // 4, 4).transpose(0, 2, 1, 3)
    return np.concatenate([pairs.reshape(-1), w[even:].reshape(-1)])


def _add_step(prog: Int8Program, i: int, op) -> None:
    a, b = op.inputs[0], op.inputs[1]
    zp_a, zp_o, act_min = _zero_points(prog.graph, op)
    zp_b = prog.graph.qparams[b][1]
    co, ho, wo = prog.chw[op.output]
    m, s = op.multiplier, op.shift
    prm = f"{{{zp_a}, {zp_b}, {zp_o}, {act_min}, {m[0]}, {s[0]}, {m[1]}, {s[1]}, {m[2]}, {s[2]}}}"
    prog.consts.append(("edgecc_q8_add_params", f"p{i}", prm))
    prog.steps.append(Int8Step(f"edgecc_q8_add(&p{i}, {{{a}}}, {{{b}}}, {{{op.output}}}, {co * ho * wo})",
                               [a, b, op.output], comment="add" + (" + relu" if op.relu else ""), inplace=(a, b)))


def _args(chw) -> str:
    return ", ".join(map(str, chw))


def _f(v: float) -> str:
    text = f"{float(np.float32(v)):.9g}"
    return text + ("" if ("." in text or "e" in text) else ".0") + "f"


class HeaderView:
    """What emit_header reads: the float32 I/O of the int8 model."""

    def __init__(self, prog: Int8Program):
        g = prog.graph
        self.name = prog.name
        self.inputs, self.outputs = ["input0"], ["output0"]
        self.tensors = {"input0": TensorInfo("input0", tuple(g.shapes[g.input]), "float32", "input"),
                        "output0": TensorInfo("output0", tuple(g.shapes[g.output]), "float32", "output")}
        self.weight_bytes = prog.weight_bytes


def emit_int8_c(prog: Int8Program, plan: ArenaPlan, header_note: str) -> tuple[str, str]:
    """(model.c, model.h) of an int8 program with arena offsets from `plan`."""
    p = c_prefix(prog.name)
    c = [f"/* {p}.c — the int8 AOT driver of {prog.name}; generated by edgecc, do not edit.",
         f" * {header_note}",
         f" * {len(prog.steps)} kernel calls; arena {plan.size} bytes (lower bound {plan.lower_bound});"
         f" weights {prog.weight_bytes} bytes (int8 weights, int32 biases and multipliers, int8 shifts).",
         " */",
         "#include <stdint.h>", "", '#include "edgecc/int8.h"', '#include "model.h"', "", *PROFILE_HOOK, "",
         "/* Quantized weights and kernel parameters (flash). */"]
    for ctype, name, value in prog.consts:
        if isinstance(value, str):
            c.append(f"static const {ctype} {name} = {value};")
        else:
            c.append(f"static const {ctype} {name}[{max(1, value.size)}] __attribute__((aligned(4))) = "
                     f"{{{_c_values(np.asarray(value))}}};")
    c += prog.functions
    c += arena_lines(plan, "int8 NHWC activations and kernel scratch, placed by liveness")
    c += ["", f"int {p}_run(void* const inputs[], void* const outputs[]) {{"]
    for i, s in enumerate(prog.steps):
        text = s.kernel
        for a in s.args:
            text = text.replace(f"{{{a}}}", f"(int8_t*)(arena + {plan.offsets[prog.root(a)]})")
        if s.scratch_bytes:
            text = text.replace("SCRATCH", f"(arena + {plan.offsets[f'scratch{i}']})")
        over = prog.inplace.get(s.args[-1]) if s.args else None
        note = f"; in place over {over}" if over else ""
        c += [f"  /* {i}: {s.comment}{note} */", f"  {text};", f"  EDGECC_PROFILE_STEP({i});"]
    c += ["  return 0;", "}", ""]
    return "\n".join(c), emit_header(HeaderView(prog), plan, header_note)
