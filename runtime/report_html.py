"""A self-contained HTML page for a report: inline SVG plots, inline CSS, no script, nothing fetched.

Plots (each an <svg class="plot"> with a stable id, for tests and for people linking to them):
  #latency-<unit>   latency distribution per artifact: box (p10..p90 whiskers, p25..p75 box, p50 line) + samples
  #baselines        p50 of each artifact beside its baselines (ORT, OpenVINO, ExecuTorch, PyTorch), same device and run
  #mcu-footprint    flash and RAM of microcontroller artifacts against their board's capacity
"""

from __future__ import annotations

import html
import json

import numpy as np

COLORS = ["#3b6ea8", "#d1742b", "#4b9a55", "#b8454a", "#7a5aa6", "#8c6d46", "#c0609a", "#6b7b8c"]
W, ROW, LEFT, RIGHT = 900, 34, 300, 40


def _label(run: dict) -> str:
    return f"{run['model']} · {run['target']} · {run['backend']} @ {run['device']['spec']}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    return list(np.linspace(lo, hi, n))


def _fmt(x: float, unit: str) -> str:
    if unit == "instructions":
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _axis(lo: float, hi: float, y: float, unit: str, scale) -> str:
    out = [f'<line class="axis" x1="{LEFT}" y1="{y}" x2="{W - RIGHT}" y2="{y}"/>']
    for t in _ticks(lo, hi):
        x = scale(t)
        out.append(f'<line class="tick" x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 5}"/>'
                   f'<text class="ticklabel" x="{x:.1f}" y="{y + 18}" text-anchor="middle">{_fmt(t, unit)}</text>')
    out.append(f'<text class="axislabel" x="{(LEFT + W - RIGHT) / 2}" y="{y + 34}" text-anchor="middle">'
               f'{html.escape(unit)}</text>')
    return "".join(out)


def plot_group(timing: dict) -> str:
    """Samples share an axis only when they measure the same kind of thing: device/host time, emulated time
    (qemu-user: not device time) or emulator instructions."""
    emulated = timing["method"].startswith("emulated")
    return f"{'emulated-' if emulated else ''}{timing['unit']}"


def latency_plot(runs: list[dict], group: str) -> str:
    """Box + strip plot of the raw samples, one row per artifact, one shared axis per group."""
    rows = [r for r in runs if r.get("timing") and plot_group(r["timing"]) == group and r["timing"]["samples"]]
    unit = rows[0]["timing"]["unit"]
    allv = np.concatenate([np.asarray(r["timing"]["samples"], float) for r in rows])
    lo, hi = float(allv.min()), float(allv.max())
    pad = (hi - lo) * 0.05 or max(abs(hi) * 0.05, 1e-9)
    lo, hi = max(0.0, lo - pad), hi + pad

    def scale(v):
        return LEFT + (v - lo) / (hi - lo) * (W - LEFT - RIGHT)

    h = ROW * len(rows) + 60
    parts = [f'<svg class="plot latency" id="latency-{group}" xmlns="http://www.w3.org/2000/svg" '
             f'viewBox="0 0 {W} {h}" width="{W}" height="{h}" role="img" '
             f'aria-label="latency distribution per artifact ({html.escape(unit)})">']
    rng = np.random.default_rng(0)
    for i, r in enumerate(rows):
        s = np.asarray(r["timing"]["samples"], float)
        yc = 20 + i * ROW + ROW / 2
        c = COLORS[i % len(COLORS)]
        p10, p25, p50, p75, p90 = np.percentile(s, [10, 25, 50, 75, 90])
        title = html.escape(f"{_label(r)}: p50 {_fmt(p50, unit)} {unit}, n={s.size}"
                            + (" (partial)" if r["timing"].get("partial") else ""))
        parts.append(f'<g class="artifact" data-run="{html.escape(_label(r))}"><title>{title}</title>'
                     f'<text class="rowlabel" x="{LEFT - 8}" y="{yc + 4}" text-anchor="end">'
                     f'{html.escape(_label(r))}{" (partial)" if r["timing"].get("partial") else ""}</text>'
                     f'<line class="whisker" x1="{scale(p10):.1f}" y1="{yc}" x2="{scale(p90):.1f}" y2="{yc}" '
                     f'stroke="{c}"/>'
                     f'<rect class="box" x="{scale(p25):.1f}" y="{yc - 9}" '
                     f'width="{max(scale(p75) - scale(p25), 1):.1f}" height="18" fill="{c}" fill-opacity="0.25" '
                     f'stroke="{c}"/>'
                     f'<line class="median" x1="{scale(p50):.1f}" y1="{yc - 11}" x2="{scale(p50):.1f}" '
                     f'y2="{yc + 11}" stroke="{c}" stroke-width="2.5"/>')
        for v in s:
            parts.append(f'<circle class="sample" cx="{scale(v):.1f}" cy="{yc + rng.uniform(-6, 6):.1f}" r="2" '
                         f'fill="{c}" fill-opacity="0.6"/>')
        parts.append("</g>")
    parts.append(_axis(lo, hi, 20 + ROW * len(rows) + 4, unit, scale))
    parts.append("</svg>")
    return "".join(parts)


