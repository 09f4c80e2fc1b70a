"""The HTML page of `edgecc search`: every measured candidate as a point of top-1 against instructions and against
RAM, the Pareto front joined, candidates over the budget greyed, the choice marked; and the table. Reads
search.json's data only.

    #search-instructions   top-1 (calibration split) against QEMU instructions per inference
    #search-ram            top-1 against RAM from the ELF, with the budget as a line
"""

from __future__ import annotations

import html

from edgecc.runtime.report_html import COLORS, CSS, LEFT, RIGHT, W, _axis, _ticks

H, TOP, BOTTOM = 340, 20, 60


def _scatter(doc: dict, key: str, front: list[str], label: str, limit: float | None) -> str:
    rows = [r for r in doc["candidates"] if r["status"] == "ok"]
    if not rows:
        return ""
    x_hi = max([r[key] for r in rows] + ([limit] if limit else [])) * 1.08
    accs = [r["val_accuracy"] for r in rows]
    y_lo, y_hi = max(0.0, min(accs) - 0.02), min(1.0, max(accs) + 0.01)

    def sx(v):
        return LEFT + v / x_hi * (W - LEFT - RIGHT)

    def sy(a):
        return TOP + (y_hi - a) / (y_hi - y_lo) * (H - TOP - BOTTOM)

    out = [f'<svg class="plot scatter" id="search-{key.split("_")[0]}" xmlns="http://www.w3.org/2000/svg" '
           f'viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="top-1 against {label}">']
    pts = sorted((r for r in rows if r["name"] in front), key=lambda r: r[key])
    if pts:
        d = " ".join(f"{'M' if i == 0 else 'L'}{sx(r[key]):.1f},{sy(r['val_accuracy']):.1f}" for i, r in enumerate(pts))
        out.append(f'<path class="front" d="{d}" fill="none" stroke="{COLORS[0]}" stroke-width="1.5"/>')
    if limit:
        out.append(f'<line class="budget" x1="{sx(limit):.1f}" y1="{TOP}" x2="{sx(limit):.1f}" y2="{H - BOTTOM}" '
                   f'stroke="{COLORS[3]}" stroke-dasharray="4 3"><title>budget</title></line>')
    chosen = {doc["chosen"]["name"]} | ({doc["cascade"]["chosen"]["little"], doc["cascade"]["chosen"]["big"]}
                                        if "cascade" in doc else set())
    for r in rows:
        color = COLORS[0] if r["fits"] else "#aaa"
        ring = f' stroke="{COLORS[1]}" stroke-width="3"' if r["name"] in chosen else ""
        tag = " (chosen)" if r["name"] in chosen else ("" if r["fits"] else " (over budget)")
        out.append(f'<g class="candidate" data-name="{r["name"]}" data-front="{int(r["name"] in front)}">'
                   f'<circle cx="{sx(r[key]):.1f}" cy="{sy(r["val_accuracy"]):.1f}" r="5" fill="{color}"{ring}>'
                   f'<title>{r["name"]}: {r["val_accuracy"]:.2%}, {r[key]:,} {html.escape(label)}</title></circle>'
                   f'<text class="value" x="{sx(r[key]) + 7:.1f}" y="{sy(r["val_accuracy"]) - 6:.1f}">'
                   f'{r["name"]}{tag}</text></g>')
    for t in _ticks(y_lo, y_hi):
        out.append(f'<text class="ticklabel" x="{LEFT - 8}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:.1%}</text>')
    out.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM + 4}"/>')
    out.append(_axis(0, x_hi, H - BOTTOM + 4, label, sx))
    out.append("</svg>")
    return "".join(out)


def _table(doc: dict) -> str:
    head = ["candidate", "params", "top-1 (calibration)", "top-1 (test)", "instructions", "arena B", "RAM B",
            "flash B", "fits", "front"]
    body = []
    for r in doc["candidates"]:
        if r["status"] != "ok":
            cells = [r["name"], r["params"], r["status"], "", "", "", "", "", "no", ""]
        else:
            front = [n for n, f in (("instructions", doc["front_instructions"]), ("RAM", doc["front_ram"]))
                     if r["name"] in f]
            cells = [r["name"] + (" (chosen)" if r["name"] == doc["chosen"]["name"] else ""), f"{r['params']:,}",
                     f"{r['val_accuracy']:.2%}", f"{r['test_accuracy']:.2%}", f"{r['instructions']:,}",
                     f"{r['arena_bytes']:,}", f"{r['ram_bytes']:,}", f"{r['flash_bytes']:,}",
                     "yes" if r["fits"] else "no", ", ".join(front)]
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return ('<table id="search-candidates"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head) +
            "</tr></thead><tbody>" + "".join(body) + "</tbody></table>")


def search_report_html(doc: dict) -> str:
    """A self-contained page: the budget and choice, both Pareto plots, the candidates' table (and the pair)."""
    b, c = doc["budget"], doc["chosen"]
    title = f"edgecc search: {doc['dataset']} on {doc['target']} within {b['source']}"
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p>Budget RAM {b['ram_bytes']:,} B, flash {b['flash_bytes']:,} B; measured on {doc['measured_on']} "
            f"(QEMU icount; sizes from the linked ELF); {doc['epochs']} epochs of seeded training per candidate; "
            f"{doc['date']}.</p>",
            f"<p id=\"search-choice\">Chosen: <b>{html.escape(c['name'])}</b>, top-1 {c['val_accuracy']:.2%} "
            f"(calibration) / {c['test_accuracy']:.2%} (test), {c['instructions']:,} instructions, RAM "
            f"{c['ram_bytes']:,} B, flash {c['flash_bytes']:,} B.</p>",
            "<h2>Top-1 against instructions</h2>",
            _scatter(doc, "instructions", doc["front_instructions"], "QEMU instructions per inference", None),
            "<h2>Top-1 against RAM</h2>",
            _scatter(doc, "ram_bytes", doc["front_ram"], "RAM bytes (ELF)", b["ram_bytes"]),
            "<h2>Candidates</h2>", _table(doc)]
    if "cascade" in doc:
        p = doc["cascade"]["chosen"]
        body.append(f"<h2>Cascade</h2><p id=\"search-pair\">Pair {html.escape(p['little'])} → "
                    f"{html.escape(p['big'])}: threshold {p['threshold']:g}, top-1 {p['val_accuracy']:.2%}, "
                    f"{p['to_big']:.1%} to big, {p['expected_instructions']:,.0f} expected instructions "
                    f"({p['saving_vs_big']:.1%} below the big one alone); RAM {p['ram_bytes']:,} B (one arena), "
                    f"flash {p['flash_bytes']:,} B (sum).</p>")
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
