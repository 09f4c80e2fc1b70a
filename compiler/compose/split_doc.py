"""split.json and the split's README: the cut tensor, the link, the costs of every measured cut, how to wire it."""

from __future__ import annotations

import math

import numpy as np

from edgecc.bundle import manifest_digest
from edgecc.compiler.compose.costs import best
from edgecc.compiler.compose.link import parse_link
from edgecc.runtime.frame import FORMAT, frame_bytes

# the links auto's measurements are also evaluated over, so one measurement shows where the best cut moves
REFERENCE_LINKS = ("uart:115200", "uart:921600", "ble:1M", "ble:2M", "eth:10M", "eth:100M", "eth:1G")


def _side(bundle, side, role: str) -> dict:
    m = bundle.manifest
    return {"bundle": role, "target": side.target.name, "backend": bundle.backend,
            "board": m["options"].get("board") or None, "entry": m["artifact"]["entry"],
            "manifest_sha256": manifest_digest(bundle.path), "validation": m["validation"]["status"],
            "output_format": m["artifact"]["info"].get("output_format", "raw")}


def document(loaded, cut, plan, fb, bb, q, costs, validation) -> dict:
    """split.json's content."""
    wire = plan.wire_dtype
    tensor = {"name": cut.node, "shape": list(cut.shape), "dtype": wire,
              "bytes": math.prod(cut.shape) * np.dtype(wire).itemsize,
              "frame_bytes": frame_bytes(cut.shape, wire), "format": FORMAT}
    fp32 = {"bytes": cut.bytes, "frame_bytes": frame_bytes(cut.shape, cut.dtype)}
    doc = {
        "schema": "edgecc.split/1",
        "model": {"name": loaded.name, "source": loaded.source},
        "cut": {"node": cut.node, "op": cut.op, "front_ops": cut.front_ops, "back_ops": cut.back_ops,
                "tensor": tensor, "unquantized": fp32,
                "quantization": q.to_dict() if q is not None else None,
                "transfer_shrink": round(fp32["frame_bytes"] / tensor["frame_bytes"], 3)},
        "front": _side(fb, plan.front, "front"),
        "back": _side(bb, plan.back, "back"),
        "link": {**plan.link.to_dict(), "transfer_s": plan.link.seconds(tensor["frame_bytes"])},
        "choice": {"method": "auto" if costs is not None else "--at", "at": cut.node},
        "validation": validation,
    }
    if costs is not None:
        doc["choice"]["candidates"] = [c.row(plan.link) for c in costs]
        doc["choice"]["by_link"] = {spec: _best_node(costs, spec) for spec in (*REFERENCE_LINKS, plan.link.spec)}
    return doc


def _best_node(costs, spec: str) -> str | None:
    chosen = best(costs, parse_link(spec))
    return chosen.cut.node if chosen else None


def breakdown_table(doc: dict) -> list[tuple]:
    """Rows (cut, tensor, wire bytes, front, link, back, total) of auto's candidates, times in ms."""
    rows = []
    ms = lambda s: "–" if s is None else f"{s * 1e3:.2f}"  # noqa: E731
    for c in doc["choice"].get("candidates", []):
        mark = " *" if c["node"] == doc["cut"]["node"] else ""
        if c["status"] != "ok":
            rows.append((c["node"] + mark, "x".join(map(str, c["shape"])), "–", "–", "–", "–", c["status"][:60]))
            continue
        rows.append((c["node"] + mark, "x".join(map(str, c["shape"])) + " " + c["dtype"], f"{c['wire_bytes']:,}",
                     ms(c["front_s"]), ms(c["link_s"]), ms(c["back_s"]), ms(c["total_s"])))
    return rows


def wiring(doc: dict) -> str:
    """README.md of the split folder: what runs where, the tensor on the wire, how to connect the two."""
    t, f, b, link = doc["cut"]["tensor"], doc["front"], doc["back"], doc["link"]
    shape = ", ".join(map(str, t["shape"]))
    code = {"float32": "EDGECC_DTYPE_FLOAT32", "int8": "EDGECC_DTYPE_INT8"}[t["dtype"]]
    q = doc["cut"]["quantization"]
    lines = [
        f"# {doc['model']['name']} split at `{t['name']}`: {f['target']} → {b['target']}", "",
        f"- front: `front/` ({f['backend']} for {f['target']}{', board ' + f['board'] if f['board'] else ''}), "
        f"{doc['cut']['front_ops']} ops; back: `back/` ({b['backend']} for {b['target']}), "
        f"{doc['cut']['back_ops']} ops",
        f"- on the wire: `{t['name']}` {t['dtype']} [{shape}], {t['bytes']:,} bytes, one {t['format']} frame of "
        f"{t['frame_bytes']:,} bytes ({link['spec']}: {link['transfer_s'] * 1e3:.2f} ms)",
    ]
    if q:
        lines.append(f"- int8: scale {q['scale']:.6g}, zero point {q['zero_point']} (quantized in the front, "
                     "dequantized in the back; both are compiled in)")
    lines += ["", "## Wiring", "",
              "1. Front. In QEMU the harness firmware writes the frame to its semihosting output file "
              "(`edgecc run front`). On a board, link `front/libmodel.a` and `front/model.h` into your firmware with "
              "`runtime/c/src/frame.c`, and after each inference send the cut tensor:", "",
              "   ```c", f"   static const uint32_t shape[] = {{{shape}}};", "   edgecc_uart_init();",
              f"   edgecc_frame_write(edgecc_sink_uart, 0, {code}, {len(t['shape'])}, shape, outputs[0], "
              f"{t['bytes']});", "   ```", "",
              "   `frame.c` drives an Arm CMSDK APB UART (MPS2) by default; for an STM32 USART/LPUART pass the "
              "`-DEDGECC_UART_*` defines listed in `runtime/c/include/edgecc/frame.h`.",
              f"2. Link. Connect the front's UART TX to the back's serial RX and the grounds; {link['spec']} "
              f"(8N1 for a UART). Set the port raw: `stty -F /dev/ttyUSB0 {int(link['rate'])} raw -echo` "
              "(a UART's rate is its baud).",
              "3. Back. `python -m edgecc.runtime.split_back back /dev/ttyUSB0` reads one frame (bytes before the "
              "frame's magic are skipped, the CRC-32 is checked), runs the back bundle and prints its output; "
              "`--output out.npy` saves it.", ""]
    return "\n".join(lines) + "\n"
