"""Every ONNX node checked at compile time against the op-support table of the target's TensorRT version
(targets/tensorrt/ops-<version>.toml, data with its public source).
"""

from __future__ import annotations

import tomllib

from edgecc.errors import ModelError, TargetError, UnsupportedOpError

ONNX_DOMAINS = ("", "ai.onnx")


def load_op_table(version: str) -> dict:
    """The op-support table of TensorRT `version` (targets/tensorrt/ops-<version>.toml)."""
    from edgecc.targets import TARGETS_DIR

    ops_dir = TARGETS_DIR / "tensorrt"
    path = ops_dir / f"ops-{version}.toml"
    if not path.is_file():
        known = sorted(p.stem.removeprefix("ops-") for p in ops_dir.glob("ops-*.toml"))
        raise TargetError(f"no ONNX op-support table for TensorRT {version} (known: {', '.join(known)}); "
                          f"add targets/tensorrt/ops-{version}.toml from onnx-tensorrt's docs/operators.md")
    table = tomllib.loads(path.read_text())
    table["file"] = path.name
    return table


def check_onnx_ops(proto, table: dict) -> dict:
    """Check every node (subgraphs included) against `table`; return {op_type: count} and notes.
    Raises UnsupportedOpError naming the first unsupported op and the TensorRT version."""
    version = table["tensorrt"]
    opset = next((o.version for o in proto.opset_import if o.domain in ONNX_DOMAINS), 0)
    if opset > table["max_opset"]:
        raise ModelError(f"model.onnx uses ONNX opset {opset}; TensorRT {version} reads opset <= "
                         f"{table['max_opset']}: re-export with opset {table['max_opset']}")
    counts: dict[str, int] = {}
    for node in _all_nodes(proto.graph):
        key = node.op_type if node.domain in ONNX_DOMAINS else f"{node.domain}::{node.op_type}"
        counts[key] = counts.get(key, 0) + 1
    supported, unverified = set(table["supported"]), set(table.get("unverified", []))
    for op in counts:
        if op not in supported and op not in unverified:
            why = ("marked unsupported" if op in table["unsupported"] else "not listed") + \
                f" in onnx-tensorrt's operator table ({table['file']})"
            raise UnsupportedOpError(op, "tensorrt", detail=f"TensorRT {version}: {why}",
                                     suggestion="replace the op in the model, or use a target with a newer TensorRT")
    notes = [f"{op}: support in TensorRT {version} unverified (onnx-tensorrt tables disagree)"
             for op in sorted(counts) if op in unverified]
    return {"opset": opset, "ops": dict(sorted(counts.items())), "notes": notes, "table": table["file"],
            "table_source": table["source"]}


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g is not None and attr.g.node:
                yield from _all_nodes(attr.g)
            for g in attr.graphs:
                yield from _all_nodes(g)
