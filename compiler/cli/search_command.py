"""`edgecc search --board NAME | --ram SIZE --flash SIZE`: the most accurate model of a small CNN family that fits
(edgecc.compiler.compose.search)."""

from __future__ import annotations

from edgecc.compiler.cli.output import log_for, note, table


def add_search_parser(sub) -> None:
    s = sub.add_parser("search", help="find the most accurate model (or little/big pair) that fits a memory budget, "
                       "each candidate trained, compiled and measured")
    s.add_argument("--dataset", default="digits", help="the dataset candidates are trained on (digits)")
    s.add_argument("--target", default="cortex-m4", help="microcontroller target (default cortex-m4)")
    s.add_argument("--board", default="", help="take the budget from this board's RAM and flash")
    s.add_argument("--ram", default="", metavar="SIZE", help="RAM budget, e.g. 520KB")
    s.add_argument("--flash", default="", metavar="SIZE", help="flash budget, e.g. 1MB")
    s.add_argument("--space", default="small", metavar="small|full|NAMES",
                   help="candidates: small (8), full (30) or names like w8-d2-k3-r8,w16-d2-k3-r8")
    s.add_argument("--epochs", type=int, default=None, help="training epochs per candidate (default 15)")
    s.add_argument("--cascade", action="store_true", help="search little/big pairs jointly (one shared arena, "
                   "summed flash) for the lowest expected instructions at the accuracy target")
    s.add_argument("--max-accuracy-drop", type=float, default=0.5, metavar="POINTS",
                   help="--cascade: the pair may lose this many top-1 points against the best single model")
    s.add_argument("--results", help="the JSONL results file (default: one per space in ~/.cache/edgecc/search); "
                   "an interrupted search resumes from it")
    s.add_argument("-o", "--output", help="output folder (default build/search-<target>-<board|budget>)")
    s.add_argument("--force", action="store_true", help="replace the -o folder even if edgecc did not write it")


def cmd_search(args) -> int:
    from edgecc.compiler.compose.search import search

    out, doc = search(args.dataset, args.target, board=args.board, ram=args.ram, flash=args.flash, space=args.space,
                      epochs=args.epochs, cascade=args.cascade, max_accuracy_drop=args.max_accuracy_drop,
                      output=args.output, results=args.results, force=args.force, log=log_for(args), note=note)
    rows = []
    for r in doc["candidates"]:
        if r["status"] != "ok":
            rows.append((r["name"], r["status"][:60], "", "", "", "", ""))
            continue
        mark = ("*" if r["name"] == doc["chosen"]["name"] else "") + (
            "F" if r["name"] in doc["front_instructions"] or r["name"] in doc["front_ram"] else "")
        rows.append((r["name"] + (f" {mark}" if mark else ""), f"{r['val_accuracy']:.1%}", f"{r['test_accuracy']:.1%}",
                     f"{r['instructions']:,}", f"{r['ram_bytes'] / 1024:.1f}", f"{r['flash_bytes'] / 1024:.1f}",
                     "yes" if r["fits"] else "no"))
    table(["candidate", "top-1 cal", "top-1 test", "instructions", "RAM KB", "flash KB", "fits"], rows)
    c = doc["chosen"]
    print(f"* = chosen, F = on a Pareto front (top-1 vs instructions or RAM); budget {doc['budget']['source']}")
    if "cascade" in doc:
        p = doc["cascade"]["chosen"]
        print(f"{out}: pair {p['little']} -> {p['big']}, threshold {p['threshold']:g}, top-1 {p['val_accuracy']:.1%}, "
              f"{p['expected_instructions']:,.0f} expected instructions ({p['saving_vs_big']:.0%} below big); "
              f"edgecc cascade {out}/little.py:build {out}/big.py:build --calibration digits")
    else:
        print(f"{out}: chosen {c['name']} ({c['val_accuracy']:.1%} calibration / {c['test_accuracy']:.1%} test, "
              f"RAM {c['ram_bytes'] / 1024:.1f} KB); edgecc compile {out}/chosen.py:build --target {doc['target']}")
    return 0
