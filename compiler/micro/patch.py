"""Patch-based inference of a network's first stages (MCUNetV2, Lin et al. 2021), `--option patch_stages=N`.

The first layers of a vision network hold its largest activations. Instead of computing each of the first N ops
over the whole image, the output of op N is split into a grid of tiles; for each tile the region every earlier
tensor must hold is traced back through the ops (a conv's output rows [a, b) need input rows
[a*s - p, (b-1)*s - p + k), clipped to the image), and the N ops run tile by tile on patch-sized buffers. Only the
stage's output is ever whole in memory; the overlapping halos are computed more than once (the recomputed MACs).

Every kernel runs unchanged on a patch: regions are clipped to the image, so a patch never holds a position
outside it, and each kernel's padding is the patch's offset in the full tensor (the image border where the
region was clipped; 0 or negative inside, where the patch holds at least what the op reads). Outside the image
the kernel then sees exactly the padding of the full-size run, so the result is bit-exact with it.

    stage_ops(g, n)              validate N: the first N ops, all tileable, only the last one's output read later
    valid_stage_counts(g)        every N that passes (the error messages list them)
    plan_stage(g, n, grid, chw)  -> PatchStage: tiles, per-tile regions of every tensor, patch sizes, MACs
    (patch_emit.py chooses the grid, turns a PatchStage into the C tile loop and the Int8Program that calls it)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgecc.errors import TargetError

TILEABLE = ("conv", "add", "maxpool")  # spatial ops whose outputs depend on a bounded input window
MAX_GRID = 8  # tiles per side the automatic choice tries


@dataclass(frozen=True)
class Region:
    """Rows y0..y1-1 and columns x0..x1-1 of a feature map."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def h(self) -> int:
        return self.y1 - self.y0

    @property
    def w(self) -> int:
        return self.x1 - self.x0

    def union(self, other: Region | None) -> Region:
        if other is None:
            return self
        return Region(min(self.y0, other.y0), max(self.y1, other.y1), min(self.x0, other.x0), max(self.x1, other.x1))


def window(op) -> tuple[int, int, int, int, int, int]:
    """(kh, kw, sh, sw, ph, pw) of a tileable op; an add reads the same position of both inputs."""
    if op.kind == "conv":
        (kh, kw), (sh, sw), (ph, pw) = op.w_q.shape[2:], op.attrs["stride"], op.attrs["padding"]
    elif op.kind == "maxpool":
        (kh, kw), (sh, sw), (ph, pw) = op.attrs["kernel"], op.attrs["stride"], op.attrs["padding"]
    else:
        kh = kw = sh = sw = 1
        ph = pw = 0
    return int(kh), int(kw), int(sh), int(sw), int(ph), int(pw)


def input_region(op, out: Region, in_hw: tuple[int, int]) -> Region:
    """The input region an op reads to compute `out`, clipped to the input image.

    >>> from types import SimpleNamespace as NS
    >>> pool = NS(kind="maxpool", attrs={"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1)})
    >>> input_region(pool, Region(0, 4, 4, 8), (16, 16))
    Region(y0=0, y1=8, x0=7, x1=16)
    """
    kh, kw, sh, sw, ph, pw = window(op)
    return Region(max(0, out.y0 * sh - ph), min(in_hw[0], (out.y1 - 1) * sh - ph + kh),
                  max(0, out.x0 * sw - pw), min(in_hw[1], (out.x1 - 1) * sw - pw + kw))


def _tileable(op) -> str:
    """'' when the patcher can tile `op`, else why not."""
    if op.kind not in TILEABLE:
        return f"{op.kind} is not a spatial op (it reads the whole feature map)"
    if op.kind == "conv" and op.attrs["groups"] > 1 and op.w_q.shape[1] != 1:
        return "grouped conv2d"
    return ""


def valid_stage_counts(g) -> list[int]:
    """Every N the patcher accepts: the first N ops are tileable and only op N's output is read after them."""
    out = []
    for n in range(1, len(g.ops) + 1):
        if _tileable(g.ops[n - 1]):
            break
        if not _leaks(g, n):
            out.append(n)
    return out


def _leaks(g, n: int) -> list[str]:
    """Tensors of the first n ops (or the graph input) that an op after them reads, besides op n's output."""
    inside = {g.input} | {op.output for op in g.ops[:n - 1]}
    later = [a for op in g.ops[n:] for a in op.inputs] + [g.output]
    return sorted({a for a in later if a in inside})


