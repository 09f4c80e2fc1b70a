"""Targets as data: `targets/*.toml`, one file per device, loaded into frozen dataclasses."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from edgecc.errors import TargetError
from edgecc.targets.schema import (
    ACCELERATORS,
    BACKENDS,
    KINDS,
    TRANSPORTS,
    Accelerator,
    BackendConfig,
    Board,
    Cpu,
    Target,
    Transport,
    load_target_file,
    parse_target,
)

__all__ = [
    "ACCELERATORS", "BACKENDS", "KINDS", "TRANSPORTS", "Accelerator", "BackendConfig", "Board", "Cpu", "Target",
    "Transport", "get_target", "list_targets", "load_target_file", "parse_target", "TARGETS_DIR",
]

TARGETS_DIR = Path(__file__).parent


@cache
def list_targets() -> dict[str, Target]:
    """All targets shipped with edgecc, by name. Example: `list_targets()["host"].device`."""
    return {p.stem: load_target_file(p) for p in sorted(TARGETS_DIR.glob("*.toml"))}


def get_target(name: str) -> Target:
    """A target by name, or a TOML path; an unknown name raises TargetError listing the valid ones."""
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise TargetError(f"target file {name} does not exist")
        return load_target_file(path)
    targets = list_targets()
    if name not in targets:
        raise TargetError(f"unknown target {name!r}; valid targets: {', '.join(targets)}")
    return targets[name]
