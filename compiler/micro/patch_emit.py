"""A PatchStage (patch.py) as C: one generated function that runs the stage tile by tile, and the Int8Program
that calls it in place of the stage's whole-tensor steps.

Inside one tile the patch buffers are planned like the arena (plan.py, by liveness within the tile): the
function gets one workspace, the outer program sees a single step that writes the stage's output and needs
that workspace as its scratch. Per-tile kernel parameters (patch sizes, paddings) are const tables in flash.

    patch_program(prog, stage)  -> (Int8Program, report dict for the manifest's memory section)
    patched_int8(prog, n, grid) -> the same, with grid None: the one with the smallest arena (choose_grid)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edgecc.compiler.micro.int8 import Int8Program, Int8Step, _f, _zero_points
from edgecc.compiler.micro.patch import MAX_GRID, PatchStage, op_macs, parse_grid, plan_stage, window
from edgecc.compiler.micro.plan import ArenaPlan, Buffer, plan_arena
from edgecc.errors import TargetError

FUNCTION = "patch_stage"
PATCH_SOURCE = "src/int8_patch.c"  # runtime/c: the window helpers the tile loop calls


def patch_options(opts: dict) -> tuple | None:
    """(patch_stages, grid or None) from the backend options, None without patch_stages; the values are checked
    against the model in patched_int8."""
    if opts.get("patch_stages") is None:
        if opts.get("patch_grid") is not None:
            raise TargetError(f"--option patch_grid={opts['patch_grid']} needs --option patch_stages=N")
        return None
    grid = opts.get("patch_grid")
    return opts["patch_stages"], parse_grid(grid) if grid is not None else None


@dataclass
class TileWorkspace:
    """Where each patch buffer and kernel scratch of one tile lives in the stage's workspace."""

    plan: ArenaPlan
    direct: bool  # full-width tiles: the last op writes straight into the stage output, no store


