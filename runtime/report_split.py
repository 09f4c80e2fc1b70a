"""The HTML page of a split's cost breakdown: every measured cut as a table row and as one stacked bar
(front + link + back), the chosen cut marked. Reads split.json's data only.

    #split-breakdown   stacked bars per candidate cut, ms
"""

from __future__ import annotations

import html

from edgecc.runtime.report_html import COLORS, CSS, LEFT, RIGHT, W, _axis

PARTS = (("front_s", "front"), ("link_s", "link"), ("back_s", "back"))


def split_breakdown_plot(doc: dict) -> str:
    """Stacked horizontal bars: for each candidate cut, front + link + back in ms; rows that do not fit say so."""
    rows = doc["choice"].get("candidates", [])
    if not rows:
        return ""
    totals = [r["total_s"] for r in rows if r["total_s"] is not None]
    hi = (max(totals) if totals else 1.0) * 1e3 * 1.05

    def scale(v):
        return LEFT + v / hi * (W - LEFT - RIGHT - 120)

    h = 30 * len(rows) + 90
    out = [f'<svg class="plot bars" id="split-breakdown" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h}" '
           f'width="{W}" height="{h}" role="img" aria-label="end-to-end latency per candidate cut">']
    for i, r in enumerate(rows):
        y = 20 + i * 30
        chosen = r["node"] == doc["cut"]["node"]
        label = f"{r['node']} ({r['wire_bytes']:,} B){' — chosen' if chosen else ''}"
        mark = ' data-chosen="1"' if chosen else ""
        out.append(f'<g class="cut" data-node="{html.escape(r["node"])}"{mark}><text class="rowlabel" '
                   f'x="{LEFT - 8}" y="{y + 15}" text-anchor="end">{html.escape(label)}</text>')
        if r["total_s"] is None:
            out.append(f'<text class="value" x="{LEFT}" y="{y + 15}">{html.escape(r["status"][:90])}</text></g>')
            continue
        x = 0.0
        for (key, name), color in zip(PARTS, COLORS, strict=False):
            v = r[key] * 1e3
            out.append(f'<rect class="part" data-part="{name}" x="{scale(x):.1f}" y="{y + 2}" '
                       f'width="{max(scale(x + v) - scale(x), 0.5):.1f}" height="20" fill="{color}">'
                       f'<title>{html.escape(r["node"])} {name}: {v:.3f} ms</title></rect>')
            x += v
        out.append(f'<text class="value" x="{scale(x) + 4:.1f}" y="{y + 16}">{x:.2f} ms</text></g>')
    legend = " ".join(f'<tspan fill="{c}">■ {n}</tspan>' for (_, n), c in zip(PARTS, COLORS, strict=False))
    out.append(_axis(0, hi, 20 + 30 * len(rows) + 4, "ms end to end (front + link + back)", scale))
    out.append(f'<text class="axislabel" x="{LEFT}" y="{h - 8}">{legend}</text></svg>')
    return "".join(out)


def _table(doc: dict) -> str:
    head = ["cut", "tensor", "on the wire (B)", "front (ms)", "front method", "link (ms)", "back (ms)", "total (ms)"]
    body = []
    for r in doc["choice"].get("candidates", []):
        ms = lambda s: "–" if s is None else f"{s * 1e3:.3f}"  # noqa: E731
        cells = [r["node"] + (" (chosen)" if r["node"] == doc["cut"]["node"] else ""),
                 "x".join(map(str, r["shape"])) + " " + r["dtype"], f"{r['wire_bytes']:,}", ms(r["front_s"]),
                 r["front_method"] or r["status"], ms(r["link_s"]), ms(r["back_s"]), ms(r["total_s"])]
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return ('<table id="split-candidates"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head) +
            "</tr></thead><tbody>" + "".join(body) + "</tbody></table>")


def split_section(doc: dict, level: int = 1) -> list[str]:
    """The HTML of one split: its title (an h`level`), the chosen cut, the breakdown table and plot, the best cut
    per link; `edgecc report` puts one per split.json found beside the benchmark reports."""
    t, link = doc["cut"]["tensor"], doc["link"]
    title = f"edgecc split: {doc['model']['name']} on {doc['front']['target']} + {doc['back']['target']}"
    by_link = "".join(f"<li><code>{html.escape(k)}</code>: {html.escape(str(v))}</li>"
                      for k, v in doc["choice"].get("by_link", {}).items())
    h, h2 = f"h{level}", f"h{level + 1}"
    return [f"<{h}>{html.escape(title)}</{h}>",
            f"<p>Cut at <code>{html.escape(t['name'])}</code> ({t['dtype']} {t['shape']}, {t['frame_bytes']:,} bytes "
            f"per frame) over <code>{html.escape(link['spec'])}</code>; validation: "
            f"{html.escape(str(doc['validation'].get('status')))}.</p>",
            f"<{h2}>Candidate cuts (measured)</{h2}>", _table(doc), split_breakdown_plot(doc),
            f"<{h2}>Best cut per link, from the same measurements</{h2}>", f"<ul>{by_link}</ul>",
            "<p>Front times of microcontrollers are estimates: QEMU instructions over the board's clock (one "
            "instruction per cycle); CPU times are the p50 wall clock of the bundle's runner.</p>"]


def split_report_html(doc: dict) -> str:
    """A self-contained page of one split (split_section)."""
    title = f"edgecc split: {doc['model']['name']} on {doc['front']['target']} + {doc['back']['target']}"
    body = split_section(doc)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
