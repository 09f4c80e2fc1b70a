"""One exception root. Every message says what was wrong and what to do; the CLI prints it as one line."""

from __future__ import annotations


class EdgeccError(Exception):
    """Root of every error edgecc raises on purpose. `exit_code` is what the CLI exits with."""

    exit_code = 1


class UsageError(EdgeccError):
    """A command-line value out of range or malformed (a count, a name, a path): exit 2, like argparse's own."""

    exit_code = 2


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM. A KeyboardInterrupt, so no `except Exception` turns it into a model or tool error; temp
    folders are removed on the way out and child processes are killed. The CLI exits 128 + the signal number."""

    def __init__(self, signum: int):
        import signal

        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


class TargetError(EdgeccError):
    """Unknown target, backend or board, a backend that does not serve a target, a malformed target file."""

    exit_code = 3


class ModelError(EdgeccError):
    """The model source cannot be loaded: missing file, not a model, factory raising, wrong input."""

    exit_code = 4


class UnsupportedOpError(EdgeccError):
    """An op the backend cannot lower. Names the op and the backend, and suggests another backend."""

    exit_code = 5

    def __init__(self, op: str, backend: str, suggestion: str = "", detail: str = ""):
        self.op, self.backend, self.detail = op, backend, detail
        msg = f"backend {backend!r} cannot lower op {op}"
        if detail:
            msg += f" ({detail})"
        if suggestion:
            msg += f"; {suggestion}"
        super().__init__(msg)


class ToolError(EdgeccError):
    """An external tool failed or is missing. Holds argv, exit code, stderr tail and a one-line repro."""

    exit_code = 6

    def __init__(self, message: str, argv: list[str] | None = None, returncode: int | None = None,
                 stderr: str = "", repro: str = ""):
        self.argv, self.returncode, self.stderr, self.repro = argv, returncode, stderr, repro
        super().__init__(message)


class ValidationError(EdgeccError):
    """The compiled artifact does not compute what the reference (PyTorch / ONNX Runtime) computes."""

    exit_code = 7


class BundleError(EdgeccError):
    """A bundle is missing, incomplete or tampered with."""

    exit_code = 8


class BudgetError(EdgeccError):
    """The model does not fit the target's memory budget (RAM/flash)."""

    exit_code = 9


class MissingPackageError(EdgeccError):
    """A heavy toolchain package is not installed; the message names the pip package."""

    exit_code = 10

    def __init__(self, module: str, package: str, purpose: str):
        super().__init__(f"{purpose} needs the Python package {package!r} (import {module!r} failed); "
                         f"install it with: pip install {package}")


def first_line(e: BaseException, limit: int = 400) -> str:
    """The first line of an exception's message (its type name when it has none), cut to `limit` characters: what a
    one-line error quotes of a tool's or a library's exception."""
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:limit]


def require(module: str, package: str, purpose: str):
    """Import `module` lazily, or raise MissingPackageError naming the pip package to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingPackageError(module, package, purpose) from None


class ReportError(EdgeccError):
    """A benchmark report that cannot be read or compared: not JSON, not edgecc's schema, no runs, or samples that
    are empty, negative or not finite."""

    exit_code = 15


class RegressionError(EdgeccError):
    """`edgecc report compare`: the new report is slower, less accurate or missing runs beyond the gate."""

    exit_code = 16


class CannotRunHere(EdgeccError):
    """The artifact cannot run on this machine (needs a GPU, a board, an emulator). Not a failure of the
    artifact: reports say "not run: <reason>" instead of a number."""

    exit_code = 11


class DeviceError(EdgeccError):
    """A remote device could not be reached, dropped or hung, or the bundle could not be copied to it."""

    exit_code = 12


class DeviceInstallError(EdgeccError):
    """The bundle's runtime could not be installed on the device (pip in the device venv failed)."""

    exit_code = 13


class DeviceRunError(EdgeccError):
    """The bundle was copied and its runtime installed, but running it on the device failed."""

    exit_code = 14