def scratch_bytes(op, ic: int) -> int:
    """The scratch edgecc_q8_conv / _depthwise_conv need (int8.py's _conv_step: two int16 im2col rows of kdim
    rounded up to 4; depthwise: c int32); 0 for the others."""
    if op.kind != "conv":
        return 0
    if op.attrs["groups"] > 1:
        return 4 * op.w_q.shape[0]
    kh, kw = op.w_q.shape[2:]
    return 4 * ((kh * kw * ic + 3) // 4 * 4)


def tile_workspace(stage: PatchStage) -> TileWorkspace:
    """Plan one tile's buffers: step 0 quantizes the input patch, step i + 1 runs op i, step n + 1 stores."""
    direct = stage.grid[1] == 1
    last_use = {stage.input: 0}
    for i, op in enumerate(stage.ops):
        for a in op.inputs:
            last_use[a] = i + 1
    last_use[stage.output] = stage.n + 1
    bufs = [Buffer(stage.input, stage.patch_bytes(stage.input), 0, last_use[stage.input])]
    for i, op in enumerate(stage.ops):
        if not (direct and op.output == stage.output):
            bufs.append(Buffer(op.output, stage.patch_bytes(op.output), i + 1, last_use[op.output]))
        scratch = scratch_bytes(op, stage.chw[op.inputs[0]][0])
        if scratch:
            bufs.append(Buffer(f"scratch{i}", scratch, i + 1, i + 1))
    return TileWorkspace(plan_arena(bufs), direct)


def _drop_stage(prog: Int8Program, stage: PatchStage) -> tuple[list[Int8Step], list]:
    """The program's steps and consts without the stage's whole-tensor steps (quantize and ops 1..n) and their
    conv / pool parameter structs (the tile loop has per-tile ones); weights and add parameters stay."""
    inside = set(stage.tensors)
    steps = [s for s in prog.steps
             if s.kernel.startswith("edgecc_q8_dequantize") or prog.root(s.args[-1]) not in inside]
    tabled = {f"p{i}" for i, op in enumerate(stage.ops) if op.kind != "add"}
    return steps, [c for c in prog.consts if c[1] not in tabled]


def stage_buffers(prog: Int8Program, stage: PatchStage, ws: TileWorkspace) -> list[Buffer]:
    """The outer program's buffers with the stage as one step (cheap: what choose_grid compares)."""
    steps, _ = _drop_stage(prog, stage)
    outer = replace(prog, steps=[Int8Step("", [stage.output], ws.plan.size)] + steps)
    return outer.buffers()


def choose_grid(prog: Int8Program, n: int) -> tuple[int, int]:
    """The (rows, cols) grid up to MAX_GRID x MAX_GRID with the smallest arena, then the fewest MACs."""
    _, h, w = prog.chw[prog.graph.ops[n - 1].output]
    best = None
    for rows in range(1, min(h, MAX_GRID) + 1):
        for cols in range(1, min(w, MAX_GRID) + 1):
            stage = plan_stage(prog.graph, n, (rows, cols), prog.chw)
            arena = plan_arena(stage_buffers(prog, stage, tile_workspace(stage))).size
            key = (arena, stage.macs()[1], rows * cols)
            best = min(best, (key, (rows, cols))) if best else (key, (rows, cols))
    return best[1]


def patched_int8(prog: Int8Program, n, grid: tuple[int, int] | None = None) -> tuple[Int8Program, dict]:
    """`prog` (plan_int8's tensor-level plan, inplace=False) with its first n ops run patch by patch on `grid`
    (None: choose_grid).

    Example: `patched, report = patched_int8(plan_int8(qgraph, "m", inplace=False), 6)`.
    """
    plan_stage(prog.graph, n, (1, 1), prog.chw)  # validates n before any search
    stage = plan_stage(prog.graph, n, grid or choose_grid(prog, int(str(n))), prog.chw)
    return patch_program(prog, stage)


def patch_program(prog: Int8Program, stage: PatchStage) -> tuple[Int8Program, dict]:
    """`prog` with the stage's steps replaced by one call of the generated tile loop, and the memory report."""
    ws = tile_workspace(stage)
    steps, consts = _drop_stage(prog, stage)
    step = Int8Step(f"{FUNCTION}((const float*)inputs[0], {{{stage.output}}}, SCRATCH)", [stage.output],
                    ws.plan.size, f"ops 1..{stage.n} patch by patch: {len(stage.tiles)} tiles "
                                  f"({stage.grid[0]}x{stage.grid[1]})")
    out = replace(prog, steps=[step] + steps, consts=consts,
                  functions=[*prog.functions, stage_function(prog, stage, ws)])
    return out, report(prog, out, stage, ws)


def report(plain: Int8Program, patched: Int8Program, stage: PatchStage, ws: TileWorkspace) -> dict:
    """The manifest's memory.patch entry: peak RAM with and without patching against the tensor-level bound."""
    before, after = plan_arena(plain.buffers()), plan_arena(patched.buffers())
    macs, tiled = stage.macs()
    total = model_macs(plain)
    return {
        "patch_stages": stage.n, "grid": list(stage.grid), "tiles": len(stage.tiles),
        "stage_output": stage.output, "stage_output_chw": list(stage.chw[stage.output]),
        "arena_bytes": after.size, "arena_bytes_unpatched": before.size,
        "tensor_level_lower_bound_bytes": before.lower_bound,
        "ratio_vs_unpatched_arena": round(before.size / after.size, 3),
        "ratio_vs_tensor_level_lower_bound": round(before.lower_bound / after.size, 3),
        "tile_workspace_bytes": ws.plan.size,
        "stage_macs": macs, "stage_macs_patched": tiled, "recomputed_macs": tiled - macs,
        "recomputed_macs_pct_of_stage": round(100.0 * (tiled - macs) / macs, 2) if macs else 0.0,
        "recomputed_macs_pct_of_model": round(100.0 * (tiled - macs) / total, 2) if total else 0.0,
        "model_macs": total,
        "method": "arena sizes from edgecc's liveness planner (plan.py); tensor-level lower bound = the largest "
                  "sum of whole tensors (and kernel scratch) alive at one step of the unpatched program; MACs of "
                  "the convolutions over each tile's regions, halos included",
    }


def model_macs(prog: Int8Program) -> int:
    """MACs of one inference: every conv over its whole output, every dense."""
    return sum(int(op.w_q.size) if op.kind == "dense" else op_macs(op, prog.chw, None) for op in prog.graph.ops)


def stage_function(prog: Int8Program, stage: PatchStage, ws: TileWorkspace) -> str:
    """The C of `static void patch_stage(input, out, work)`: per-tile tables, then the tile loop."""
    g, t = prog.graph, len(stage.tiles)
    c_in, h_in, w_in = stage.chw[stage.input]
    c_out, _, w_out = stage.chw[stage.output]
    s_in, zp_in = g.qparams[stage.input]
    (c, h, w), (rows, cols) = stage.chw[stage.output], stage.grid
    lines = ["", f"/* Patch-based stage (MCUNetV2): ops 1..{stage.n} run tile by tile on a {rows}x{cols} grid of "
                 f"{stage.output} ({c} x {h} x {w}).",
             " * Each tile's patches are the regions it needs, halos included (recomputed by neighbouring tiles). */",
             '#include "edgecc/int8_patch.h"', "",
             _table("edgecc_q8_window", "patch_in", [_win(r[stage.input]) for r in stage.regions]),
             _table("edgecc_q8_window", "patch_out", [_win(r[stage.output]) for r in stage.regions])]
    for i, op in enumerate(stage.ops):
        if op.kind == "add":
            lines.append(_table("edgecc_q8_add_window", f"patch_a{i}", [_add_win(stage, op, r) for r in stage.regions]))
        else:
            lines.append(_table("edgecc_q8_conv_params", f"patch_p{i}", [_conv_prm(g, stage, op, r)
                                                                          for r in stage.regions]))
    layout = ", ".join(f"{b.name} @ {ws.plan.offsets[b.name]}" for b in ws.plan.buffers)
    lines += ["", f"/* work ({ws.plan.size} bytes, planned by liveness within a tile): {layout} */",
              f"static void {FUNCTION}(const float* input, int8_t* out, uint8_t* work) {{",
              f"  for (int t = 0; t < {t}; t++) {{",
              f"    edgecc_q8_quantize_window(input, {c_in}, {h_in}, {w_in}, &patch_in[t], {_f(s_in)}, {zp_in}, "
              f"{_buf(ws, stage.input)});"]
    for i, op in enumerate(stage.ops):
        dst = f"out + patch_out[t].y0 * {w_out * c_out}" if ws.direct and op.output == stage.output else \
            _buf(ws, op.output)
        lines += [f"    /* op {i + 1}: {_describe(op)} -> {op.output} */", f"    {_call(stage, ws, i, op, dst)};"]
    if not ws.direct:
        lines.append(f"    edgecc_q8_store_window({_buf(ws, stage.output)}, &patch_out[t], {c_out}, {w_out}, out);")
    lines += ["  }", "}"]
    return "\n".join(lines)


def _call(stage: PatchStage, ws: TileWorkspace, i: int, op, dst: str) -> str:
    a = _buf(ws, op.inputs[0])
    if op.kind == "add":
        return (f"edgecc_q8_add_windowed(&p{i}, &patch_a{i}[t], {a}, {_buf(ws, op.inputs[1])}, {dst}, "
                f"{stage.chw[op.output][0]})")
    if op.kind == "maxpool":
        return f"edgecc_q8_maxpool(&patch_p{i}[t], {a}, {dst})"
    depthwise = op.attrs["groups"] > 1
    call, stype = ("edgecc_q8_depthwise_conv", "int32_t") if depthwise else ("edgecc_q8_conv", "int16_t")
    scratch = f"({stype}*)(work + {ws.plan.offsets[f'scratch{i}']})"
    return f"{call}(&patch_p{i}[t], {a}, w{i}, b{i}, m{i}, s{i}, {dst}, {scratch})"


def _describe(op) -> str:
    if op.kind != "conv":
        return op.kind + (" + relu" if op.relu else "")
    kh, kw, sh, _, _, _ = window(op)
    dw = " depthwise" if op.attrs["groups"] > 1 else ""
    return f"conv {kh}x{kw}{dw}{f' stride {sh}' if sh > 1 else ''}{' + relu' if op.relu else ''}"


def _buf(ws: TileWorkspace, tensor: str) -> str:
    return f"(int8_t*)(work + {ws.plan.offsets[tensor]})"


def _table(ctype: str, name: str, rows: list[str]) -> str:
    body = ",\n".join(f"    {r}" for r in rows)
    return f"static const {ctype} {name}[{len(rows)}] = {{\n{body}}};"


def _win(r) -> str:
    return f"{{{r.y0}, {r.x0}, {r.h}, {r.w}}}"


def _conv_prm(g, stage: PatchStage, op, regions: dict) -> str:
    """edgecc_q8_conv_params of op on this tile's patches: the patch is the image, its offset the padding."""
    a = op.inputs[0]
    ri, ro = regions[a], regions[op.output]
    kh, kw, sh, sw, ph, pw = window(op)
    ci, co = stage.chw[a][0], stage.chw[op.output][0]
    zp_a, zp_o, act_min = _zero_points(g, op) if op.kind == "conv" else (0, 0, -128)
    pad_y, pad_x = ro.y0 * sh - ph - ri.y0, ro.x0 * sw - pw - ri.x0  # input row of output row 0, in the patch
    return (f"{{{ri.h}, {ri.w}, {ci}, {ro.h}, {ro.w}, {co}, {kh}, {kw}, {sh}, {sw}, {-pad_y}, {-pad_x}, "
            f"{zp_a}, {zp_o}, {act_min}}}")


def _add_win(stage: PatchStage, op, regions: dict) -> str:
    c = stage.chw[op.output][0]
    ro = regions[op.output]
    parts = []
    for a in op.inputs[:2]:
        ri = regions[a]
        parts += [((ro.y0 - ri.y0) * ri.w + ro.x0 - ri.x0) * c, ri.w * c]
    return f"{{{parts[0]}, {parts[1]}, {parts[2]}, {parts[3]}, {ro.h}, {ro.w}}}"
