"""What the fp32 (TVM kernels) and the int8 (edgecc kernels) firmware builds share: the board budget check and the
manifest's io / board / memory entries. Both also name their C symbols with emit.c_prefix and link with link.py."""

from __future__ import annotations

from edgecc.errors import BudgetError

HARNESS_IO_BYTES_NOTE = "harness input/output buffers"


def _kb(n: int) -> str:
    return f"{n / 1024:.1f}"


def check_budget(name, target, board, arena_bytes, stack_bytes, io, weight_bytes) -> None:
    """BudgetError before the link when arena + stack + harness I/O exceed the board's RAM or weights its flash."""
    io_bytes = sum(s["bytes"] for s in io["inputs"] + io["outputs"])
    need_ram = arena_bytes + stack_bytes + io_bytes
    if need_ram > board.ram_kb * 1024 or weight_bytes > board.flash_kb * 1024:
        what = "RAM" if need_ram > board.ram_kb * 1024 else "flash"
        need, have = (need_ram, board.ram_kb) if what == "RAM" else (weight_bytes, board.flash_kb)
        detail = (f"arena {_kb(arena_bytes)} KB + stack {_kb(stack_bytes)} KB + I/O {_kb(io_bytes)} KB"
                  if what == "RAM" else f"weights {_kb(weight_bytes)} KB")
        raise BudgetError(f"{name} needs {-(-need // 1024)} KB {what} ({detail}), board {board.name} "
                          f"({target.name}) has {have} KB; try --quantize int8 or a board with more {what}")


def tensor_io(t) -> dict:
    """The manifest's io entry of a firmware input or output tensor."""
    return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "bytes": t.nbytes}


def board_info(board) -> dict:
    """The first entries of a firmware's artifact info: the board, where it runs here, how to flash it."""
    return {
        "board": board.name,
        "qemu_machine": board.qemu_machine,
        "flash_command": board.flash_command.format(hex="firmware.hex", elf="firmware.elf", bin="firmware.bin"),
    }


def memory_info(plan, weights_bytes: int, stack_bytes: int, fw, board, weights_note: str = "") -> dict:
    """The manifest's memory section of a firmware: arena (and its lower bound), weights, flash and RAM from the
    ELF, against the board."""
    return {
        "arena_bytes": plan.size,
        "arena_lower_bound_bytes": plan.lower_bound,
        "weights_bytes": weights_bytes,
        "stack_bytes": stack_bytes,
        "flash_bytes": fw.flash_bytes,
        "ram_bytes": fw.ram_bytes,
        "sections": fw.sections,
        "board_ram_bytes": board.ram_kb * 1024,
        "board_flash_bytes": board.flash_kb * 1024,
        "note": (weights_note + "; " if weights_note else "")
                + "flash = text+rodata+exidx+.data image; ram = .data+.bss(arena, " + HARNESS_IO_BYTES_NOTE + ")+stack",
    }
