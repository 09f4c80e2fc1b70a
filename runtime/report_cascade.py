"""The HTML page of a cascade: accuracy against expected cost per threshold (the calibration curve), with the little
model alone, the big model alone, the chosen threshold and the measured end-to-end run marked. Reads cascade.json's
data only.

    #cascade-curve   the plot: x = expected cost per input (instructions or ms), y = top-1 accuracy
"""

from __future__ import annotations

import html

from edgecc.runtime.report_html import COLORS, CSS, LEFT, RIGHT, W, _axis, _ticks

H, TOP, BOTTOM = 380, 20, 60


def _points(doc: dict) -> tuple[list[tuple], dict]:
    cal = doc["calibration"]
    curve = [(r["expected_cost"], r["accuracy"], r) for r in cal["curve"] if r["expected_cost"] is not None]
    marks = {"little alone": (cal["little_only"]["cost"], cal["little_only"]["accuracy"]),
             "big alone": (cal["big_only"]["cost"], cal["big_only"]["accuracy"]),
             f"chosen (threshold {doc['threshold']['value']:g})": (doc["threshold"]["expected_cost"],
                                                                   doc["threshold"]["calibration_accuracy"])}
    m = doc["measured"]
    if m.get("status") == "ok":
        marks[f"measured on the test split ({m['samples']} images)"] = (m["mean_cost"], m["accuracy"])
    return curve, {k: v for k, v in marks.items() if v[0] is not None}


def cascade_curve_plot(doc: dict) -> str:
    """Accuracy (y) against expected cost (x): one point per threshold, joined; little/big alone, chosen, measured."""
    curve, marks = _points(doc)
    if not curve:
        return f"<p>No cost curve: the models' costs were {html.escape(str(doc['costs'].get('status')))}.</p>"
    unit = doc["costs"]["unit"]
    xs = [c for c, _, _ in curve] + [v[0] for v in marks.values()]
    ys = [a for _, a, _ in curve] + [v[1] for v in marks.values()]
    x_hi, y_lo, y_hi = max(xs) * 1.05, max(0.0, min(ys) - 0.01), min(1.0, max(ys) + 0.01)

    def sx(v):
        return LEFT + v / x_hi * (W - LEFT - RIGHT)

    def sy(a):
        return TOP + (y_hi - a) / (y_hi - y_lo) * (H - TOP - BOTTOM)

    out = [f'<svg class="plot curve" id="cascade-curve" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" '
           f'width="{W}" height="{H}" role="img" aria-label="top-1 accuracy against expected cost per threshold">']
    path = " ".join(f"{'M' if i == 0 else 'L'}{sx(c):.1f},{sy(a):.1f}"
                    for i, (c, a, _) in enumerate(sorted(curve, key=lambda p: p[0])))
    out.append(f'<path class="curve" d="{path}" fill="none" stroke="{COLORS[0]}" stroke-width="1.5"/>')
    for c, a, r in curve:
        out.append(f'<circle class="threshold" data-threshold="{r["threshold"]}" cx="{sx(c):.1f}" cy="{sy(a):.1f}" '
                   f'r="2.5" fill="{COLORS[0]}"><title>threshold {r["threshold"]:g}: {a:.2%} top-1, '
                   f'{r["to_big"]:.1%} to big, {c:,.4g} {html.escape(unit)}</title></circle>')
    for i, (name, (c, a)) in enumerate(marks.items()):
        color = COLORS[(i + 1) % len(COLORS)]
        out.append(f'<g class="mark" data-mark="{html.escape(name.split(" (")[0])}"><circle cx="{sx(c):.1f}" '
                   f'cy="{sy(a):.1f}" r="6" fill="none" stroke="{color}" stroke-width="2.5"/>'
                   f'<text class="value" x="{sx(c) + 9:.1f}" y="{sy(a) - 8 - 12 * (i % 2):.1f}" fill="{color}">'
                   f'{html.escape(name)}: {a:.2%}, {c:,.4g}</text></g>')
    for t in _ticks(y_lo, y_hi):
        out.append(f'<line class="tick" x1="{LEFT - 5}" y1="{sy(t):.1f}" x2="{LEFT}" y2="{sy(t):.1f}"/>'
                   f'<text class="ticklabel" x="{LEFT - 8}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:.1%}</text>')
    out.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM + 4}"/>')
    out.append(_axis(0, x_hi, H - BOTTOM + 4, f"expected {unit} per input ({doc['costs']['method']})", sx))
    out.append("</svg>")
    return "".join(out)


def _table(doc: dict) -> str:
    head = ["threshold", "top-1 (calibration)", "to big", f"expected {doc['costs'].get('unit', 'cost')}"]
    body = []
    for r in doc["calibration"]["curve"]:
        chosen = r["threshold"] == doc["threshold"]["value"]
        cost = "–" if r["expected_cost"] is None else f"{r['expected_cost']:,.4g}"
        cells = [f"{r['threshold']:g}" + (" (chosen)" if chosen else ""), f"{r['accuracy']:.2%}", f"{r['to_big']:.1%}",
                 cost]
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return ('<table id="cascade-thresholds"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(body) + "</tbody></table>")


def verdict(doc: dict) -> str:
    """One sentence: the saving against the big model alone at the chosen threshold, expected and measured."""
    m, c = doc["measured"], doc["costs"]
    if c.get("status") != "ok":
        return f"costs {c.get('status')}"
    exp = 1 - doc["threshold"]["expected_cost"] / c["big"]
    if m.get("status") != "ok":
        return f"expected {exp:.1%} below the big model alone; end-to-end run {m.get('status')}"
    return (f"expected {exp:.1%} and measured {m['saving_vs_big_measured']:.1%} below the big model alone "
            f"({c['unit']} per input), at {m['accuracy']:.2%} top-1 vs {m['alone_accuracy']['big']:.2%} for big "
            f"alone on {m['samples']} held-out images ({m['drop_vs_big_points']:+.2f} points drop)")


def cascade_report_html(doc: dict) -> str:
    """A self-contained page: the choice, the verdict, the curve plot and the per-threshold table."""
    little, big = doc["models"]["little"]["name"], doc["models"]["big"]["name"]
    title = f"edgecc cascade: {little} → {big} on {doc['target']['name']}"
    t = doc["threshold"]
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p>Policy <code>{html.escape(doc['policy']['name'])}</code>, threshold <b>{t['value']:g}</b> "
            f"({html.escape(t['how'])}). {html.escape(doc['policy']['rule'])}.</p>",
            f"<p id=\"cascade-verdict\">{html.escape(verdict(doc))}.</p>",
            f"<p>Calibration: {html.escape(doc['calibration']['description'])}; validation: "
            f"{html.escape(str(doc['validation'].get('status')))}.</p>",
            "<h2>Accuracy against expected cost</h2>", cascade_curve_plot(doc),
            "<h2>Per threshold (calibration split)</h2>", _table(doc)]
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
