"""The target schema: one TOML file per device, loaded into frozen dataclasses.

A target says what the device is (CPU triple/cpu/features, accelerator), which backends can serve it and with
which flags, how an artifact is run there (transport), and its memory budget. Adding a device is adding a file;
validation refuses unknown keys and values and lists the allowed ones.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecc.errors import TargetError

KINDS = ("cpu", "gpu", "mcu")
BACKENDS = ("iree", "tvm", "tensorrt", "micro")
ACCELERATORS = ("cuda", "vulkan", "opencl")
TRANSPORTS = ("local", "qemu-user", "qemu-system-arm", "ssh", "tvm-rpc")


def _check_keys(where: str, table: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise TargetError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def _check_value(where: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise TargetError(f"{where}: {value!r} is not one of {', '.join(allowed)}")


def _str_list(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TargetError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class Cpu:
    """The CPU that runs host code (or everything, for CPU and MCU targets)."""

    triple: str
    cpu: str = "generic"  # "host" means: the CPU of the machine that compiles
    features: tuple[str, ...] = ()
    float_abi: str = ""  # MCUs: "hard" | "soft" | "softfp"
    fpu: str = ""  # MCUs, as gcc's -mfpu: "fpv4-sp-d16", "fpv5-d16", ...

    @property
    def arch(self) -> str:
        return self.triple.split("-", 1)[0]


@dataclass(frozen=True)
class Accelerator:
    kind: str  # one of ACCELERATORS
    arch: str = ""  # "sm_87", "valhall3", ...
    name: str = ""  # human name: "Mali-G610 MP4"
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BackendConfig:
    """How one backend serves this target. `refused` holds the reason when it cannot."""

    name: str
    flags: tuple[str, ...] = ()  # iree: iree-compile flags
    tvm_target: dict = field(default_factory=dict)  # tvm: the Target dict; host part in tvm_host
    tvm_host: dict = field(default_factory=dict)
    driver: str = ""  # runtime driver/device: "local-task", "cuda", "vulkan", "cpu"
    cross_compiler: str = ""  # for export_library on a foreign triple
    refused: str = ""
    options: dict = field(default_factory=dict)  # backend specific, documented by the backend


@dataclass(frozen=True)
class Transport:
    kind: str = "local"  # one of TRANSPORTS
    options: dict = field(default_factory=dict)  # qemu binary/cpu/machine, ssh defaults, ...


@dataclass(frozen=True)
class Board:
    """A concrete board of an MCU target (QEMU machine or real board)."""

    name: str
    ram_kb: int
    flash_kb: int
    ram_origin: int = 0x20000000
    flash_origin: int = 0x00000000
    qemu_machine: str = ""  # "mps2-an386": runs in qemu-system-arm
    flash_command: str = ""  # pyOCD/OpenOCD line, {hex} / {elf} / {bin} substituted
    description: str = ""
    clock_mhz: float = 0  # the core clock: a split's front cost estimate is QEMU instructions over it (0: unknown)
    uart: str = ""  # "cmsdk-apb": UART0 is an Arm CMSDK APB UART at 0x40004000, where a split front sends frames


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    device: str
    kind: str
    cpu: Cpu
    backends: dict[str, BackendConfig]
    default_backend: str
    default_backend_reason: str = ""
    accelerator: Accelerator | None = None
    transport: Transport = Transport()
    ram_kb: int = 0  # 0: not constrained
    flash_kb: int = 0
    boards: dict[str, Board] = field(default_factory=dict)
    default_board: str = ""
    precisions: tuple[str, ...] = ("fp32",)  # the float arithmetic the device does (--precision)
    precision_refused: dict = field(default_factory=dict)  # precision -> why this device cannot do it
    source: str = ""  # the TOML file it came from

    def backend(self, name: str) -> BackendConfig:
        """The config of backend `name`, or a TargetError saying which backends serve this target."""
        if name not in BACKENDS:
            raise TargetError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")
        cfg = self.backends.get(name)
        serving = [b for b, c in self.backends.items() if not c.refused]
        if cfg is None:
            raise TargetError(
                f"backend {name!r} does not serve target {self.name!r}; use one of: {', '.join(serving)}"
            )
        if cfg.refused:
            raise TargetError(f"backend {name!r} refused for target {self.name!r}: {cfg.refused}")
        return cfg

    def check_precision(self, precision: str) -> None:
        """TargetError unless the device does `precision` arithmetic, with the reason the target file gives."""
        if precision not in PRECISIONS:
            raise TargetError(f"unknown precision {precision!r}; one of {', '.join(PRECISIONS)}")
        if precision in self.precision_refused:
            raise TargetError(f"--precision {precision} refused for target {self.name!r}: "
                              f"{self.precision_refused[precision]}")
        if precision not in self.precisions:
            raise TargetError(f"target {self.name!r} does not do {precision} arithmetic; it lists "
                              f"{', '.join(self.precisions)}")

    def board(self, name: str | None = None) -> Board:
        name = name or self.default_board
        if name not in self.boards:
            raise TargetError(
                f"unknown board {name!r} for target {self.name!r}; boards: {', '.join(self.boards) or 'none'}"
            )
        return self.boards[name]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_TOP_KEYS = (
    "name", "description", "device", "kind", "cpu", "accelerator", "backends", "default_backend",
    "default_backend_reason", "transport", "memory", "boards", "default_board", "precisions", "precision_refused",
)
PRECISIONS = ("fp32", "fp16", "bf16")
_BACKEND_KEYS = ("flags", "tvm_target", "tvm_host", "driver", "cross_compiler", "refused", "options")
_BOARD_KEYS = ("ram_kb", "flash_kb", "ram_origin", "flash_origin", "qemu_machine", "flash_command", "description",
               "clock_mhz", "uart")


def parse_target(data: dict, source: str = "<memory>") -> Target:
    """Validate a target table (as read from TOML) and build the frozen Target."""
    where = source
    _check_keys(where, data, _TOP_KEYS)
    for key in ("name", "device", "kind", "cpu", "backends", "default_backend"):
        if key not in data:
            raise TargetError(f"{where}: missing required key {key!r}")
    _check_value(f"{where}: kind", data["kind"], KINDS)
    cpu = _parse_cpu(where, data["cpu"])  # checked in the file's order: cpu, accelerator, backends, transport, ...
    accel = _parse_accelerator(where, data["accelerator"]) if "accelerator" in data else None
    backends = _parse_backends(where, data["backends"])
    default = data["default_backend"]
    _check_value(f"{where}: default_backend", default, tuple(b for b, c in backends.items() if not c.refused))
    transport = _parse_transport(where, data["transport"]) if "transport" in data else Transport()
    mem = data.get("memory", {})
    _check_keys(f"{where} [memory]", mem, ("ram_kb", "flash_kb"))
    boards = _parse_boards(where, data.get("boards", {}))
    default_board = data.get("default_board", next(iter(boards), ""))
    if boards and default_board not in boards:
        raise TargetError(f"{where}: default_board {default_board!r} is not one of {', '.join(boards)}")
    precisions = _str_list(f"{where}: precisions", data.get("precisions", ["fp32"]))
    refused = data.get("precision_refused", {})
    if not isinstance(refused, dict):
        raise TargetError(f"{where}: precision_refused must be a table of precision = \"reason\"")
    for p in (*precisions, *refused):
        _check_value(f"{where}: precision", p, PRECISIONS)
    return Target(
        name=data["name"],
        description=data.get("description", ""),
        device=data["device"],
        kind=data["kind"],
        cpu=cpu,
        accelerator=accel,
        backends=backends,
        default_backend=default,
        default_backend_reason=data.get("default_backend_reason", ""),
        transport=transport,
        ram_kb=int(mem.get("ram_kb", 0)),
        flash_kb=int(mem.get("flash_kb", 0)),
        boards=boards,
        default_board=default_board,
        precisions=precisions,
        precision_refused={k: str(v) for k, v in refused.items()},
        source=source,
    )


def _parse_cpu(where: str, cpu_t: dict) -> Cpu:
    _check_keys(f"{where} [cpu]", cpu_t, ("triple", "cpu", "features", "float_abi", "fpu"))
    if "triple" not in cpu_t:
        raise TargetError(f"{where} [cpu]: missing required key 'triple'")
    cpu = Cpu(triple=cpu_t["triple"], cpu=cpu_t.get("cpu", "generic"),
              features=_str_list(f"{where} [cpu] features", cpu_t.get("features", [])),
              float_abi=cpu_t.get("float_abi", ""), fpu=cpu_t.get("fpu", ""))
    if cpu.float_abi:
        _check_value(f"{where} [cpu] float_abi", cpu.float_abi, ("hard", "soft", "softfp"))
    return cpu


def _parse_accelerator(where: str, a: dict) -> Accelerator:
    _check_keys(f"{where} [accelerator]", a, ("kind", "arch", "name", "options"))
    _check_value(f"{where} [accelerator] kind", a.get("kind"), ACCELERATORS)
    return Accelerator(kind=a["kind"], arch=a.get("arch", ""), name=a.get("name", ""), options=a.get("options", {}))


def _parse_backends(where: str, table: dict) -> dict[str, BackendConfig]:
    backends: dict[str, BackendConfig] = {}
    for bname, b in table.items():
        _check_value(f"{where} [backends]", bname, BACKENDS)
        _check_keys(f"{where} [backends.{bname}]", b, _BACKEND_KEYS)
        backends[bname] = BackendConfig(
            name=bname, flags=_str_list(f"{where} [backends.{bname}] flags", b.get("flags", [])),
            tvm_target=b.get("tvm_target", {}), tvm_host=b.get("tvm_host", {}), driver=b.get("driver", ""),
            cross_compiler=b.get("cross_compiler", ""), refused=b.get("refused", ""), options=b.get("options", {}))
    if not backends:
        raise TargetError(f"{where}: [backends] is empty; a target needs at least one of {', '.join(BACKENDS)}")
    return backends


def _parse_transport(where: str, t: dict) -> Transport:
    _check_keys(f"{where} [transport]", t, ("kind", "options"))
    _check_value(f"{where} [transport] kind", t.get("kind", "local"), TRANSPORTS)
    return Transport(kind=t.get("kind", "local"), options=t.get("options", {}))


def _parse_boards(where: str, table: dict) -> dict[str, Board]:
    boards: dict[str, Board] = {}
    for bname, b in table.items():
        _check_keys(f"{where} [boards.{bname}]", b, _BOARD_KEYS)
        if "ram_kb" not in b or "flash_kb" not in b:
            raise TargetError(f"{where} [boards.{bname}]: a board must state ram_kb and flash_kb")
        if "uart" in b:
            _check_value(f"{where} [boards.{bname}] uart", b["uart"], ("cmsdk-apb",))
        boards[bname] = Board(name=bname, **b)
    return boards


def load_target_file(path: Path) -> Target:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise TargetError(f"{path}: not valid TOML: {e}") from None
    target = parse_target(data, source=str(path))
    if target.name != path.stem:
        raise TargetError(f"{path}: name {target.name!r} must match the file name {path.stem!r}")
    return target
