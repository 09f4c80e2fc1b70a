"""Cortex-M benchmark: MLPerf-Tiny-class models on cortex-m4 / m7 / m55 in QEMU, both kernel codegens.

For each model x target x codegen: compile with the micro backend (validated against PyTorch), run the
firmware in qemu-system-arm, and report instructions per inference (QEMU icount: instructions, not time),
the arena against its lower bound, flash and RAM from the ELF. Prints a Markdown table; --json saves rows.

    .venv/bin/python benchmarks/cortexm.py                       # all 3 models x 3 targets x {c, llvm}
    .venv/bin/python benchmarks/cortexm.py --models ds-cnn --targets cortex-m4 --codegens c
    .venv/bin/python benchmarks/cortexm.py --precisions fp32 int8 --codegens c   # int8 rows beside fp32
    .venv/bin/python benchmarks/cortexm.py --precisions int8 --plans inplace tensor   # both int8 arena plans

int8 rows (--precisions int8) are `--quantize int8` bundles (edgecc's int8 C kernels; codegen does not apply).
They are calibrated on the model's dataset where it has one (digits-cnn: `digits`, and its top-1 accuracy on the
360 held-out images is measured on the M4 in QEMU); otherwise on 64 seeded random-normal samples saved as .npy
(resnet8 and ds-cnn have no real dataset here: footprint and instructions only, accuracy "not measured").
int8 plans (--plans): `inplace` (the default: residual adds fused into their conv, outputs written over dying
inputs) and `tensor` (`--option inplace=0`: one buffer per tensor); each int8 row also shows the tensor-level
arena its compile computed beside its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("cifar-cnn", "resnet8", "ds-cnn")
PRECISIONS = ("fp32", "int8")
TARGETS = ("cortex-m4", "cortex-m7", "cortex-m55")
CODEGENS = ("c", "llvm")
PLANS = {"inplace": "1", "tensor": "0"}  # int8 arena plan -> --option inplace=


def measure(model: str, target: str, codegen: str, root: Path, iters: int, precision: str = "fp32",
            plan: str = "inplace") -> dict:
    import edgecc

    kw, options = {}, {"codegen": codegen}
    if precision == "int8":
        kw = {"quantize": "int8", "calibration": _calibration(model, root)}
        options["inplace"] = PLANS[plan]
    t0 = time.perf_counter()
    name = codegen if precision == "fp32" else f"{precision}-{plan}"
    bundle = edgecc.compile(model, target=target, backend="micro", output=root / f"{model}-{target}-{name}",
                            options=options, **kw)
    compile_s = time.perf_counter() - t0
    info = bundle.manifest["artifact"]["info"]
    mem = info["memory"]
    timing = bundle.runner().time(bundle.reference_inputs(), warmup=1, iters=iters)
    samples = timing["samples"]
    q = bundle.manifest.get("quantization", {})
    acc = q.get("accuracy") if isinstance(q.get("accuracy"), dict) else None
    return {
        "model": model, "target": target, "board": info["board"], "precision": precision,
        "codegen": codegen if precision == "fp32" else f"int8 C kernels, {plan} plan",
        "instructions": min(samples), "samples": samples, "unit": timing["unit"], "method": timing["method"],
        "arena_bytes": mem["arena_bytes"], "arena_lower_bound_bytes": mem["arena_lower_bound_bytes"],
        "tensor_level_arena_bytes": mem.get("tensor_level_arena_bytes"),
        "weights_bytes": mem["weights_bytes"], "flash_bytes": mem["flash_bytes"], "ram_bytes": mem["ram_bytes"],
        "max_abs_error": bundle.manifest["validation"].get("max_abs_error"), "compile_s": round(compile_s, 1),
        "reference": bundle.manifest["validation"].get("reference"),
        "accuracy": acc,
    }


def _calibration(model: str, root: Path) -> str:
    import numpy as np
    import torch

    from edgecc.models import get_model

    spec = get_model(model)
    if spec.dataset:
        return spec.dataset
    folder = root / f"calibration-{model}"
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(3)
    np.save(folder / "samples.npy", torch.randn(64, *spec.input_shapes[0][1:], generator=gen).numpy())
    return str(folder)


def markdown(rows: list[dict]) -> str:
    kb = lambda n: f"{n / 1024:.1f}"  # noqa: E731
    best = {}
    for r in rows:
        key = (r["model"], r["target"])
        best[key] = min(best.get(key, r["instructions"]), r["instructions"])
    out = ["| model | target (QEMU board) | precision | codegen | instructions / inference | weights KB | "
           "arena KB (lower bound) | tensor-level arena KB | flash KB | RAM KB | max abs err vs reference | "
           "top-1 (held-out, on target) |",
           "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        mark = " **(fewest)**" if r["instructions"] == best[(r["model"], r["target"])] else ""
        a = r.get("accuracy")
        acc = (f"{a['int8_artifact']:.2%} (fp32 {a['fp32_pytorch']:.2%})" if a else "not measured: no dataset")
        out.append(f"| {r['model']} | {r['target']} ({r['board']}) | {r.get('precision', 'fp32')} | {r['codegen']} | "
                   f"{r['instructions']:,}{mark} | {kb(r['weights_bytes'])} | "
                   f"{kb(r['arena_bytes'])} ({kb(r['arena_lower_bound_bytes'])}) | "
                   f"{kb(r['tensor_level_arena_bytes']) if r.get('tensor_level_arena_bytes') else '-'} | "
                   f"{kb(r['flash_bytes'])} | "
                   f"{kb(r['ram_bytes'])} | {r['max_abs_error']:.1e} | {acc} |")
    out.append("")
    out.append("Instructions are QEMU `-icount shift=0` counts of one inference (min of the samples; they are "
               "deterministic), not cycles or time. Flash = text + rodata + .data image; RAM = .data + .bss "
               "(arena, harness I/O buffers) + 8 KB stack, read from the ELF. fp32 rows are checked against PyTorch, "
               "int8 rows bit for bit against the numpy int8 reference (TFLite arithmetic, run_int8). Tensor-level "
               "arena: one buffer per tensor, every add its own kernel (int8 rows; `--option inplace=0` builds it).")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--targets", nargs="+", default=list(TARGETS))
    p.add_argument("--codegens", nargs="+", default=list(CODEGENS), choices=CODEGENS)
    p.add_argument("--precisions", nargs="+", default=["fp32"], choices=PRECISIONS)
    p.add_argument("--plans", nargs="+", default=["inplace"], choices=list(PLANS), help="int8 arena plans")
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--json", type=Path, help="also write the rows (with raw samples) here")
    p.add_argument("--keep", type=Path, help="keep the bundles in this folder")
    a = p.parse_args(argv)
    from edgecc.errors import BudgetError

    rows, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="edgecc-cortexm-") as tmp:
        root = a.keep or Path(tmp)
        for model in a.models:
            for target in a.targets:
                for precision in a.precisions:
                    runs = ([(c, "inplace") for c in a.codegens] if precision == "fp32" else
                            [(a.codegens[0], plan) for plan in a.plans])
                    for codegen, plan in runs:
                        try:
                            rows.append(measure(model, target, codegen, root, a.iters, precision, plan))
                        except BudgetError as e:  # the model does not fit the board: a row that says so
                            skipped.append(f"{model} {target} {precision} {codegen}: does not fit ({e})")
                            print(skipped[-1], file=sys.stderr)
                            continue
                        print(f"{model} {target} {precision} {rows[-1]['codegen']}: "
                              f"{rows[-1]['instructions']:,} instructions", file=sys.stderr)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    print(markdown(rows))
    print("".join(f"\n- not run: {line}" for line in skipped))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
