"""`edgecc cascade LITTLE BIG --target T`: a big/little cascade as one bundle (edgecc.compiler.compose.cascade)."""

from __future__ import annotations

import json

from edgecc.compiler.cli.output import log_for, note


def add_cascade_parser(sub) -> None:
    s = sub.add_parser("cascade", help="a big/little cascade as one bundle: the little model answers when confident, "
                       "the big one otherwise (cascade.json, one firmware on Cortex-M)")
    s.add_argument("little", help="the cheap model: zoo name, path/file.py:factory or model.pt2")
    s.add_argument("big", help="the accurate model, same input and classes")
    s.add_argument("--target", default="cortex-m4", help="target name or .toml (default cortex-m4)")
    s.add_argument("--backend", help="backend (default: the target's); micro, iree or tvm")
    s.add_argument("--board", default="", help="board (MCU targets)")
    s.add_argument("--policy", choices=["score-margin", "max-prob"], default="score-margin",
                   help="the little model's confidence: softmax top-1 minus top-2 (default), or top-1")
    s.add_argument("--threshold", default="auto", metavar="auto|VALUE",
                   help="keep the little answer when its score >= VALUE (0..1); auto: the cheapest threshold within "
                        "--max-accuracy-drop of the big model alone on the calibration split (default)")
    s.add_argument("--calibration", default="", metavar="DATASET|DIR",
                   help="labelled held-out samples: a dataset name (digits) or a folder with x.npy, y.npy (and "
                        "optionally x_test.npy, y_test.npy for the measured run); default: the models' dataset")
    s.add_argument("--max-accuracy-drop", default=0.5, type=float, metavar="POINTS",
                   help="auto: top-1 points the cascade may lose against the big model alone (default 0.5)")
    s.add_argument("-o", "--output", help="cascade folder (default build/<little>+<big>-<target>-<backend>)")
    s.add_argument("--no-validate", action="store_true", help="skip the check against the PyTorch cascade")
    s.add_argument("--no-measure", action="store_true", help="skip the end-to-end run on the held-out test split")
    s.add_argument("--json", action="store_true", help="print cascade.json")
    s.add_argument("--force", action="store_true", help="replace the -o folder even if it is not an edgecc cascade")


def cmd_cascade(args) -> int:
    from edgecc.compiler.compose.cascade import cascade
    from edgecc.runtime.report_cascade import verdict

    c = cascade(args.little, args.big, target=args.target, policy=args.policy, threshold=args.threshold,
                calibration=args.calibration, max_accuracy_drop=args.max_accuracy_drop, output=args.output,
                backend=args.backend, board=args.board, force=args.force, validate=not args.no_validate,
                measure=not args.no_measure, log=log_for(args), note=note)
    doc = c.doc
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    t, v = doc["threshold"], doc["validation"]
    check = v["status"]
    if check == "passed":
        check = f"validated vs the PyTorch cascade on {v['samples']} inputs ({', '.join(v['branches'])})"
    mem = doc["memory"]
    fw = (f"; one firmware, flash {mem['flash_bytes'] / 1024:.1f} KiB, RAM {mem['ram_bytes'] / 1024:.1f} KiB, shared "
          f"arena {mem['arena_bytes'] / 1024:.1f} KiB (not {mem['arena_sum_bytes'] / 1024:.1f})") if mem else ""
    print(f"{c.path}: {doc['policy']['name']} >= {t['value']:g} ({t['how'].split(':')[0]}), {t['to_big']:.1%} of "
          f"calibration to big{fw}; {check}")
    print(f"{verdict(doc)}; curve in {c.path / 'report.html'}")
    return 0
