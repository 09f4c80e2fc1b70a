"""Which runner a bundle gets on this machine: a dict keyed by (backend, transport), filled by `@register_runner`,
and `runner_for(bundle)`, which reads the manifest only (no backend is imported: a bundle runs with the runtime
alone).

A transport here is how the artifact is reached from this machine:

    local            in this process, on this CPU or a GPU here (IREE, TVM)
    qemu-user        the aarch64 tools under qemu-aarch64 (IREE, TVM)
    qemu-system-arm  Cortex-M firmware in qemu-system-arm (micro)
    check-variant    the bundle's second build for a driver here, e.g. Vulkan on Mesa lavapipe (IREE)
    onnx-check       model.onnx under ONNX Runtime, the numerics of what TensorRT parses (tensorrt)

The runner modules register themselves when imported; edgecc.runtime.runners imports them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from edgecc.errors import BundleError, CannotRunHere, EdgeccError, TargetError

_RUNNERS: dict[tuple[str, str], Callable] = {}


def register_runner(backend: str, transport: str):
    """Class decorator: `@register_runner("iree", "local") class IreeLocalRunner: ...`."""

    def wrap(cls):
        key = (backend, transport)
        if key in _RUNNERS and _RUNNERS[key] is not cls:
            raise RuntimeError(f"runner for {backend} over {transport} registered twice ({_RUNNERS[key]} and {cls})")
        _RUNNERS[key] = cls
        return cls

    return wrap


def runner_for(bundle):
    """The runner for this bundle on this machine (raises CannotRunHere with the reason if none)."""
    choose = _CHOOSERS.get(bundle.backend)
    if choose is None:
        raise TargetError(f"unknown backend {bundle.backend!r}; known backends: {', '.join(_CHOOSERS)}")

    def make(transport: str, *args, **kwargs):
        return _RUNNERS[(bundle.backend, transport)](*args, **kwargs)

    return choose(bundle, make)


def _iree(bundle, make):
    """The host CPU, qemu-aarch64, or a Vulkan check variant on lavapipe."""
    info, target = bundle.manifest["artifact"]["info"], bundle.manifest["target"]
    arch = target["triple"].split("-")[0]
    if info["driver"] in ("local-task", "local-sync"):
        if arch == "x86_64":
            return make("local", bundle)
        if arch == "aarch64":
            return make("qemu-user", bundle)
        raise CannotRunHere(f"no emulator for {target['triple']} here")
    if info["driver"] == "cuda" and arch == "x86_64" and _iree_device_exists("cuda"):
        return make("local", bundle)  # a CUDA GPU on this machine (tests/device)
    variant = info.get("check_variant")
    if variant:
        runner = make("check-variant", bundle, bundle.path / variant["file"], variant["driver"],
                      where=variant["device"] or variant["driver"])
        accel = target.get("accelerator") or {}
        runner.note = (f"checked: {variant['file']}; {bundle.manifest['artifact']['entry']} "
                       f"({accel.get('arch', '')}) numerics not checked: needs {accel.get('name') or 'the device'}")
        return runner
    accel = target.get("accelerator") or {}
    raise CannotRunHere(f"needs {accel.get('name') or accel.get('arch') or info['driver']} "
                        f"({info['driver']} device)")


def _iree_device_exists(driver: str) -> bool:
    """Whether this machine's IREE runtime sees a device of that driver (e.g. a CUDA GPU); no IREE tools: no."""
    from edgecc.runtime.runners.local import iree_device_available

    try:
        return iree_device_available(driver)
    except EdgeccError:
        return False


def _tvm(bundle, make):
    """x86-64 CPU bundles run here; aarch64 CPU bundles run their native runner under qemu-aarch64; GPU bundles
    need their device."""
    info, target = bundle.manifest["artifact"]["info"], bundle.manifest["target"]
    device, arch = info.get("device", "cpu"), target["triple"].split("-")[0]
    if device == "cpu" and arch == "x86_64":
        return make("local", bundle)
    if device == "cpu" and arch == "aarch64":
        return make("qemu-user", bundle)
    if device == "cpu":
        raise CannotRunHere(f"needs a device running {target['triple']} (no emulator for {arch} here)")
    if device == "cuda" and arch == "x86_64":
        try:
            return make("local", bundle, device="cuda")  # a CUDA GPU on this machine (tests/device)
        except CannotRunHere:
            pass
    accel = target.get("accelerator") or {}
    raise CannotRunHere(f"needs {accel.get('name') or accel.get('arch') or device} ({device} device)")


def _micro(bundle, make):
    """Boards with a QEMU machine run in qemu-system-arm; the others are flashed."""
    info = bundle.manifest["artifact"]["info"]
    machine = info.get("qemu_machine")
    if machine and not (isinstance(machine, str) and re.fullmatch(r"[a-z0-9][a-z0-9.-]*", machine)):
        raise BundleError(f"bundle {bundle.path.name}: qemu_machine {machine!r} is not a QEMU machine name (the "
                          "manifest was edited?); recompile the bundle")
    if not info.get("qemu_machine"):
        raise CannotRunHere(f"board {info['board']} is real hardware and cannot run here; flash it with: "
                            f"{info.get('flash_command') or '(no flash command in the target file)'}")
    return make("qemu-system-arm", Path(bundle.path) / "firmware.elf", info["qemu_machine"], info["io"],
                output_format=info.get("output_format", "raw"))


def _tensorrt(bundle, make):
    """model.onnx under ONNX Runtime on this CPU: the numerics of what TensorRT will parse, not the engine."""
    return make("onnx-check", bundle)


# in the order `compiler.backends` lists them, so the unknown-backend message reads as it always has
_CHOOSERS = {"iree": _iree, "tvm": _tvm, "micro": _micro, "tensorrt": _tensorrt}
