"""`edgecc deploy BUNDLE --device ...`: put a bundle where it runs, check one inference against the reference
output, and say where the artifact now lives. Scripts read the exit code: 12 copy / unreachable, 13 install,
14 run, 7 mismatch, 11 a tool or probe is missing here.

    deploy(Bundle.load("build/resnet8-orangepi5-cpu-iree"), parse_device("ssh://pi@board"), SshOptions())
"""

from __future__ import annotations

import shlex
import shutil
import subprocess

import numpy as np

from edgecc.errors import CannotRunHere, DeviceRunError, TargetError, ValidationError
from edgecc.runtime.devices import Device, SshOptions, check_local_device


def deploy(bundle, device: Device, options: SshOptions | None = None, timeout: float = 900, log=None) -> dict:
    if device.kind == "ssh":
        from edgecc.runtime.ssh import deploy_ssh

        return deploy_ssh(bundle, device, options or SshOptions(), timeout=timeout, log=log)
    if device.kind in ("host", "qemu"):
        check_local_device(bundle, device)
        return _run_here(bundle, device)
    if device.kind == "board":
        return flash_board(bundle, device, timeout)
    raise TargetError(f"`edgecc deploy` does not deploy to {device.text}: an RPC device farm gets the artifact "
                      "per benchmark (`edgecc bench --device rpc://...`)")


def _run_here(bundle, device: Device) -> dict:
    """host: the bundle already lives here; qemu: boot the firmware / run the aarch64 tools in the emulator."""
    runner = bundle.runner()
    outputs = runner.run(bundle.reference_inputs())
    err = compare_outputs(bundle, outputs)
    return {"device": device.text, "where": runner.where,
            "location": str(bundle.artifact().resolve()), "max_abs_error": err}


def compare_outputs(bundle, outputs) -> float:
    """Max abs error vs the bundle's reference outputs; ValidationError beyond the manifest's tolerance (and on
    NaN/inf where the reference has none, or the other way round)."""
    from edgecc.validate import compare

    tol = bundle.manifest["validation"].get("tolerance") or {"atol": 1e-4, "rtol": 1e-3}
    result = compare([np.asarray(o) for o in outputs], bundle.reference_outputs(), "the reference", False, tol)
    if not result.passed:
        raise ValidationError(f"the device's output differs from the reference: {result.detail} "
                              f"(atol {tol['atol']}, rtol {tol['rtol']})")
    return result.max_abs_error


def installed_flash_command(bundle, board: str) -> str:
    """The board's flash command from the target files installed with edgecc, never from the bundle: a manifest
    is data, and an edited one must not choose what runs here."""
    from edgecc.targets import list_targets

    name = bundle.manifest["target"].get("name", "")
    target = list_targets().get(name)
    if target is None:
        raise TargetError(f"bundle {bundle.path.name} is for target {name!r}, which is not an installed target; "
                          "edgecc flashes only boards of installed targets (put the target file in targets/), or "
                          "flash firmware.hex with your own tool")
    try:
        spec = target.board(board or None)
    except TargetError:
        raise TargetError(f"board {board!r} of bundle {bundle.path.name} is not a board of the installed target "
                          f"{name}; recompile with one of its boards (`edgecc targets show {name}`)") from None
    return spec.flash_command.format(hex="firmware.hex", elf="firmware.elf", bin="firmware.bin")


def flash_board(bundle, device: Device, timeout: float) -> dict:
    """Run the bundle's flash command (pyOCD / OpenOCD) when the tool and a probe are here; otherwise say
    exactly what is missing. Flashing is checked by the tool itself (verify); outputs come over the board's
    own channel, so no comparison is made here."""
    info = bundle.manifest["artifact"]["info"]
    board = str(info.get("board", "") or bundle.manifest.get("options", {}).get("board", ""))
    if device.key and board and device.key != board:
        raise TargetError(f"bundle {bundle.path.name} was built for board {board}, not {device.key}; recompile "
                          f"with --board {device.key}")
    cmd = installed_flash_command(bundle, board)
    if not cmd:
        raise CannotRunHere(f"not flashed: board {board or '(none)'} has no flash command in its target file; "
                            "add flash_command to the board in targets/*.toml, or use --device qemu")
    argv = shlex.split(cmd)
    tool = argv[0]
    if not shutil.which(tool):
        pkg = {"pyocd": "pip install pyocd", "openocd": "apt-get install openocd"}.get(tool, f"install {tool}")
        raise CannotRunHere(f"not flashed: {tool} is not installed ({pkg}) and a debug probe must be connected "
                            f"to the {board} board; then run: cd {bundle.path} && {cmd}")
    if tool == "pyocd":
        probes = subprocess.run(["pyocd", "list"], capture_output=True, text=True, timeout=60).stdout
        if "No available debug probes" in probes or not probes.strip():
            raise CannotRunHere(f"not flashed: pyocd found no debug probe; connect the {board} board's probe "
                                f"(USB) and run: cd {bundle.path} && {cmd}")
    proc = subprocess.run(argv, cwd=bundle.path, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip() or "(no output)").splitlines()[-1]
        raise DeviceRunError(f"flashing failed ({cmd} exited {proc.returncode}): {tail}")
    return {"device": device.text, "location": f"{board} flash", "flashed_with": cmd}
