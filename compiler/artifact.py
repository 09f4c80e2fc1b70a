"""What a backend hands back: the files it wrote and exactly how it made them."""

from __future__ import annotations

from dataclasses import dataclass, field

_TRUE, _FALSE = ("1", "true", "on"), ("0", "false", "off")


def is_true(value: str) -> bool:
    return value in _TRUE


def bool_option(opts: dict, key: str, default: bool | None, also: str = "") -> bool | None:
    """A backend's --option opts[key] as a bool (default when absent); a one-line error for anything else
    (`also`: another value the caller accepts, named in that error)."""
    from edgecc.errors import TargetError

    if key not in opts:
        return default
    value = str(opts[key]).lower()
    if value not in _TRUE + _FALSE:
        raise TargetError(f"--option {key}={opts[key]}: expected 1/0 (true/false){' or ' + also if also else ''}")
    return value in _TRUE


@dataclass
class CompileOptions:
    """Options of one compile, beyond the target's own flags."""

    extra_flags: tuple[str, ...] = ()  # appended to the backend's tool flags (iree-compile flags, ...)
    board: str = ""  # MCU targets: which board (default: the target's default_board)
    validate: bool = True
    threads: int = 0  # 0: runtime default
    precision: str = "fp32"  # fp32 | fp16 | bf16: the float arithmetic asked for (--precision)
    options: dict = field(default_factory=dict)  # backend specific (e.g. micro codegen "c" | "llvm")


@dataclass
class Artifact:
    """Files (relative to the bundle folder) and the exact record of how they were made."""

    files: list[str]  # the deliverables, e.g. ["model.vmfb"]
    entry: str  # the main artifact file
    calls: list[str] = field(default_factory=list)  # exact commands / API calls, each pasteable
    flags: list[str] = field(default_factory=list)  # flags given to the backend compiler
    info: dict = field(default_factory=dict)  # backend specific manifest section (memory, codegen, ...)
