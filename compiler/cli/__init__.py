"""`edgecc`, the command line (see docs/architecture.md): parser.py, main.py, one module per group of commands."""

from edgecc.compiler.cli.main import main
from edgecc.compiler.cli.parser import build_parser

__all__ = ["build_parser", "main"]
