"""Cortex-M benchmark: MLPerf-Tiny-class models on cortex-m4 / m7 / m55 in QEMU, both kernel codegens.

For each model x target x codegen: compile with the micro backend (validated against PyTorch), run the
firmware in qemu-system-arm, and report instructions per inference (QEMU icount: instructions, not time),
the arena against its lower bound, flash and RAM from the ELF. Prints a Markdown table; --json saves rows.

    .venv/bin/python benchmarks/cortexm.py                       # all 3 models x 3 targets x {c, llvm}
    .venv/bin/python benchmarks/cortexm.py --models ds-cnn --targets cortex-m4 --codegens c
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("cifar-cnn", "resnet8", "ds-cnn")
TARGETS = ("cortex-m4", "cortex-m7", "cortex-m55")
CODEGENS = ("c", "llvm")


def measure(model: str, target: str, codegen: str, root: Path, iters: int) -> dict:
    import edgecc

    t0 = time.perf_counter()
    bundle = edgecc.compile(model, target=target, backend="micro", output=root / f"{model}-{target}-{codegen}",
                            options={"codegen": codegen})
    compile_s = time.perf_counter() - t0
    info = bundle.manifest["artifact"]["info"]
    mem = info["memory"]
    timing = bundle.runner().time(bundle.reference_inputs(), warmup=1, iters=iters)
    samples = timing["samples"]
    return {
        "model": model, "target": target, "board": info["board"], "codegen": codegen,
        "instructions": min(samples), "samples": samples, "unit": timing["unit"], "method": timing["method"],
        "arena_bytes": mem["arena_bytes"], "arena_lower_bound_bytes": mem["arena_lower_bound_bytes"],
        "weights_bytes": mem["weights_bytes"], "flash_bytes": mem["flash_bytes"], "ram_bytes": mem["ram_bytes"],
        "max_abs_error": bundle.manifest["validation"].get("max_abs_error"), "compile_s": round(compile_s, 1),
    }


def markdown(rows: list[dict]) -> str:
    kb = lambda n: f"{n / 1024:.1f}"  # noqa: E731
    best = {}
    for r in rows:
        key = (r["model"], r["target"])
        best[key] = min(best.get(key, r["instructions"]), r["instructions"])
    out = ["| model | target (QEMU board) | codegen | instructions / inference | arena KB (lower bound) | "
           "flash KB | RAM KB | max abs err vs PyTorch |",
           "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        mark = " **(fewest)**" if r["instructions"] == best[(r["model"], r["target"])] else ""
        out.append(f"| {r['model']} | {r['target']} ({r['board']}) | {r['codegen']} | {r['instructions']:,}{mark} | "
                   f"{kb(r['arena_bytes'])} ({kb(r['arena_lower_bound_bytes'])}) | {kb(r['flash_bytes'])} | "
                   f"{kb(r['ram_bytes'])} | {r['max_abs_error']:.1e} |")
    out.append("")
    out.append("Instructions are QEMU `-icount shift=0` counts of one inference (min of the samples; they are "
               "deterministic), not cycles or time. Flash = text + rodata + .data image; RAM = .data + .bss "
               "(arena, harness I/O buffers) + 8 KB stack, read from the ELF.")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--targets", nargs="+", default=list(TARGETS))
    p.add_argument("--codegens", nargs="+", default=list(CODEGENS), choices=CODEGENS)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--json", type=Path, help="also write the rows (with raw samples) here")
    p.add_argument("--keep", type=Path, help="keep the bundles in this folder")
    a = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecc-cortexm-") as tmp:
        root = a.keep or Path(tmp)
        for model in a.models:
            for target in a.targets:
                for codegen in a.codegens:
                    rows.append(measure(model, target, codegen, root, a.iters))
                    print(f"{model} {target} {codegen}: {rows[-1]['instructions']:,} instructions", file=sys.stderr)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