def stage_ops(g, n) -> list:
    """The first `n` ops of quantized graph `g`, checked: a one-line TargetError when patch_stages=n cannot be
    tiled (not a whole number, out of range, an op that is not spatial, or a tensor read after the stage)."""
    text = str(n).strip()
    if isinstance(n, bool) or not text.isdigit():
        raise TargetError(f"--option patch_stages={n}: expected a whole number of ops, 1 or more")
    n = int(text)
    valid = valid_stage_counts(g)
    hint = f"valid values for this model: {_ranges(valid)}" if valid else "this model has no tileable first op"
    if n < 1 or n > len(g.ops):
        raise TargetError(f"--option patch_stages={n}: expected 1 to {len(g.ops)} (the model's ops); {hint}")
    for i, op in enumerate(g.ops[:n]):
        why = _tileable(op)
        if why:
            raise TargetError(f"--option patch_stages={n}: op {i + 1} ({op.output}) cannot be tiled: {why}; {hint}")
    leaks = _leaks(g, n)
    if leaks:
        raise TargetError(f"--option patch_stages={n} cuts through a skip connection ({', '.join(leaks)} is read "
                          f"after op {n}); {hint}")
    return g.ops[:n]


def _ranges(values: list[int]) -> str:
    """'1-3, 5, 7-9' for [1, 2, 3, 5, 7, 8, 9]."""
    parts, start = [], None
    for i, v in enumerate(values):
        start = v if start is None else start
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(v) if v == start else f"{start}-{v}")
            start = None
    return ", ".join(parts)


def parse_grid(value) -> tuple[int, int]:
    """--option patch_grid: 'R' (R x R tiles) or 'RxC'.

    >>> parse_grid("3"), parse_grid("4x1")
    ((3, 3), (4, 1))
    """
    parts = str(value).lower().split("x")
    if len(parts) > 2 or not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        raise TargetError(f"--option patch_grid={value}: expected R or RxC tiles (whole numbers >= 1, e.g. 4 or 4x2)")
    r = int(parts[0])
    return r, int(parts[-1])


@dataclass
class PatchStage:
    """The first `n` ops run tile by tile. regions[t][tensor] is tile t's region of that tensor."""

    n: int
    grid: tuple[int, int]
    input: str  # the graph input: the stage's only tensor from outside
    ops: list
    chw: dict[str, tuple[int, int, int]]  # tensor -> (c, h, w)
    tiles: list[Region]
    regions: list[dict[str, Region]] = field(default_factory=list)

    @property
    def output(self) -> str:
        return self.ops[-1].output

    @property
    def tensors(self) -> list[str]:
        """The stage's input, then every op's output in order."""
        return [self.input] + [op.output for op in self.ops]

    def patch_bytes(self, tensor: str) -> int:
        """The largest patch of `tensor` over all tiles."""
        c = self.chw[tensor][0]
        return max(r[tensor].h * r[tensor].w * c for r in self.regions)

    def macs(self) -> tuple[int, int]:
        """(MACs of the stage run whole, MACs summed over the tiles)."""
        plain = sum(op_macs(op, self.chw, None) for op in self.ops)
        tiled = sum(op_macs(op, self.chw, r[op.output]) for r in self.regions for op in self.ops)
        return plain, tiled


def op_macs(op, chw, region: Region | None) -> int:
    """MACs of a conv over `region` of its output (None: the whole map); 0 for adds and pools."""
    if op.kind != "conv":
        return 0
    co, ho, wo = chw[op.output]
    pixels = ho * wo if region is None else region.h * region.w
    return pixels * co * int(op.w_q[0].size)  # one output: kh * kw * (ic / groups) MACs


def _splits(n: int, parts: int) -> list[tuple[int, int]]:
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def plan_stage(g, n, grid: tuple[int, int], chw: dict) -> PatchStage:
    """Tile the first `n` ops of `g` on a grid (rows, cols) of the stage output; `chw`: Int8Program.chw.

    Example: `plan_stage(qgraph, 4, (3, 3), plan_int8(qgraph, "m").chw).macs()`.
    """
    ops = stage_ops(g, n)
    _, h, w = chw[ops[-1].output]
    if grid[0] > h or grid[1] > w:
        raise TargetError(f"--option patch_grid={grid[0]}x{grid[1]}: op {len(ops)}'s output is {h}x{w} pixels; "
                          f"give at most {h}x{w} tiles")
    tiles = [Region(y0, y1, x0, x1) for y0, y1 in _splits(h, grid[0]) for x0, x1 in _splits(w, grid[1])]
    stage = PatchStage(len(ops), grid, g.input, ops, chw, tiles)
    for tile in tiles:
        need: dict[str, Region] = {ops[-1].output: tile}
        for op in reversed(ops):  # consumers before producers: a tensor's region is final when its producer is met
            out = need.get(op.output)
            if out is None:
                raise TargetError(f"--option patch_stages={n}: {op.output} is not used by the stage's output; "
                                  "patch a smaller stage")
            for a in op.inputs:
                need[a] = input_region(op, out, chw[a][1:]).union(need.get(a))
        stage.regions.append(need)
    return stage
