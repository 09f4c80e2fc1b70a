"""What the CLI writes and shows: files written whole, console tables, progress, one-line notes."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def output_paths(output: str, n: int) -> list[Path]:
    """Where `run -o` puts n outputs: an existing folder (or a name ending in /) gets output_N.npy inside;
    otherwise NAME.npy for one output and NAME_0.npy, NAME_1.npy, ... for several."""
    if output.endswith(("/", "\\")) or Path(output).is_dir():
        return [Path(output) / f"output_{i}.npy" for i in range(n)]
    stem = output[:-4] if output.endswith(".npy") else output
    return [Path(f"{stem}.npy")] if n == 1 else [Path(f"{stem}_{i}.npy") for i in range(n)]


def save_npy(path: Path, array) -> None:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    write(path, buf.getvalue())


def write(path, data: str | bytes) -> None:
    """Write an output file whole (temp file + rename), creating its folder; a one-line error when the place is a
    folder or cannot be written, and no temp file left behind."""
    from edgecc.errors import UsageError

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a file name to write (e.g. {path / 'report.html'})")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)
        tmp.replace(path)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}; choose another path") from None
    finally:
        tmp.unlink(missing_ok=True)


class Progress:
    """A rich progress bar on a terminal; nothing in CI logs or with --quiet."""

    def __init__(self, args, what: str, total: int):
        self.on = not args.quiet and sys.stderr.isatty() and getattr(args, "format", "table") == "table"
        self.what, self.total = what, total

    def __enter__(self):
        if not self.on:
            return lambda desc: None
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(TextColumn("[dim]edgecc:[/dim] {task.description}"), BarColumn(), TimeElapsedColumn(),
                          transient=True)
        self.p.__enter__()
        task = self.p.add_task(self.what, total=self.total)
        first = [True]

        def step(desc):
            if not first[0]:
                self.p.advance(task)
            first[0] = False
            self.p.update(task, description=f"{self.what} {desc}")

        return step

    def __exit__(self, *exc):
        if self.on:
            self.p.__exit__(*exc)
        return False


def table(header, rows) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*header, box=None, pad_edge=False)
    for r in rows:
        table.add_row(*[str(c) for c in r])
    Console(width=160).print(table)


def note(msg: str) -> None:
    """Something the user should know although the command succeeded (stale temp folders removed)."""
    print(f"edgecc: note: {msg}", file=sys.stderr)


def log_for(args):
    # Progress goes to a terminal only: in CI logs and scripts stderr carries just the one-line error.
    if args.quiet or not sys.stderr.isatty():
        return None
    from rich.console import Console

    console = Console(stderr=True)
    return lambda msg: console.print(f"[dim]edgecc:[/dim] {msg}")


