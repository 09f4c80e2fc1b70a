"""Reports without toolchains: device specs, chunked retries, the compare gate's rules, Markdown/HTML shape."""

import json

import pytest

from edgecc.errors import DeviceError, EdgeccError, TargetError
from edgecc.runtime.devices import parse_device, run_chunked
from edgecc.runtime.report import SCHEMA, compare, load_reports, make_report, parse_percent, to_markdown
from edgecc.runtime.report_html import to_html
from edgecc.runtime.stats import Timing


def test_parse_device_specs():
    assert parse_device(None) is None
    d = parse_device("ssh://pi@board.local:2222")
    assert (d.kind, d.user, d.host, d.port) == ("ssh", "pi", "board.local", 2222)
    assert parse_device("ssh://board").port == 22 and parse_device("ssh://board").user == ""
    r = parse_device("rpc://10.0.0.5:9190/rk3588")
    assert (r.kind, r.host, r.port, r.key) == ("rpc", "10.0.0.5", 9190, "rk3588")
    assert parse_device("board:nucleo-l4r5zi").key == "nucleo-l4r5zi"
    for bad in ("ssh:/x", "rpc://host/key", "usb", "rpc://h:p/k"):
        with pytest.raises(TargetError, match="unknown device"):
            parse_device(bad)


def test_run_chunked_retries_then_keeps_partial_samples():
    calls = []

    def measure(n):
        calls.append(n)
        if len(calls) in (2, 4, 5):  # a drop that a retry survives, then one it does not
            raise DeviceError("connection lost")
        return [1.0] * n

    samples, reason, attempts = run_chunked(measure, iters=10, chunk=3, retries=1, backoff=0)
    assert samples == [1.0] * 6 and attempts == 5
    assert reason.startswith("device lost after 6 of 10 samples (2 tries)")
    with pytest.raises(DeviceError, match="no sample completed"):
        run_chunked(lambda n: (_ for _ in ()).throw(DeviceError("down")), 4, 2, 0, backoff=0)


def _run(samples, err=1e-6, unit="ms", device="host", model="m"):
    t = Timing(samples=samples, unit=unit, method="wall clock", warmup=1, iterations=len(samples))
    return {"model": model, "target": "host", "backend": "iree", "device": {"spec": device, "kind": device},
            "status": "ok", "timing": t.to_dict(), "numerics": {"reference": "pytorch", "status": "passed",
                                                                "max_abs_error": err, "tolerance": {"atol": 1e-4},
                                                                "top1_agreement": 1.0},
            "artifact": {"file": "model.vmfb", "bytes": 2048}, "compile_seconds": 1.0, "memory": None,
            "baselines": []}


def test_compare_rules():
    base = make_report([_run([1.0, 1.1, 0.9])], env={})
    assert compare(base, base, 0.10)[0] == []
    assert compare(base, make_report([_run([1.05, 1.15, 0.95])], env={}), 0.10)[0] == []
    fails, _ = compare(base, make_report([_run([1.2, 1.3, 1.1])], env={}), 0.10)
    assert len(fails) == 1 and "+20.0%" in fails[0] and "regression beyond 10%" in fails[0]
    fails, _ = compare(base, make_report([_run([1.0, 1.1, 0.9], err=2e-3)], env={}), 0.10)
    assert len(fails) == 1 and "max abs error" in fails[0]
    partial = _run([1.0])
    partial["status"], partial["timing"]["partial_reason"] = "partial", "device lost after 1 of 3 samples"
    assert "partial" in compare(base, make_report([partial], env={}), 0.10)[0][0]
    assert "missing" in compare(base, make_report([_run([1.0], model="other")], env={}), 0.10)[0][0]
    assert parse_percent("10%") == pytest.approx(0.10) and parse_percent("0.25") == 0.25
    with pytest.raises(EdgeccError, match="bad threshold"):
        parse_percent("ten")


def test_merge_markdown_and_html(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "host.json").write_text(json.dumps(make_report([_run([1.0, 2.0])], env={})))
    (tmp_path / "b.json").write_text(json.dumps(make_report([_run([5e6, 5.1e6], unit="instructions",
                                                                  device="qemu")], env={})))
    (tmp_path / "a" / "unrelated.json").write_text("{}")
    doc = load_reports([tmp_path / "a", tmp_path / "b.json"])
    assert doc["schema"] == SCHEMA and len(doc["runs"]) == 2 and len(doc["sources"]) == 2
    md = to_markdown(doc)
    assert md.count("| m | host | iree |") == 2 and "5,000,000" in md and "[1] wall clock" in md
    page = to_html(doc)
    assert 'id="latency-ms"' in page and 'id="latency-instructions"' in page and "<script" not in page
    with pytest.raises(EdgeccError, match="not an edgecc report"):
        load_reports([tmp_path / "a" / "unrelated.json"])


@pytest.mark.parametrize("sample", [True, None, "1.0", float("nan"), -1.0])
def test_a_report_with_a_sample_that_is_not_a_number_is_refused(tmp_path, sample):
    from edgecc.errors import ReportError

    doc = make_report([_run([1.0, 2.0])], env={})
    doc["runs"][0]["timing"]["samples"][1] = sample
    (tmp_path / "r.json").write_text(json.dumps(doc))
    with pytest.raises(ReportError, match="is not a finite, non-negative ms value"):
        load_reports([tmp_path / "r.json"])


def test_fastest_peer_is_the_lowest_p50_that_ran_and_is_recomputed_on_load(tmp_path):
    from edgecc.runtime.report import fastest_peer, peer_text

    run = _run([2.0, 2.0, 2.2])
    assert fastest_peer(run) is None and peer_text(run) == "–"  # no baseline: no bar
    run["baselines"] = [{"name": "onnxruntime", "status": "ok", "timing": _run([1.6, 1.6])["timing"],
                         "speedup": 0.8},
                        {"name": "openvino", "status": "ok", "timing": _run([1.0, 1.0, 9.0])["timing"],
                         "speedup": 0.5},
                        {"name": "executorch-xnnpack", "status": "not run", "reason": "not run: pip install x"}]
    assert fastest_peer(run) == {"name": "openvino", "p50_ms": 1.0, "ratio": 2.0}
    run["fastest_peer"] = {"name": "stale"}  # derived data: a report's own value is not trusted on load
    (tmp_path / "r.json").write_text(json.dumps(make_report([run], env={})))
    [loaded] = load_reports([tmp_path / "r.json"])["runs"]
    assert loaded["fastest_peer"]["name"] == "openvino" and "| 2.00x openvino |" in to_markdown({"runs": [loaded]})
