"""Benchmark reports: one JSON document per run of `edgecc bench` (schema `edgecc.report/1`, see
docs/report-schema.md), rendered as a Markdown table (PR comments) or a self-contained HTML page with plots
(runtime/report_html.py). Raw samples are kept; statistics are recomputed from them on load.

    doc = load_reports(["build/host.json", "build/m4/"])     # merge several runs
    print(to_markdown(doc)); failures = compare(base, new, max_regression=0.10)
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
import re
import subprocess
from pathlib import Path

from edgecc.errors import EdgeccError, ReportError, UsageError
from edgecc.runtime.stats import summarize

SCHEMA = "edgecc.report/1"


def environment() -> dict:
    """The machine edgecc ran on: CPU, OS, Python and tool versions (best effort; absent tools are omitted)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    env = {"cpu": cpu, "cpu_count": os.cpu_count(), "os": f"{platform.system()} {platform.release()}",
           "distro": _os_release(), "machine": platform.machine(), "python": platform.python_version(), "tools": {}}
    from importlib import metadata

    for pkg in ("edgecc", "iree-base-runtime", "apache-tvm", "torch", "onnxruntime", "openvino", "executorch",
                "numpy"):
        try:
            env["tools"][pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    for tool in ("qemu-aarch64", "qemu-system-arm"):
        try:
            out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=10).stdout
            m = re.search(r"version (\S+)", out)
            if m:
                env["tools"][tool] = m.group(1)
        except (OSError, subprocess.TimeoutExpired):
            pass
    return env


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return ""


def run_record(bundle, timing, device: dict, baselines: list | None = None) -> dict:
    """One artifact timed on one device. Keeps the old `edgecc bench` keys (bundle, model, target, backend,
    validation, timing) so existing readers keep working."""
    m = bundle.meta
    v = m.validation.to_dict()
    mem = m.artifact.memory
    rec = {**_identity(bundle), "device": device, "status": "partial" if timing.partial else "ok",
           "timing": timing.to_dict(), "validation": v,
           "numerics": {"reference": v.get("reference", "pytorch"), "status": v.get("status"),
                        "max_abs_error": v.get("max_abs_error"), "max_rel_error": v.get("max_rel_error"),
                        "top1_agreement": v.get("top1_agreement"), "tolerance": v.get("tolerance"),
                        "ran_on": v.get("ran_on")},
           "compile_seconds": m.compile.get("seconds"),
           "artifact": {"file": m.artifact.entry, "bytes": m.files[m.artifact.entry].size},
           "memory": None, "baselines": baselines or []}
    rec["fastest_peer"] = fastest_peer(rec)
    if mem:
        rec["memory"] = {"flash_bytes": mem.flash_bytes, "ram_bytes": mem.ram_bytes, "arena_bytes": mem.arena_bytes,
                         "board_flash_bytes": mem.board_flash_bytes, "board_ram_bytes": mem.board_ram_bytes,
                         "weights_bytes": mem.weights_bytes}
    peak = timing.extra.get("workspace_peak_bytes")
    if peak is not None and rec["memory"] is not None:
        rec["memory"]["workspace_peak_bytes"] = peak
    return rec


def fastest_peer(run: dict) -> dict | None:
    """The fastest baseline timed beside this run (same device, same run, each in its own process), the bar the
    artifact is held to: {"name", "p50_ms", "ratio"}, ratio = the artifact's p50 / the peer's (below 1: edgecc is
    faster). None without a millisecond timing or a baseline that ran. Derived from the raw samples.

        fastest_peer(run)   # {"name": "openvino", "p50_ms": 1.93, "ratio": 1.16}
    """
    t = run.get("timing")
    ok = [b for b in run.get("baselines") or [] if b.get("status") == "ok" and (b.get("timing") or {}).get("samples")]
    if not t or t.get("unit") != "ms" or not t.get("samples") or not ok:
        return None
    p50s = {b["name"]: summarize(b["timing"]["samples"])["p50"] for b in ok}
    name = min(p50s, key=p50s.get)
    mine = summarize(t["samples"])["p50"]
    return {"name": name, "p50_ms": p50s[name], "ratio": mine / p50s[name] if p50s[name] > 0 else None}


def peer_text(run: dict) -> str:
    """'1.16x openvino' (the artifact's p50 over the fastest peer's), or '–'."""
    peer = fastest_peer(run)
    return f"{peer['ratio']:.2f}x {peer['name']}" if peer and peer["ratio"] is not None else "–"


