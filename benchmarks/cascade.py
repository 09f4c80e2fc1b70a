"""Cascade and search benchmark: the digits little/big cascade on Cortex-M4 (QEMU) and on the host (IREE), and
`edgecc search` for a board, printed as the Markdown tables docs/cascade.md and the README keep.

For each target it builds the cascade (auto threshold on digits' calibration split), then reports the curve at a
few thresholds, each model alone, the chosen threshold (expected cost) and the measured run over the 360 test
images (one QEMU boot for Cortex-M: per-image instructions; host: per-image wall clock, fastest of 3 passes).

    .venv/bin/python benchmarks/cascade.py                       # cortex-m4 and host/iree, then search NUCLEO-L4R5ZI
    .venv/bin/python benchmarks/cascade.py --targets cortex-m4 --no-search
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

SHOWN = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


def cascade_tables(doc: dict, seconds: float) -> str:
    c, t, m = doc["costs"], doc["threshold"], doc["measured"]
    unit = c["unit"]
    fmt = (lambda v: f"{v:,.0f}") if unit == "instructions" else (lambda v: f"{v:.4f}")  # noqa: E731
    out = [f"{doc['models']['little']['name']} -> {doc['models']['big']['name']} on {doc['target']['name']} "
           f"({doc['target']['backend']}); {c['method']}; built and measured in {seconds:.0f} s", "",
           f"| threshold ({doc['policy']['name']}) | top-1 (calibration) | to big | expected {unit} |",
           "|---|---:|---:|---:|",
           f"| little alone | {doc['calibration']['little_only']['accuracy']:.2%} | 0% | {fmt(c['little'])} |"]
    for r in doc["calibration"]["curve"]:
        if r["threshold"] in SHOWN or r["threshold"] == t["value"]:
            tag = " (auto)" if r["threshold"] == t["value"] else ""
            out.append(f"| {r['threshold']:g}{tag} | {r['accuracy']:.2%} | {r['to_big']:.1%} | "
                       f"{fmt(r['expected_cost'])} |")
    out.append(f"| big alone | {doc['calibration']['big_only']['accuracy']:.2%} | 100% (little not run) | "
               f"{fmt(c['big'])} |")
    if m.get("status") == "ok":
        out += ["", f"Measured on the {m['samples']} test images ({m['ran_on']}): top-1 {m['accuracy']:.2%} (big "
                f"alone {m['alone_accuracy']['big']:.2%}, little alone {m['alone_accuracy']['little']:.2%}), "
                f"{m['to_big']:.1%} sent to big, mean {fmt(m['mean_cost'])} {unit} per image vs expected "
                f"{fmt(m['expected_cost'])} and big alone {fmt(m['big_alone_cost'])}: "
                f"{m['saving_vs_big_measured']:.1%} measured / {m['saving_vs_big_expected']:.1%} expected below "
                f"big alone; agreement with the PyTorch cascade {m['agreement_with_pytorch_cascade']:.0%}."]
    if doc["memory"]:
        mem = doc["memory"]
        out += ["", f"Firmware: flash {mem['flash_bytes']:,} B, RAM {mem['ram_bytes']:,} B; one arena of "
                f"{mem['arena_bytes']:,} B (little {mem['arena_little_bytes']:,}, big {mem['arena_big_bytes']:,})."]
    return "\n".join(out)


def search_table(doc: dict, seconds: float) -> str:
    out = [f"search on {doc['target']} within {doc['budget']['source']} (measured on {doc['measured_on']}, "
           f"{doc['epochs']} epochs each; {seconds:.0f} s)", "",
           "| candidate | top-1 calibration | top-1 test | instructions | RAM B | flash B | front |",
           "|---|---:|---:|---:|---:|---:|---|"]
    for r in doc["candidates"]:
        if r["status"] != "ok":
            out.append(f"| {r['name']} | {r['status']} | | | | | |")
            continue
        front = ", ".join(n for n, f in (("instr", doc["front_instructions"]), ("RAM", doc["front_ram"]))
                          if r["name"] in f)
        name = r["name"] + (" **(chosen)**" if r["name"] == doc["chosen"]["name"] else "")
        out.append(f"| {name} | {r['val_accuracy']:.2%} | {r['test_accuracy']:.2%} | {r['instructions']:,} | "
                   f"{r['ram_bytes']:,} | {r['flash_bytes']:,} | {front} |")
    if "cascade" in doc:
        p = doc["cascade"]["chosen"]
        out += ["", f"Pair: {p['little']} -> {p['big']}, threshold {p['threshold']:g}, top-1 {p['val_accuracy']:.2%}, "
                f"{p['to_big']:.1%} to big, {p['expected_instructions']:,.0f} expected instructions "
                f"({p['saving_vs_big']:.1%} below big alone); RAM {p['ram_bytes']:,} B, flash {p['flash_bytes']:,} B"]
    return "\n".join(out)


def main(argv=None) -> int:
    import edgecc
    from edgecc.compiler.compose.search import search

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="cortex-m4,host")
    ap.add_argument("--board", default="NUCLEO-L4R5ZI", help="search budget board")
    ap.add_argument("--no-search", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="edgecc-bench-cascade-") as tmp:
        for target in args.targets.split(","):
            t0 = time.perf_counter()
            c = edgecc.cascade("digits-little", "digits-big", target=target,
                               backend="iree" if target == "host" else None, output=Path(tmp) / target)
            print(cascade_tables(c.doc, time.perf_counter() - t0), end="\n\n")
        if not args.no_search:
            t0 = time.perf_counter()
            _, doc = search(board=args.board, cascade=True, output=Path(tmp) / "search",
                            results=Path(tmp) / "search.jsonl", log=lambda m: print(m, file=sys.stderr))
            print(search_table(doc, time.perf_counter() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
