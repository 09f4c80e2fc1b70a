"""What a backend hands back: the files it wrote and exactly how it made them."""

from __future__ import annotations

from dataclasses import dataclass, field


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
