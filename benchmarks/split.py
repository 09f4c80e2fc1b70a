"""Split benchmark: where `edgecc split --at auto` cuts a model across two devices, and what each cut costs.

Compiles the front and back of every block-boundary cut (the cuts auto measures), measures them (a Cortex-M front:
QEMU instructions over the board's clock, an estimate; a host back: p50 wall clock), and prints two Markdown
tables: the breakdown per cut over --link, and the cut auto chooses for each reference link from the same
measurements. --json saves split.json's choice section.

    .venv/bin/python benchmarks/split.py                                   # resnet8, cortex-m4 + host (tvm)
    .venv/bin/python benchmarks/split.py --board NUCLEO-L4R5ZI --cut-dtype int8
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def markdown(doc: dict, seconds: float) -> str:
    from edgecc.compiler.compose.split_doc import breakdown_table

    link = doc["link"]["spec"]
    out = [f"{doc['model']['name']}: front {doc['front']['target']} ({doc['front']['backend']}, board "
           f"{doc['front']['board']}), back {doc['back']['target']} ({doc['back']['backend']}); cut dtype "
           f"{doc['cut']['tensor']['dtype']}; {seconds:.0f} s to measure and build; validation "
           f"{doc['validation']['status']}", "",
           f"| cut | tensor | bytes on the wire | front ms (estimate) | link ms ({link}) | back ms | total ms |",
           "|---|---|---:|---:|---:|---:|---:|"]
    out += ["| " + " | ".join(map(str, r)) + " |" for r in breakdown_table(doc)]
    out += ["", "| link | auto's cut |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in doc["choice"]["by_link"].items()]
    return "\n".join(out)


def main(argv=None) -> int:
    import edgecc

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet8")
    p.add_argument("--targets", default="cortex-m4,host")
    p.add_argument("--backends", default="micro,tvm")
    p.add_argument("--board", default="")
    p.add_argument("--link", default="uart:921600")
    p.add_argument("--cut-dtype", default="float32", choices=["float32", "int8"])
    p.add_argument("--json")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="edgecc-split-bench-") as tmp:
        t0 = time.perf_counter()
        s = edgecc.split(a.model, targets=a.targets, backends=a.backends, board=a.board, link=a.link,
                         cut_dtype=a.cut_dtype, output=Path(tmp) / "split", log=lambda m: print(m, file=sys.stderr))
        print(markdown(s.doc, time.perf_counter() - t0))
        if a.json:
            Path(a.json).write_text(json.dumps(s.doc["choice"], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
