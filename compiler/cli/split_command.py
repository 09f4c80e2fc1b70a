"""`edgecc split MODEL --targets FRONT,BACK`: one model cut across two devices (edgecc.compiler.compose.split)."""

from __future__ import annotations

import json

from edgecc.compiler.cli.output import log_for, note, table


def add_split_parser(sub, shape_type) -> None:
    s = sub.add_parser("split", help="cut a model across two devices: a front and a back bundle joined by the cut "
                       "tensor (split.json)")
    s.add_argument("model", help="zoo name, path/file.py:factory or model.pt2 (ONNX models are not split yet)")
    s.add_argument("--targets", default="cortex-m4,host", help="FRONT,BACK targets (default cortex-m4,host)")
    s.add_argument("--at", default="auto", metavar="NODE|auto", help="the graph node whose output is sent (see "
                   "--list), or auto: the cut with the lowest measured end-to-end latency (default)")
    s.add_argument("--link", default="uart:921600", metavar="uart:BAUD|ble:BITS|eth:BITS|BYTES_PER_S",
                   help="the link between the two, e.g. uart:921600, ble:1M, eth:100M, 250000 (default uart:921600)")
    s.add_argument("--backends", help="FRONT,BACK backends (default: each target's)")
    s.add_argument("--board", default="", help="the front's board (MCU targets)")
    s.add_argument("--cut-dtype", choices=["float32", "int8"], default="float32",
                   help="send the cut tensor as float32 or int8 (affine per-tensor; the added error is reported)")
    s.add_argument("-o", "--output", help="split folder (default build/<model>-split-<front>-<back>)")
    s.add_argument("--list", action="store_true", help="list the cut candidates (one tensor crossing) and exit")
    s.add_argument("--input-shape", action="append", type=shape_type, help="input shape (repeat per input)")
    s.add_argument("--no-validate", action="store_true", help="skip the end-to-end check against PyTorch")
    s.add_argument("--allow-pickle", action="store_true", help="allow loading a pickled model (runs its code!)")
    s.add_argument("--name", help="model name used in the bundles")
    s.add_argument("--json", action="store_true", help="print split.json")
    s.add_argument("--force", action="store_true", help="replace the -o folder even if it is not an edgecc split")


def _list(args) -> int:
    from edgecc.compiler.compose.graph_cut import block_boundaries, cut_candidates
    from edgecc.compiler.frontends import load_model
    from edgecc.errors import ModelError

    loaded = load_model(args.model, input_shapes=args.input_shape, allow_pickle=args.allow_pickle)
    if loaded.kind == "onnx":
        raise ModelError(f"{loaded.source} is an ONNX model; ONNX models are not split yet")
    cuts = cut_candidates(loaded.exported_program())
    auto = {c.node for c in block_boundaries(cuts)}
    table(["node", "op", "shape", "dtype", "bytes", "front ops", "back ops", "auto measures"],
          [(c.node, c.op, "x".join(map(str, c.shape)), c.dtype, f"{c.bytes:,}", c.front_ops, c.back_ops,
            "yes" if c.node in auto else "") for c in cuts])
    return 0


def cmd_split(args) -> int:
    from edgecc.compiler.compose.split import split
    from edgecc.compiler.compose.split_doc import breakdown_table

    if args.list:
        return _list(args)
    s = split(args.model, targets=args.targets, at=args.at, link=args.link, output=args.output,
              input_shapes=args.input_shape, backends=args.backends, board=args.board, cut_dtype=args.cut_dtype,
              allow_pickle=args.allow_pickle, name=args.name, force=args.force, validate=not args.no_validate,
              log=log_for(args), note=note)
    doc = s.doc
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    if doc["choice"]["method"] == "auto":
        table(["cut", "tensor", "wire bytes", "front ms", "link ms", "back ms", "total ms"], breakdown_table(doc))
        methods = sorted({c["front_method"] for c in doc["choice"]["candidates"] if c["front_method"]})
        print(f"* = chosen; front ms: {'; '.join(methods) or 'not measured'}")
    t, v = doc["cut"]["tensor"], doc["validation"]
    check = v["status"]
    if v["status"] == "passed":
        added = v.get("int8_added_error")
        check = (f"validated end to end vs PyTorch{' on the int8 bytes sent' if added else ''}: max abs err "
                 f"{v['max_abs_error']:.1e}")
        if added:
            a = added["artifacts_vs_fp32_model"]
            check += (f"; int8 cut adds max abs err {a['max_abs_error']:.2e} vs the fp32 model"
                      + (f", top-1 {a['top1_agreement']:.0%}" if a["top1_agreement"] is not None else ""))
    print(f"{s.path}: cut at {t['name']} ({t['dtype']} {'x'.join(map(str, t['shape']))}, {t['frame_bytes']:,} B "
          f"per frame, {doc['link']['transfer_s'] * 1e3:.2f} ms over {doc['link']['spec']}; "
          f"{doc['cut']['transfer_shrink']:.2f}x smaller than fp32); {check}")
    return 0
