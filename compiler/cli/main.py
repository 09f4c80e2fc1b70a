"""The `edgecc` command line. Errors print one line on stderr and exit with the code of their class (see
`edgecc --help`); `--debug` shows the traceback. Each command is a function in commands.py / device_commands.py."""

from __future__ import annotations

import signal
import sys

from edgecc.compiler.cli.cascade_command import cmd_cascade
from edgecc.compiler.cli.commands import cmd_build, cmd_compile, cmd_models, cmd_run, cmd_targets, cmd_tune, cmd_verify
from edgecc.compiler.cli.device_commands import cmd_bench, cmd_deploy, cmd_report, cmd_trtexec_report
from edgecc.compiler.cli.parser import build_parser
from edgecc.compiler.cli.search_command import cmd_search
from edgecc.compiler.cli.split_command import cmd_split
from edgecc.compiler.cli.squeeze_commands import cmd_profile
from edgecc.errors import EdgeccError, first_line


def main(argv=None) -> int:
    import warnings

    # torch's export machinery warns about its own internals (pytree LeafSpec); users cannot act on it.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(torch|copyreg)")
    # numpy's floating-point warnings (NaN/inf in a user's outputs or samples) are not edgecc's messages: the checks
    # that see those values say what is wrong in their own one line
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"numpy")
    args = build_parser().parse_args(argv)
    _stop_on(signal.SIGTERM)
    try:
        return COMMANDS[args.cmd](args)
    except EdgeccError as e:
        if args.debug:
            raise
        print(f"edgecc: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:  # SIGINT, or SIGTERM as Interrupted: staging removed its temp folder
        print(f"edgecc: {e or 'interrupted'}; nothing was written", file=sys.stderr)
        return getattr(e, "exit_code", 130)
    except Exception as e:  # a bug in edgecc or a tool: still one line, the traceback behind --debug
        if args.debug:
            raise
        print(f"edgecc: internal error: {type(e).__name__}: {first_line(e) if str(e).strip() else ''} (rerun with "
              "--debug for the traceback)", file=sys.stderr)
        return 1


def _stop_on(signum) -> None:
    """SIGTERM unwinds like SIGINT: temp folders are removed and running tools killed on the way out."""
    from edgecc.errors import Interrupted

    def stop(sig, frame):
        signal.signal(sig, signal.SIG_IGN)  # once: the cleanup itself is not interrupted again
        raise Interrupted(sig)

    try:
        signal.signal(signum, stop)
    except ValueError:  # not the main thread (main() called from a thread): keep the default
        pass


COMMANDS = {"compile": cmd_compile, "build": cmd_build, "tune": cmd_tune, "targets": cmd_targets, "models": cmd_models,
            "verify": cmd_verify, "run": cmd_run, "bench": cmd_bench, "deploy": cmd_deploy, "report": cmd_report,
            "trtexec-report": cmd_trtexec_report, "split": cmd_split,
            "profile": cmd_profile, "cascade": cmd_cascade, "search": cmd_search}
