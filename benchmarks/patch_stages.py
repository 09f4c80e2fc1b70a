"""Patch-based first stages (`--option patch_stages=N`, MCUNetV2) on a Cortex-M in QEMU: peak RAM against the
tensor-level plan, recomputed MACs and instructions per inference, int8.

For each model and N (0 = unpatched): compile with `--quantize int8` for the target (the compile itself checks
the firmware bit for bit against the numpy int8 reference on the example input, in qemu-system-arm), then time one
inference in QEMU (`-icount shift=0`: instructions, not time). Calibration: 64 seeded random-normal samples
(footprint and instructions only; no accuracy is claimed). Prints a Markdown table; --json saves the rows.

    .venv/bin/python benchmarks/patch_stages.py                                   # mobilenetv2-mcu, N in 0 6 10 13
    .venv/bin/python benchmarks/patch_stages.py --models resnet8 --stages 0 4 8 --targets cortex-m4 cortex-m7
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

DEFAULT_STAGES = {"mobilenetv2-mcu": [0, 6, 10, 13], "resnet8": [0, 4, 8], "vww-mobilenetv1": [0, 3, 7, 9]}


def measure(model: str, target: str, n: int, grid: str | None, root: Path, iters: int) -> dict:
    import edgecc
    from edgecc.errors import BudgetError

    options = {"patch_stages": n, **({"patch_grid": grid} if grid else {})} if n else {}
    try:
        bundle = edgecc.compile(model, target=target, backend="micro", quantize="int8",
                                calibration=_calibration(model, root), options=options,
                                output=root / f"{model}-{target}-p{n}{grid or ''}")
    except BudgetError as e:  # the unpatched model may not fit the board: that is a result too
        return {"model": model, "target": target, "patch_stages": n, "grid": None, "does_not_fit": str(e)}
    mem = bundle.manifest["artifact"]["info"]["memory"]
    patch = mem.get("patch", {})
    timing = bundle.runner().time(bundle.reference_inputs(), warmup=0, iters=iters)
    v = bundle.manifest["validation"]
    return {"model": model, "target": target, "patch_stages": n, "grid": patch.get("grid"),
            "arena_bytes": mem["arena_bytes"], "lower_bound_bytes": mem["arena_lower_bound_bytes"],
            "unpatched_arena_bytes": patch.get("arena_bytes_unpatched", mem["arena_bytes"]),
            "tensor_level_lower_bound_bytes": patch.get("tensor_level_lower_bound_bytes",
                                                        mem["arena_lower_bound_bytes"]),
            "recomputed_macs": patch.get("recomputed_macs", 0),
            "recomputed_pct": patch.get("recomputed_macs_pct_of_model", 0.0),
            "flash_bytes": mem["flash_bytes"], "ram_bytes": mem["ram_bytes"],
            "instructions": min(timing["samples"]), "samples": timing["samples"], "unit": timing["unit"],
            "method": timing["method"], "bit_exact": v.get("max_abs_error") == 0.0 and v.get("status") == "passed",
            "reference": v.get("reference")}


def _calibration(model: str, root: Path) -> str:
    import numpy as np
    import torch

    from edgecc.models import get_model

    folder = root / f"calibration-{model}"
    if not folder.exists():
        folder.mkdir(parents=True)
        gen = torch.Generator().manual_seed(3)
        np.save(folder / "samples.npy", torch.randn(64, *get_model(model).input_shapes[0][1:], generator=gen).numpy())
    return str(folder)


def markdown(rows: list[dict]) -> str:
    kb = lambda n: f"{n / 1024:.1f}"  # noqa: E731
    out = ["| model | target | patch_stages (grid) | arena KB | vs unpatched | vs tensor-level lower bound | "
           "recomputed MACs | instructions / inference | flash KB | bit-exact |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        grid = f" ({r['grid'][0]}x{r['grid'][1]})" if r["grid"] else ""
        if "does_not_fit" in r:
            out.append(f"| {r['model']} | {r['target']} | {r['patch_stages'] or 'off'} | does not fit: "
                       f"{r['does_not_fit']} | | | | | | |")
            continue
        out.append(f"| {r['model']} | {r['target']} | {r['patch_stages'] or 'off'}{grid} | {kb(r['arena_bytes'])} | "
                   f"{r['unpatched_arena_bytes'] / r['arena_bytes']:.2f}x | "
                   f"{r['tensor_level_lower_bound_bytes'] / r['arena_bytes']:.2f}x | "
                   f"{r['recomputed_macs'] / 1e6:.2f} M (+{r['recomputed_pct']:.1f}%) | {r['instructions']:,} | "
                   f"{kb(r['flash_bytes'])} | {'yes' if r['bit_exact'] else 'NO'} |")
    out += ["", "Arena = the firmware's static activation arena (edgecc's liveness plan); tensor-level lower bound = "
            "the largest sum of whole tensors alive at one step of the unpatched program, which no tensor-by-tensor "
            "plan can beat. Recomputed MACs: the halos computed again by neighbouring tiles (% of the model's "
            "MACs). Instructions: QEMU -icount shift=0, one inference (min of the samples), not cycles or time. "
            "Bit-exact: the compile's own check of the firmware against the numpy int8 reference (TFLite "
            "arithmetic), max abs error 0."]
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["mobilenetv2-mcu"])
    p.add_argument("--targets", nargs="+", default=["cortex-m4"])
    p.add_argument("--stages", nargs="+", type=int, help="N values (0 = unpatched); default per model")
    p.add_argument("--grid", help="patch_grid for every patched row (default: the smallest arena)")
    p.add_argument("--iters", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the rows (with raw samples) here")
    p.add_argument("--keep", type=Path, help="keep the bundles in this folder")
    a = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecc-patch-") as tmp:
        root = a.keep or Path(tmp)
        for model in a.models:
            for target in a.targets:
                for n in a.stages or DEFAULT_STAGES.get(model, [0]):
                    rows.append(measure(model, target, n, a.grid, root, a.iters))
                    r = rows[-1]
                    print(f"{model} {target} patch_stages={n}: " + (r.get("does_not_fit") or
                          f"arena {r['arena_bytes']:,} B, {r['instructions']:,} instructions"), file=sys.stderr)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
