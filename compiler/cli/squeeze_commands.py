"""`edgecc profile BUNDLE` and the squeeze lines of `edgecc compile`: where the cost sits, what squeezing did."""

from __future__ import annotations

import json
from pathlib import Path

from edgecc.compiler.cli.output import table


def cmd_profile(args) -> int:
    from edgecc.bundle import Bundle

    print_profile(Bundle.load(args.bundle), args.json_out, args.top)
    return 0


def print_profile(bundle, json_out: str | None = None, top: int = 0) -> None:
    """Print the per-layer table (and the measured kernels when they do not pair with layers)."""
    from edgecc.compiler.squeeze.profile import profile_bundle

    p = profile_bundle(bundle)
    if json_out:
        Path(json_out).write_text(json.dumps(p, indent=1))
    measured = p["measured"]
    print(f"{p['model']} on {p['target']}/{p['backend']}: layers of {p['layers_of'] or 'the model'}; measured: "
          + (f"{measured['method']}, {measured['total']:,} {measured['unit']} per inference"
             if isinstance(measured, dict) else measured))
    layers = p["layers"]
    if isinstance(layers, str):
        print(f"per-layer costs {layers}")
    else:
        total = sum(r["macs"] for r in layers) or 1
        rows = sorted(layers, key=lambda r: -r["macs"])[:top] if top else layers
        table(["layer", "kind", "MACs", "MACs %", "params", "activation B", "measured %", "lowrank@0.9 MACs"],
              [(r["layer"], r["kind"], f"{r['macs']:,}", f"{100 * r['macs'] / total:.1f}", f"{r['params']:,}",
                f"{r['activation_bytes']:,}",
                f"{100 * r['measured_share']:.1f}" if "measured_share" in r else "",
                f"x{r['lowrank_macs_fraction']}" if "lowrank_macs_fraction" in r else "")
               for r in rows])
    if isinstance(measured, dict) and p.get("measured_matches_layers"):
        other = 1 - sum(r.get("measured_share", 0) for r in layers)
        print(f"the other kernels (pools, adds, quantize/dequantize, copies): {100 * other:.1f}% of the measured "
              "total (`--json` lists every kernel)")
    if isinstance(measured, dict) and not p.get("measured_matches_layers"):
        table(["step", "kernel", "what", measured["unit"], "share %"],
              [(k["step"], k["kernel"], k["comment"], f"{k.get('instructions', k.get('us')):,}",
                f"{100 * k['share']:.1f}")
               for k in measured["kernels"]])
    if not isinstance(layers, str):
        best = max(layers, key=lambda r: r.get("measured_share", r["macs"] / total), default=None)
        if best is not None and best["macs"]:
            hint = (f"; lowrank=0.9 would leave x{best['lowrank_macs_fraction']} of its MACs"
                    if "lowrank_macs_fraction" in best else "")
            print(f"costliest layer: {best['layer']} ({best['kind']}, {100 * best['macs'] / total:.0f}% of MACs"
                  f"{hint}); pruning its output channels also shrinks the next layer")


def print_squeeze(section: dict) -> None:
    """The per-stage lines after `edgecc compile --squeeze`."""
    from edgecc.compiler.squeeze.pipeline import squeeze_table

    print(squeeze_table(section))
    s = section["summary"]
    drop = s.get("artifact_top1_drop_points", s.get("top1_drop_points"))
    print(f"squeeze: {s['macs_reduction']}x fewer MACs, {s['weight_bytes_reduction']}x fewer weight bytes"
          + (f", top-1 {-drop:+.2f} points vs the original" if drop is not None else ""))