def failed_record(bundle, device: dict, error: str) -> dict:
    m = bundle.meta
    return {**_identity(bundle), "device": device, "status": "failed", "reason": error, "timing": None,
            "validation": m.validation.to_dict(), "numerics": None, "compile_seconds": m.compile.get("seconds"),
            "artifact": {"file": m.artifact.entry}, "memory": None, "baselines": []}


def _identity(bundle) -> dict:
    m = bundle.meta
    return {"bundle": str(bundle.path), "model": m.model.name, "target": m.target.name, "backend": m.backend}


def make_report(runs: list[dict], env: dict | None = None, warmup: int | None = None,
                iters: int | None = None) -> dict:
    return {"schema": SCHEMA, "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "environment": env if env is not None else environment(),
            "settings": {"warmup": warmup, "iterations": iters}, "runs": runs}


def run_key(run: dict) -> str:
    """model/target/backend@device [bundle folder]: two bundles of one model, target and backend (other options,
    other --name) are two runs, and a re-run of the same bundle replaces the earlier one."""
    key = f"{run['model']}/{run['target']}/{run['backend']}@{(run.get('device') or {}).get('spec', 'host')}"
    name = Path(str(run.get("bundle") or "")).name
    return f"{key} [{name}]" if name else key


def check_run(run, where: str) -> None:
    """ReportError unless `run` is a run record whose timing, if any, holds finite, non-negative samples."""
    if not isinstance(run, dict) or not all(isinstance(run.get(k), str) for k in ("model", "target", "backend")):
        raise ReportError(f"{where}: a run without model/target/backend; not an edgecc report run")
    t = run.get("timing")
    if t is None:
        return
    name = f"{where}: run {run['model']}/{run['target']}/{run['backend']}"
    if not isinstance(t, dict) or not isinstance(t.get("samples"), list) or not isinstance(t.get("unit"), str):
        raise ReportError(f"{name}: timing needs a samples list and a unit")
    samples = t["samples"]
    if not samples:
        raise ReportError(f"{name}: timing has no samples")
    for x in samples:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0:
            raise ReportError(f"{name}: sample {x!r} is not a finite, non-negative {t['unit']} value")


