"""trtexec output → edgecc's latency report.

Reads the three things a TensorRT bundle's bench.sh leaves on the device: trtexec's log (the "Performance summary"),
the raw per-inference samples (--exportTimes JSON) and the per-layer profile (--exportProfile JSON). Handles both
summary dialects: TensorRT 8.x prints `percentile(99%)` only (older logs `percentile: ...`), 8.6+ and 10.x print
`percentile(90%)`, `(95%)` and `(99%)`.

    report = trtexec_report(log_text, times=json.load(...), profile=json.load(...))
    report["gpu_compute"]["stats"]["p99"]     # ms, from the raw samples
"""

from __future__ import annotations

import re

from edgecc.errors import EdgeccError
from edgecc.runtime.stats import Timing

GPU_COMPUTE = "trtexec --exportTimes: GPU compute time of each inference (CUDA events around enqueue, on the device)"
END_TO_END = ("trtexec --exportTimes: host latency of each inference = H2D copy + GPU compute + D2H copy "
              "(CUDA events, on the device)")

_METRICS = ("GPU Compute Time", "Enqueue Time", "H2D Latency", "D2H Latency", "Latency")
_VALUE = re.compile(r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\))\s*=?\s*([-+\d.eE]+)\s*ms")
_STAT_KEY = {"min": "min", "max": "max", "mean": "mean", "median": "p50"}


class TrtexecParseError(EdgeccError):
    """The text is not trtexec output edgecc can read."""

    exit_code = 4


def parse_summary(text: str) -> dict:
    """The "Performance summary" of a trtexec log: {metric: {min, max, mean, p50, p90, p95, p99}} (ms), throughput,
    TensorRT version, device and trtexec's warnings. Raises TrtexecParseError when no summary is found."""
    metrics: dict[str, dict] = {}
    for line in text.splitlines():
        heads = _metric_headers(line)
        for i, (name, start) in enumerate(heads):
            end = heads[i + 1][1] if i + 1 < len(heads) else len(line)
            values = {}
            for key, pct, num in _VALUE.findall(line[start:end]):
                values[_STAT_KEY.get(key) or f"p{float(pct):g}"] = float(num)
            if "min" in values:
                metrics[name] = values
    if "GPU Compute Time" not in metrics:
        raise TrtexecParseError("no trtexec performance summary (a 'GPU Compute Time: min = ... ms' line) found; "
                                "give the log that bench.sh wrote (OUT/trtexec.log)")
    out = {"metrics": metrics, "throughput_qps": _float(r"Throughput:\s*([\d.eE+-]+)\s*qps", text),
           "total_host_walltime_s": _float(r"Total Host Walltime:\s*([\d.eE+-]+)\s*s", text),
           "total_gpu_compute_s": _float(r"Total GPU Compute Time:\s*([\d.eE+-]+)\s*s", text),
           "tensorrt": tensorrt_version(text), "device": _str(r"Selected Device:\s*(.+)", text),
           "warnings": [w.strip() for w in re.findall(r"GPU compute time is unstable, with coefficient of variance = "
                                                      r"[\d.]+%|Throughput may be bound by [^\n*]*", text)]}
    return out


def _metric_headers(line: str):
    """(metric, offset) of each "<Metric>: min" in a line, longest names first so "H2D Latency" is not "Latency"."""
    found = []
    for name in _METRICS:
        for m in re.finditer(re.escape(name) + r"\s*:\s*min", line):
            if any(s <= m.start() < s + len(n) for n, s in found):
                continue
            if name == "Latency" and re.search(r"(H2D|D2H|Host)\s*$", line[:m.start()]):
                continue
            found.append((name, m.start()))
    return sorted(found, key=lambda x: x[1])


def tensorrt_version(text: str) -> str:
    """'8.6.3' from "TensorRT version: 8.6.3", or from the banner "[TensorRT v100200]" / "[TensorRT v8201]"."""
    v = _str(r"TensorRT version:\s*([\d.]+)", text)
    if v:
        return v
    m = re.search(r"\[TensorRT v(\d+)\]", text)
    if not m:
        return ""
    n = int(m.group(1))
    if n >= 10000:  # 10.x: major*10000 + minor*100 + patch
        return f"{n // 10000}.{n // 100 % 100}.{n % 100}"
    return f"{n // 1000}.{n // 100 % 10}.{n % 100}"  # 8.x: major*1000 + minor*100 + patch


def parse_times(records) -> tuple[Timing, Timing]:
    """(GPU compute, end-to-end) Timings from trtexec --exportTimes JSON (a list of per-inference records)."""
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise TrtexecParseError("times JSON is not trtexec --exportTimes output (a list of per-inference records)")
    try:
        compute = [float(r["computeMs"]) for r in records]
        latency = [float(r["latencyMs"]) for r in records]
    except (KeyError, TypeError, ValueError):
        raise TrtexecParseError("times JSON records lack computeMs/latencyMs (not trtexec --exportTimes "
                                "output)") from None
    extra = {}
    if all("h2dMs" in r and "d2hMs" in r for r in records):
        extra = {"h2d_ms_mean": sum(float(r["h2dMs"]) for r in records) / len(records),
                 "d2h_ms_mean": sum(float(r["d2hMs"]) for r in records) / len(records)}
    if all("startEnqMs" in r and "endEnqMs" in r for r in records):
        extra["enqueue_ms_mean"] = sum(float(r["endEnqMs"]) - float(r["startEnqMs"]) for r in records) / len(records)
    n = len(records)
    return (Timing(compute, "ms", GPU_COMPUTE, iterations=n, extra=extra),
            Timing(latency, "ms", END_TO_END, iterations=n, extra=extra))


