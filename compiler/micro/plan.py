"""Static arena planning: give every intermediate tensor (and every kernel's scratch) an offset in one arena.

Two buffers may share bytes when their lifetimes (the steps between the kernel that writes them first and
the last kernel that reads them) do not overlap. Offsets are assigned greedily, largest buffer first, each at
the lowest offset that does not collide with an already placed buffer alive at the same time (the
"greedy by size" strategy of TFLite Micro's planner). The result is reported against the lower bound no plan
can beat: the largest total of bytes alive at any one step.

Below the tensor level, `inplace_aliases` lets a kernel that is safe in place (an elementwise add, a conv whose
epilogue adds a residual) write its output over an input that dies at that step: the two tensors become one
buffer, so the lower bound itself drops.

Pure Python: unit-tested without any toolchain (tests/unit/test_micro_plan.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Buffer:
    """A block of memory that lives from step `first` to step `last` (inclusive)."""

    name: str
    size: int
    first: int
    last: int

    def overlaps(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class ArenaPlan:
    offsets: dict[str, int]  # buffer name -> byte offset in the arena
    size: int  # arena bytes (aligned)
    lower_bound: int  # max over steps of the bytes alive at that step (aligned sizes)
    buffers: list[Buffer] = field(default_factory=list)
    alignment: int = 16

    @property
    def overhead(self) -> float:
        """How much bigger than the lower bound the arena is (0.0 = optimal)."""
        return self.size / self.lower_bound - 1.0 if self.lower_bound else 0.0

    def to_dict(self) -> dict:
        return {"arena_bytes": self.size, "lower_bound_bytes": self.lower_bound, "alignment": self.alignment,
                "buffers": [{"name": b.name, "bytes": b.size, "offset": self.offsets[b.name], "first_step": b.first,
                             "last_step": b.last} for b in self.buffers]}


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


@dataclass(frozen=True)
class InPlace:
    """A kernel at `step` may write `output` over `input` (it reads each input element before it writes the
    output element at the same index)."""

    step: int
    output: str
    input: str


def inplace_aliases(uses: list[list[str]], sizes: dict[str, int], candidates: list[InPlace]) -> dict[str, str]:
    """{output: tensor whose buffer it takes} for the candidates liveness allows: the input's buffer (with every
    tensor already aliased to it) is read last at the candidate's step, the output is first written there, and
    it fits. An input read again later is never overwritten. Candidates are taken in order, one per output.

    Example (an add at step 2 may overwrite either input; `a` is read again at step 3, `b` dies at step 2):
        >>> uses = [["a"], ["a", "b"], ["a", "b", "c"], ["a", "c"]]
        >>> sizes = {"a": 64, "b": 64, "c": 64}
        >>> inplace_aliases(uses, sizes, [InPlace(2, "c", "a"), InPlace(2, "c", "b")])
        {'c': 'b'}
    """
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for step, names in enumerate(uses):
        for n in names:
            first.setdefault(n, step)
            last[n] = step
    alias: dict[str, str] = {}
    group_last = dict(last)  # buffer root -> last step any tensor sharing it is used

    def root(n: str) -> str:
        while n in alias:
            n = alias[n]
        return n

    for c in sorted(candidates, key=lambda c: c.step):
        if c.output in alias or c.output == c.input or first.get(c.output) != c.step:
            continue
        r = root(c.input)
        if r == c.output or group_last.get(r) != c.step or sizes[c.output] > sizes[r]:
            continue
        alias[c.output] = r
        group_last[r] = last[c.output]
    return {out: root(out) for out in alias}


def live_bytes_lower_bound(buffers: list[Buffer], alignment: int = 16) -> int:
    """max over steps of the sum of (aligned) sizes of the buffers alive at that step."""
    steps = {b.first for b in buffers}  # the live set only grows at a buffer's first step
    return max((sum(_align(b.size, alignment) for b in buffers if b.first <= s <= b.last) for s in steps), default=0)


def plan_arena(buffers: list[Buffer], alignment: int = 16) -> ArenaPlan:
    """Assign arena offsets by liveness.

    Example:
        >>> p = plan_arena([Buffer("a", 100, 0, 1), Buffer("b", 100, 1, 2), Buffer("c", 100, 2, 3)])
        >>> p.offsets["a"] == p.offsets["c"], p.size, p.lower_bound
        (True, 224, 224)
    """
    names = [b.name for b in buffers]
    if len(set(names)) != len(names):
        raise ValueError("plan_arena: buffer names must be unique")
    for b in buffers:
        if b.size < 0 or b.first > b.last:
            raise ValueError(f"plan_arena: bad buffer {b}")
    order = sorted(buffers, key=lambda b: (-_align(b.size, alignment), -(b.last - b.first), b.first, b.name))
    placed: list[tuple[int, int, Buffer]] = []  # (offset, aligned size, buffer)
    offsets: dict[str, int] = {}
    for b in order:
        size = _align(b.size, alignment)
        if size == 0:
            offsets[b.name] = 0
            continue
        busy = sorted((off, off + sz) for off, sz, other in placed if other.overlaps(b))
        offset = 0
        for start, end in busy:  # first gap big enough, scanning upwards
            if offset + size <= start:
                break
            offset = max(offset, end)
        offsets[b.name] = offset
        placed.append((offset, size, b))
    total = max((off + sz for off, sz, _ in placed), default=0)
    return ArenaPlan(offsets, _align(total, alignment), live_bytes_lower_bound(buffers, alignment), list(buffers),
                     alignment)


def check_plan(plan: ArenaPlan) -> None:
    """Raise AssertionError if two buffers alive at the same step share a byte, or one leaves the arena."""
    a = plan.alignment
    for i, x in enumerate(plan.buffers):
        ox = plan.offsets[x.name]
        assert ox % a == 0 and ox + x.size <= plan.size, f"{x.name} outside arena or misaligned"
        for y in plan.buffers[i + 1:]:
            oy = plan.offsets[y.name]
            if x.size and y.size and x.overlaps(y):
                assert ox + x.size <= oy or oy + y.size <= ox, f"{x.name} and {y.name} overlap in time and space"


def model_buffers(lowered) -> list[Buffer]:
    """The arena buffers of a LoweredModel: every temp tensor (views share their source's buffer) from the
    kernel that first touches it to the last one that reads it, and each kernel's scratch for its own step.
    Inputs, outputs and weights live outside the arena (caller buffers and flash)."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for step, call in enumerate(lowered.calls):
        for arg in call.args:
            root = lowered.root(arg)
            if lowered.tensors[root].kind == "temp":
                first.setdefault(root, step)
                last[root] = step
    buffers = [Buffer(n, lowered.tensors[n].nbytes, first[n], last[n]) for n in first]
    buffers += [Buffer(f"scratch{step}", call.workspace_bytes, step, step)
                for step, call in enumerate(lowered.calls) if call.workspace_bytes]
    return buffers