def baselines_plot(runs: list[dict]) -> str:
    """Grouped horizontal bars: each artifact's p50 and its baselines' p50 (ms, same device, same run)."""
    bars = []
    for r in runs:
        t = r.get("timing")
        if not t or t["unit"] != "ms":
            continue
        ok = [b for b in r.get("baselines", []) if b.get("status") == "ok"]
        if not ok:
            continue
        bars.append((f"{r['model']} · {r['target']} · {r['backend']}", t["stats"]["p50"], "edgecc", None))
        for b in ok:
            bars.append((f"  {b['name']}", b["timing"]["stats"]["p50"], b["name"], b.get("speedup")))
    if not bars:
        return ""
    hi = max(v for _, v, _, _ in bars) * 1.05

    def scale(v):  # leaves room right of the longest bar for its value and speedup
        return LEFT + v / hi * (W - LEFT - RIGHT - 230)

    h = 26 * len(bars) + 60
    names = sorted({k for _, _, k, _ in bars})
    parts = [f'<svg class="plot bars" id="baselines" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h}" '
             f'width="{W}" height="{h}" role="img" aria-label="p50 latency vs baselines">']
    for i, (label, v, kind, speed) in enumerate(bars):
        y = 20 + i * 26
        c = COLORS[names.index(kind) % len(COLORS)]
        note = f" (edgecc speedup {speed:.2f}x)" if speed else ""
        parts.append(f'<g class="bar-group" data-kind="{html.escape(kind)}"><title>{html.escape(label.strip())}: '
                     f'p50 {v:.3f} ms{note}</title>'
                     f'<text class="rowlabel" x="{LEFT - 8}" y="{y + 14}" text-anchor="end">{html.escape(label)}</text>'
                     f'<rect class="bar" x="{LEFT}" y="{y + 2}" width="{max(scale(v) - LEFT, 1):.1f}" height="18" '
                     f'fill="{c}"/><text class="value" x="{scale(v) + 4:.1f}" y="{y + 15}">{v:.3f} ms{note}</text></g>')
    parts.append(_axis(0, hi, 20 + 26 * len(bars) + 4, "ms (p50)", scale))
    parts.append("</svg>")
    return "".join(parts)


def footprint_plot(runs: list[dict]) -> str:
    """Flash and RAM bars per microcontroller artifact, against the board's capacity (thin outline)."""
    rows = [r for r in runs if r.get("memory") and r["memory"].get("flash_bytes") is not None]
    if not rows:
        return ""
    h = len(rows) * 2 * 26 + 70
    parts = [f'<svg class="plot bars" id="mcu-footprint" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h}" '
             f'width="{W}" height="{h}" role="img" aria-label="MCU flash and RAM footprint">']
    i = 0
    for r in rows:
        m = r["memory"]
        for kind, used, cap, c in (("flash", m["flash_bytes"], m.get("board_flash_bytes"), COLORS[0]),
                                   ("RAM", m["ram_bytes"], m.get("board_ram_bytes"), COLORS[1])):
            y = 20 + i * 26
            full = W - LEFT - RIGHT - 160
            frac = used / cap if cap else 1.0
            parts.append(f'<g class="footprint" data-kind="{kind}"><title>{html.escape(_label(r))} {kind}: '
                         f'{used / 1024:.1f} KiB{f" of {cap / 1024:.0f} KiB" if cap else ""}</title>'
                         f'<text class="rowlabel" x="{LEFT - 8}" y="{y + 14}" text-anchor="end">'
                         f'{html.escape(r["model"] + " · " + r["target"])} {kind}</text>'
                         f'<rect class="capacity" x="{LEFT}" y="{y + 2}" width="{full}" height="18" fill="none" '
                         f'stroke="#999"/><rect class="bar" x="{LEFT}" y="{y + 2}" '
                         f'width="{max(min(frac, 1) * full, 1):.1f}" height="18" fill="{c}"/>'
                         f'<text class="value" x="{LEFT + full + 6}" y="{y + 15}">{used / 1024:.1f}'
                         f'{f" / {cap / 1024:.0f}" if cap else ""} KiB ({frac:.0%})</text></g>')
            i += 1
    parts.append(f'<text class="axislabel" x="{LEFT}" y="{h - 14}">bar: used; outline: the board\'s capacity</text>')
    parts.append("</svg>")
    return "".join(parts)


CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
td:nth-child(-n+5),th{text-align:left}.plot{display:block;margin:8px 0 24px}.rowlabel,.ticklabel,.value{font-size:12px}
.axis,.tick{stroke:#555}.whisker{stroke-width:1.5}.axislabel{font-size:12px;fill:#555}.partial{color:#b8454a}
code{background:#f3f3f3;padding:1px 4px}"""


def to_html(doc: dict, title: str = "edgecc benchmark report") -> str:
    runs = doc["runs"]
    groups = []
    for r in runs:
        if r.get("timing") and plot_group(r["timing"]) not in groups:
            groups.append(plot_group(r["timing"]))
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p>{len(runs)} run(s); created {html.escape(doc.get('created', ''))}; schema <code>{doc['schema']}</code>"
            "; raw samples are in the JSON report.</p>", "<h2>Results</h2>", _table(runs)]
    headings = {"ms": "Latency distribution per artifact (ms)",
                "emulated-ms": "Emulated latency per artifact (qemu-aarch64 user mode on x86 — not device time)",
                "instructions": "Emulated instruction counts per inference (QEMU icount — instructions, not time)"}
    for g in groups:
        body += [f"<h2>{headings.get(g, html.escape(g))}</h2>", latency_plot(runs, g)]
    bp = baselines_plot(runs)
    if bp:
        body += ["<h2>Against baselines (p50, same device, same run, each in its own process)</h2>", bp]
    fp = footprint_plot(runs)
    if fp:
        body += ["<h2>Microcontroller footprint</h2>", fp]
    if doc.get("splits"):
        from edgecc.runtime.report_split import split_section

        for sp in doc["splits"]:
            body += split_section(sp, level=2)
    methods = sorted({r["timing"]["method"] for r in runs if r.get("timing")})
    body += ["<h2>Methods</h2><ul>" + "".join(f"<li>{html.escape(m)}</li>" for m in methods) + "</ul>",
             "<h2>Environment</h2>", f"<pre>{html.escape(json.dumps(doc.get('environment', {}), indent=2))}</pre>"]
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")


def _table(runs: list[dict]) -> str:
    head = ["model", "target", "backend", "device", "method", "unit", "min", "p50", "p90", "p99", "mean", "std",
            "n (warm-up)", "status", "artifact", "compile", "error vs reference", "baselines", "vs fastest peer"]
    rows = []
    from edgecc.runtime.report import _artifact_text, _baseline_text, _num, peer_text

    for r in runs:
        t = r.get("timing")
        art = _artifact_text(r)
        num = r.get("numerics") or {}
        err = f"{num['max_abs_error']:.1e}" if num.get("max_abs_error") is not None else num.get("status", "–")
        why = r.get("reason") or (t or {}).get("partial_reason", "")
        status = r["status"] if r["status"] == "ok" else \
            f'<span class="partial">{html.escape(r["status"] + ": " + why)}</span>'
        cells = [r["model"], r["target"], r["backend"], r["device"]["spec"], (t or {}).get("method", "–"),
                 (t or {}).get("unit", "–")]
        cells = [html.escape(str(c)) for c in cells]
        s, u = (t or {}).get("stats", {}), (t or {}).get("unit", "ms")
        cells += [_num(s.get(k), u) for k in ("min", "p50", "p90", "p99", "mean", "std")]
        cells += [f"{s.get('n', 0)} ({(t or {}).get('warmup', '–')})", status, art,
                  f"{r['compile_seconds']:.1f} s" if r.get("compile_seconds") is not None else "–",
                  html.escape(str(err)),
                  html.escape("; ".join(_baseline_text(b) for b in r.get("baselines", [])) or "–"),
                  html.escape(peer_text(r))]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ('<table id="results"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")