def parse_profile(entries) -> dict:
    """Per-layer times from trtexec --exportProfile JSON: [{"count": N}, {"name", "timeMs", "averageMs",
    ["medianMs",] "percentage"}, ...]. Layers come back slowest first."""
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict) or "count" not in entries[0]:
        raise TrtexecParseError("profile JSON is not trtexec --exportProfile output (first record {\"count\": N})")
    layers = []
    for e in entries[1:]:
        try:
            layer = {"name": str(e["name"]), "total_ms": float(e["timeMs"]), "average_ms": float(e["averageMs"]),
                     "percent": float(e["percentage"])}
        except (KeyError, TypeError, ValueError):
            raise TrtexecParseError(f"profile record {e!r:.120} lacks name/timeMs/averageMs/percentage") from None
        if "medianMs" in e:
            layer["median_ms"] = float(e["medianMs"])
        layers.append(layer)
    layers.sort(key=lambda x: -x["total_ms"])
    return {"iterations": int(entries[0]["count"]), "layers": layers,
            "sum_of_layer_averages_ms": sum(x["average_ms"] for x in layers)}


def trtexec_report(log_text: str | None = None, times=None, profile=None) -> dict:
    """edgecc's report from any of: the trtexec log text, --exportTimes JSON, --exportProfile JSON."""
    if log_text is None and times is None and profile is None:
        raise TrtexecParseError("nothing to parse: give a trtexec log, --times JSON or --profile JSON")
    report: dict = {"unit": "ms"}
    if log_text is not None:
        report["summary"] = parse_summary(log_text)
    if times is not None:
        compute, e2e = parse_times(times)
        report["gpu_compute"], report["end_to_end"] = compute.to_dict(), e2e.to_dict()
    if profile is not None:
        report["profile"] = parse_profile(profile)
    return report


def _float(pattern: str, text: str):
    m = re.search(pattern, text)
    return float(m.group(1)) if m else None


def _str(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    return m.group(1).strip() if m else ""


def read_report(log: str | None, times: str | None, profile: str | None) -> dict:
    """trtexec_report() from files, with one-line errors for missing or unreadable ones."""
    import json
    from pathlib import Path

    def load(path, what, as_json):
        p = Path(path)
        if not p.is_file():
            raise TrtexecParseError(f"{what} file {path} does not exist")
        text = p.read_text(errors="replace")
        if not as_json:
            return text
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise TrtexecParseError(f"{path} is not JSON ({e.msg} at line {e.lineno}); give trtexec's "
                                    f"--export{what.split()[0].capitalize()} file") from None

    report = trtexec_report(load(log, "log", False) if log else None,
                            load(times, "times JSON", True) if times else None,
                            load(profile, "profile JSON", True) if profile else None)
    report["files"] = {k: str(v) for k, v in (("log", log), ("times", times), ("profile", profile)) if v}
    return report


def print_report(report: dict, n_layers: int = 10) -> None:
    """The report as tables: summary metrics, statistics of the raw samples, the slowest layers."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    cols = ("min", "p50", "p90", "p99", "mean", "max")
    fmt = lambda v: "" if v is None else f"{v:.4g}"  # noqa: E731
    summary = report.get("summary")
    if summary:
        t = Table("trtexec summary (ms)", *cols, box=None, pad_edge=False,
                  title=f"TensorRT {summary['tensorrt'] or '?'} on {summary['device'] or '?'}; throughput "
                        f"{fmt(summary['throughput_qps'])} qps")
        for name, m in summary["metrics"].items():
            t.add_row(name, *[fmt(m.get(c)) for c in cols])
        console.print(t)
        for w in summary["warnings"]:
            console.print(f"trtexec warning: {w}")
    for key, label in (("gpu_compute", "GPU compute"), ("end_to_end", "end-to-end (H2D + compute + D2H)")):
        if key in report:
            s = report[key]["stats"]
            t = Table(f"raw samples (ms, n={s['n']})", *cols, box=None, pad_edge=False)
            t.add_row(label, *[fmt(s.get(c)) for c in cols])
            console.print(t)
            console.print(f"method: {report[key]['method']}")
    prof = report.get("profile")
    if prof and prof["layers"]:
        t = Table("layer", "avg ms", "total ms", "%", box=None, pad_edge=False,
                  title=f"slowest {min(n_layers, len(prof['layers']))} of {len(prof['layers'])} layers "
                        f"({prof['iterations']} profiled iterations)")
        for layer in prof["layers"][:n_layers]:
            t.add_row(layer["name"][:100], fmt(layer["average_ms"]), fmt(layer["total_ms"]), fmt(layer["percent"]))
        console.print(t)
