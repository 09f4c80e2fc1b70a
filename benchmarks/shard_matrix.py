"""The repository's own matrix (edgecc.toml) built unsharded and as N shards joined by `edgecc build merge`: are the
summaries the same, and how balanced are the shards? Runs the real CLI; the shards one after another on this
machine (in CI they are N machines), so the figure per shard is its own wall time.

    .venv/bin/python benchmarks/shard_matrix.py --shards 3 --jobs 2 --out build/shard-bench

Prints a Markdown table; the same summary means: the same cells in the same order with the same status, check,
reason, error and size (compile seconds, wall seconds and bundle folders differ by nature).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN_FIELDS = ("compile_seconds", "bundle")
RUN_EXTRA = ("wall_seconds", "node")


def comparable(summary: dict, roots: list[str] = ()) -> list[dict]:
    """The cells without run-dependent fields; each build's output folder (in a failed cell's "work folder kept
    in ..." reason) reads as <output>, since the shards build into folders of their own."""
    out = []
    for c in json.loads(_unrooted(json.dumps(summary), roots))["cells"]:
        c = {k: v for k, v in c.items() if k not in RUN_FIELDS}
        c["extra"] = {k: v for k, v in c.get("extra", {}).items() if k not in RUN_EXTRA}
        out.append(c)
    return out


def _unrooted(text: str, roots) -> str:
    for r in sorted(map(str, roots), key=len, reverse=True):
        text = text.replace(json.dumps(r)[1:-1], "<output>")
    return text


def edgecc(*args) -> tuple[int, float]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "edgecc", "--quiet", *map(str, args)], cwd=REPO, capture_output=True,
                       text=True)
    if r.returncode not in (0, 1):
        sys.exit(f"edgecc {' '.join(map(str, args))} failed: {r.stderr.strip()}")
    return r.returncode, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--config", default="edgecc.toml")
    ap.add_argument("--out", default="build/shard-bench")
    args = ap.parse_args()
    out = Path(args.out).absolute()
    rows = []
    rc, wall = edgecc("build", "--config", args.config, "-j", args.jobs, "-o", out / "whole")
    rows.append(("unsharded", rc, wall, len(json.loads((out / "whole" / "summary.json").read_text())["cells"])))
    for k in range(1, args.shards + 1):
        rc, wall = edgecc("build", "--config", args.config, "-j", args.jobs, "--shard", f"{k}/{args.shards}", "-o",
                          out / f"shard{k}")
        n = len(json.loads((out / f"shard{k}" / "summary.json").read_text())["cells"])
        rows.append((f"shard {k}/{args.shards}", rc, wall, n))
    rc, wall = edgecc("build", "merge", *[out / f"shard{k}" / "summary.json" for k in range(1, args.shards + 1)],
                      "-o", out / "merged")
    rows.append(("merge", rc, wall, len(json.loads((out / "merged" / "summary.json").read_text())["cells"])))
    whole = json.loads((out / "whole" / "summary.json").read_text())
    merged = json.loads((out / "merged" / "summary.json").read_text())
    roots = [out / "whole", *[out / f"shard{k}" for k in range(1, args.shards + 1)]]
    same = comparable(whole, roots) == comparable(merged, roots) and whole["counts"] == merged["counts"]
    print("| run | exit | wall s | cells |\n|---|---|---|---|")
    for name, rc, wall, n in rows:
        print(f"| {name} | {rc} | {wall:.0f} | {n} |")
    print(f"\ncounts unsharded {whole['counts']}, merged {merged['counts']}; same summary: {same}")
    if not same:
        for a, b in zip(comparable(whole, roots), comparable(merged, roots), strict=False):
            if a != b:
                print("differs:", json.dumps(a)[:300], "\n     vs:", json.dumps(b)[:300])
        sys.exit(1)


if __name__ == "__main__":
    main()
