"""What a cut costs end to end: the front on its device, the cut tensor over the link, the back on its device.

Each candidate is compiled for real and measured where it runs from here (Neurosurgeon, ASPLOS 2017, predicted
per-layer costs instead; a compiler fuses layers, so a cut is measured as the two programs it becomes):

- a microcontroller front: QEMU instructions per inference (icount, deterministic) over the board's clock from its
  board file: an **estimate** that assumes one instruction per cycle;
- a CPU front or back: the p50 of the wall clock of the bundle's runner (qemu-aarch64 for aarch64 bundles: emulated,
  not device time, and labelled so);
- the link: the cut tensor's frame (header + payload + CRC) over the link's bytes per second.

    >>> costs = measure_cuts(loaded, cuts, plan, workdir, log=print)                   # doctest: +SKIP
    >>> best(costs).cut.node                                                            # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgecc.errors import BudgetError, CannotRunHere
from edgecc.runtime.frame import frame_bytes

MCU_METHOD = "estimate: QEMU instructions / board clock (1 instruction per cycle)"


@dataclass
class Side:
    """Where one half goes: target, backend, board (MCUs) and backend options."""

    target: object  # edgecc.targets Target
    backend: str
    board: str = ""
    options: dict = field(default_factory=dict)
    spec: str = ""  # the target as the user named it (a name or a .toml path), what the driver is given

    def to_dict(self) -> dict:
        return {"target": self.target.name, "backend": self.backend, "board": self.board or None}


@dataclass
class CutCost:
    cut: object  # graph_cut.Cut
    wire_dtype: str
    front_s: float | None = None
    front_method: str = ""
    back_s: float | None = None
    back_method: str = ""
    status: str = "ok"  # or why this cut was left out ("does not fit: ...")
    detail: dict = field(default_factory=dict)

    @property
    def wire_bytes(self) -> int:
        return frame_bytes(self.cut.shape, self.wire_dtype)

    def link_s(self, link) -> float:
        return link.seconds(self.wire_bytes)

    def total_s(self, link) -> float | None:
        if self.status != "ok" or self.front_s is None or self.back_s is None:
            return None
        return self.front_s + self.link_s(link) + self.back_s

    def row(self, link) -> dict:
        """The breakdown as JSON data, seconds."""
        return {"node": self.cut.node, "shape": list(self.cut.shape), "dtype": self.wire_dtype,
                "wire_bytes": self.wire_bytes, "front_s": self.front_s, "front_method": self.front_method,
                "link_s": self.link_s(link), "back_s": self.back_s, "back_method": self.back_method,
                "total_s": self.total_s(link), "status": self.status, **self.detail}


def best(costs: list[CutCost], link) -> CutCost | None:
    ok = [c for c in costs if c.total_s(link) is not None]
    return min(ok, key=lambda c: c.total_s(link)) if ok else None


def front_seconds(bundle, side: Side) -> tuple[float, str, dict]:
    """(seconds, method, detail) of one inference of the front bundle where it runs from here. A microcontroller's
    instructions are counted in QEMU (the bundle may be built for a QEMU board) and timed at `side`'s board clock."""
    if bundle.backend == "micro":
        board = side.target.board(side.board or None)
        if not board.clock_mhz:
            raise CannotRunHere(f"board {board.name} of {side.target.name} states no clock_mhz in its board file, so "
                                "its QEMU instruction count gives no time; add clock_mhz or give --at NODE")
        timing = bundle.runner().time(None, 0, 1)  # icount is deterministic: one inference is the number
        instructions = timing["samples"][0]
        return (instructions / (board.clock_mhz * 1e6), MCU_METHOD,
                {"front_instructions": instructions, "front_clock_mhz": board.clock_mhz})
    return wall_seconds(bundle)


def wall_seconds(bundle, warmup: int = 3, iters: int = 20) -> tuple[float, str, dict]:
    """p50 wall clock of the bundle's runner (benchmark worker process), in seconds."""
    from edgecc.runtime.bench import bench_bundle

    t = bench_bundle(bundle, warmup=warmup, iters=iters)
    p50 = t.stats()["p50"] / 1000.0 if t.unit == "ms" else None
    if p50 is None:
        raise CannotRunHere(f"{bundle.path.name} times in {t.unit}, not time")
    return p50, t.method, {}


def measure_cut(build, cut, front: Side, back: Side, wire_dtype: str, workdir: Path, log) -> CutCost:
    """Compile both halves of `cut` (build(cut, workdir, validate=False) -> (front bundle, back bundle)) and measure
    them; a front that does not fit its board is kept as a row saying so. `front` names the board whose clock times
    a microcontroller front (build may compile it for a QEMU board of the same core to count its instructions)."""
    try:
        fb, bb = build(cut, workdir, validate=False)
    except BudgetError as e:
        return CutCost(cut, wire_dtype, status=f"does not fit: {e}")
    cost = CutCost(cut, wire_dtype)
    log(f"measuring the cut at {cut.node}: front on {front.target.name}, back on {back.target.name}")
    cost.front_s, cost.front_method, d1 = front_seconds(fb, front)
    cost.back_s, cost.back_method, d2 = wall_seconds(bb)
    cost.detail = {**d1, **d2}
    return cost