def load_report(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: not a readable JSON report ({e})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ReportError(f"{path}: not an edgecc report (want \"schema\": \"{SCHEMA}\"; write one with "
                          "`edgecc bench ... --json FILE`)")
    if not isinstance(doc.get("runs"), list):
        raise ReportError(f"{path}: \"runs\" is missing or not a list")
    for run in doc["runs"]:
        check_run(run, str(path))
    for run in doc["runs"]:  # statistics are derived data: recompute them from the raw samples
        if run.get("timing"):
            run["timing"]["stats"] = summarize(run["timing"]["samples"])
        run["fastest_peer"] = fastest_peer(run)
    return doc


SPLIT_SCHEMA = "edgecc.split/1"


def load_reports(paths) -> dict:
    """Merge reports (files, or folders searched for *.json reports) into one document; later runs of the same
    model/target/backend/device replace earlier ones."""
    files: list[Path] = []
    splits: list[dict] = []  # split.json documents (edgecc split) in the folders: a section each in the HTML
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(p.rglob("*.json")):
                try:
                    doc = json.loads(f.read_text())
                    if doc.get("schema") == SCHEMA:
                        files.append(f)
                    elif doc.get("schema") == SPLIT_SCHEMA and isinstance(doc.get("choice"), dict):
                        splits.append({**doc, "source": str(f)})
                except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                    continue
        elif p.is_file():
            files.append(p)
        else:
            raise EdgeccError(f"{p} does not exist")
    if not files and not splits:
        raise EdgeccError(f"no edgecc report found in {', '.join(map(str, paths))}")
    runs: dict[str, dict] = {}
    envs = []
    for f in files:
        doc = load_report(f)
        envs.append(doc.get("environment", {}))
        for run in doc["runs"]:
            runs[run_key(run)] = {**run, "source": str(f)}
    merged = make_report(list(runs.values()), env=envs[0] if envs else {})
    merged["sources"] = [str(f) for f in files]
    if splits:
        merged["splits"] = splits
    return merged


# ---- the console table of `edgecc bench` ----------------------------------------------------------------------

BENCH_COLUMNS = ["model", "target", "backend", "device", "unit", "min", "p50", "p90", "p99", "mean", "n",
                 "vs reference"]


def bench_rows(runs: list[dict]) -> list[tuple]:
    """One row per run (and one per baseline under it), in BENCH_COLUMNS order, as `edgecc bench` prints them."""
    rows = []
    for r in runs:
        t = r["timing"]
        if not t:
            rows.append((r["model"], r["target"], r["backend"], r["device"]["spec"], "-", "-", "-", "-", "-", "-",
                         "0", f"failed: {r['reason']}"))
            continue
        s = t["stats"]
        fmt = (lambda x: f"{x:.3f}") if t["unit"] == "ms" else (lambda x: f"{x:,.0f}")
        status = check_text(r["validation"]) + (f"; PARTIAL: {t['partial_reason']}" if t["partial"] else "")
        rows.append((r["model"], r["target"], r["backend"], r["device"]["spec"], t["unit"], fmt(s["min"]),
                     fmt(s["p50"]), fmt(s["p90"]), fmt(s["p99"]), fmt(s["mean"]), str(s["n"]), status))
        for b in r["baselines"]:
            if b["status"] != "ok":
                rows.append((f"  {b['name']}", "", "", r["device"]["spec"], *[""] * 7, b["reason"]))
                continue
            bs, speedup = b["timing"]["stats"], b["speedup"]
            vs = (f"edgecc {speedup:.2f}x faster" if speedup and speedup >= 1 else
                  f"edgecc {1 / speedup:.2f}x slower" if speedup else "")
            rows.append((f"  {b['name']}", "", "", r["device"]["spec"], "ms", fmt(bs["min"]), fmt(bs["p50"]),
                         fmt(bs["p90"]), fmt(bs["p99"]), fmt(bs["mean"]), str(bs["n"]), vs))
        peer = fastest_peer(r)
        if peer and peer["ratio"] is not None:
            rows.append((f"  fastest peer: {peer['name']}", "", "", r["device"]["spec"], *[""] * 7,
                         f"edgecc p50 = {peer['ratio']:.2f}x {peer['name']}'s"))
    return rows


def check_text(v: dict) -> str:
    if v.get("status") != "passed":
        return v.get("status", "?")
    return f"max abs err {v['max_abs_error']:.1e}"


# ---- Markdown ---------------------------------------------------------------------------------------------

def _num(x, unit: str) -> str:
    if x is None:
        return "–"
    return f"{x:,.0f}" if unit == "instructions" else f"{x:.3f}"


def to_markdown(doc: dict) -> str:
    """A GitHub-flavoured Markdown table per report (for PR comments)."""
    head = ("| model | target | backend | device | unit | min | p50 | p90 | p99 | mean | std | n (warm-up) | "
            "status | artifact | compile | error vs reference | baselines | vs fastest peer |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    methods = []
    for r in doc["runs"]:
        t = r.get("timing")
        size_s = _artifact_text(r)
        num = r.get("numerics") or {}
        err = (f"{num['max_abs_error']:.1e} ({num.get('reference')})" if num.get("max_abs_error") is not None
               else (num.get("status") or "–"))
        comp = f"{r['compile_seconds']:.1f} s" if r.get("compile_seconds") is not None else "–"
        base = "; ".join(_baseline_text(b) for b in r.get("baselines", [])) or "–"
        status = r["status"] + (f": {r.get('reason') or (t or {}).get('partial_reason', '')}"
                                if r["status"] != "ok" else "")
        if not t:
            lines.append(f"| {r['model']} | {r['target']} | {r['backend']} | {r['device']['spec']} | – | – | – | – "
                         f"| – | – | – | – | {status} | {size_s} | {comp} | {err} | {base} | – |")
            continue
        s, u = t["stats"], t["unit"]
        if t["method"] not in methods:
            methods.append(t["method"])
        mark = f"[{methods.index(t['method']) + 1}]"
        lines.append(f"| {r['model']} | {r['target']} | {r['backend']} | {r['device']['spec']} | {u} {mark} | "
                     + " | ".join(_num(s.get(k), u) for k in ("min", "p50", "p90", "p99", "mean", "std"))
                     + f" | {s['n']} ({t['warmup']}) | {status} | {size_s} | {comp} | {err} | {base} | "
                     f"{peer_text(r)} |")
    lines.append("")
    lines += [f"[{i + 1}] {m}" for i, m in enumerate(methods)]
    env = doc.get("environment", {})
    if env:
        lines.append(f"\nHost: {env.get('cpu', '?')} ({env.get('cpu_count', '?')} CPUs), "
                     f"{env.get('distro') or env.get('os')}, "
                     f"Python {env.get('python')}; " + ", ".join(f"{k} {v}" for k, v in env.get("tools", {}).items()))
    return "\n".join(lines) + "\n"


def _artifact_text(run: dict) -> str:
    """The artifact's size, or flash/RAM for a firmware."""
    if run.get("memory"):
        return (f"flash {run['memory']['flash_bytes'] / 1024:.0f} KiB, "
                f"RAM {run['memory']['ram_bytes'] / 1024:.0f} KiB")
    size = (run.get("artifact") or {}).get("bytes")
    return f"{size / 1024:.0f} KiB" if size else "–"


def _baseline_text(b: dict) -> str:
    if b.get("status") != "ok":
        return f"{b['name']}: {b.get('reason') or b.get('status')}"
    return f"{b['name']} p50 {b['timing']['stats']['p50']:.3f} ms (edgecc speedup {b['speedup']:.2f}x)"


# ---- CI gate ----------------------------------------------------------------------------------------------

def parse_percent(text: str) -> float:
    """'10%' -> 0.10, '0.1' -> 0.10."""
    t = str(text).strip()
    try:
        value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise UsageError(f"bad threshold {text!r}; write it like 10%") from None
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"bad threshold {text!r}: it must be a finite growth of 0% or more, like 10%")
    return value


def compare(base: dict, new: dict, max_regression: float, error_tolerance: float | None = None) -> tuple[list, list]:
    """(failures, lines). A run fails when its p50 grew by more than `max_regression`, its numerics moved by
    more than the tolerance (the bundle's atol unless `error_tolerance`), it went missing, partial or failed."""
    if not base["runs"]:
        raise ReportError("the base report has no runs: nothing to compare against (a gate needs a base)")
    if not new["runs"]:
        raise ReportError("the new report has no runs: every base run is missing")
    bruns = {run_key(r): r for r in base["runs"]}
    nruns = {run_key(r): r for r in new["runs"]}
    failures, lines = [], []
    for key, b in bruns.items():
        n = nruns.get(key)
        if n is None:
            failures.append(f"{key}: missing from the new report")
            continue
        if n["status"] != "ok" or not n.get("timing"):
            failures.append(f"{key}: new run is {n['status']}: {n.get('reason') or n['timing'].get('partial_reason')}")
            continue
        if not b.get("timing"):
            lines.append(f"{key}: no base timing; new p50 {n['timing']['stats']['p50']:.4g}")
            continue
        bt, nt = b["timing"], n["timing"]
        if bt["unit"] != nt["unit"]:
            failures.append(f"{key}: unit changed {bt['unit']} -> {nt['unit']}; not comparable")
            continue
        bp, np50 = bt["stats"]["p50"], nt["stats"]["p50"]
        if bp <= 0:
            failures.append(f"{key}: base p50 is {bp:g} {bt['unit']}; a ratio against it means nothing")
            continue
        change = np50 / bp - 1
        line = f"{key}: p50 {bp:.4g} -> {np50:.4g} {nt['unit']} ({change:+.1%})"
        if change > max_regression:
            failures.append(f"{line}: regression beyond {max_regression:.0%}")
        else:
            lines.append(line)
        bn, nn = b.get("numerics") or {}, n.get("numerics") or {}
        if nn.get("status") not in (None, "passed") and bn.get("status") == "passed":
            failures.append(f"{key}: numerics {bn.get('status')} -> {nn.get('status')}")
        elif bn.get("max_abs_error") is not None and nn.get("max_abs_error") is not None:
            tol = error_tolerance if error_tolerance is not None else (nn.get("tolerance") or {}).get("atol", 1e-4)
            delta = abs(nn["max_abs_error"] - bn["max_abs_error"])
            if delta > tol:
                failures.append(f"{key}: max abs error vs {nn.get('reference')} {bn['max_abs_error']:.2e} -> "
                                f"{nn['max_abs_error']:.2e} (changed by {delta:.2e} > tolerance {tol:g})")
        bt1, nt1 = bn.get("top1_agreement"), nn.get("top1_agreement")
        if bt1 is not None and nt1 is not None and nt1 < bt1:
            failures.append(f"{key}: top-1 agreement {bt1:.0%} -> {nt1:.0%}")
    for key in sorted(set(nruns) - set(bruns)):
        lines.append(f"{key}: new run (no base)")
    return failures, lines
