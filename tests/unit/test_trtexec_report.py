"""The trtexec parser on genuine trtexec output (tests/data/trtexec/README.md says where each sample came from)."""

import json

import pytest

from edgecc.runtime.trtexec_report import (
    TrtexecParseError,
    parse_profile,
    parse_summary,
    parse_times,
    tensorrt_version,
    trtexec_report,
)
from tests.conftest import DATA

SAMPLES = DATA / "trtexec"


def test_trt10_summary_with_p90_p95_p99():
    # NVIDIA/TensorRT issue #4177: the 8.6+/10.x dialect
    s = parse_summary((SAMPLES / "trt10_summary_nvidia_tensorrt_issue4177.log").read_text())
    gpu = s["metrics"]["GPU Compute Time"]
    assert gpu == {"min": 5.34595, "max": 13.3388, "mean": 7.58404, "p50": 7.14139, "p90": 10.2881,
                   "p95": 10.8175, "p99": 12.9485}
    assert s["metrics"]["Latency"]["p99"] == 12.9675 and s["metrics"]["Latency"]["min"] == 5.38672
    assert s["metrics"]["H2D Latency"]["p50"] == 0.00814819  # not confused with "Latency"
    assert s["metrics"]["D2H Latency"]["max"] == 0.110596
    assert s["metrics"]["Enqueue Time"]["p95"] == 11.7217
    assert s["throughput_qps"] == 130.298 and s["total_gpu_compute_s"] == 2.96536
    assert s["total_host_walltime_s"] == 3.00082


def test_trt8_summary_with_p99_only_and_warning():
    # WongKinYiu/yolov7 PR #329: the 8.x dialect, data transfers disabled
    s = parse_summary((SAMPLES / "trt8_summary_yolov7_pr329.log").read_text())
    gpu = s["metrics"]["GPU Compute Time"]
    assert gpu == {"min": 1.3476, "max": 1.5657, "mean": 1.38629, "p50": 1.38037, "p99": 1.55853}
    assert "p90" not in gpu  # 8.x prints no p90: the report says nothing rather than inventing one
    assert s["metrics"]["H2D Latency"] == {"min": 0.0, "max": 0.0, "mean": 0.0, "p50": 0.0, "p99": 0.0}
    assert s["metrics"]["Enqueue Time"]["p99"] == 0.071167
    assert s["throughput_qps"] == 716.632 and s["total_gpu_compute_s"] == 2.9833
    assert s["warnings"] == ["GPU compute time is unstable, with coefficient of variance = 2.10486%"]


def test_jetson_summary_as_pasted_by_a_user():
    # beyondli/Yolo_on_Jetson issue #4: no log prefixes, some '=' lost, three metrics on one line
    s = parse_summary((SAMPLES / "trt8_summary_jetson_yolo_on_jetson_issue4.log").read_text())
    assert s["metrics"]["Latency"] == {"min": 5.38959, "max": 6.19507, "mean": 5.93288, "p50": 6.02185,
                                       "p99": 6.17407}
    assert s["metrics"]["GPU Compute Time"]["p99"] == 3.87793 and s["metrics"]["GPU Compute Time"]["p50"] == 3.71753
    assert s["metrics"]["D2H Latency"] == {"min": 1.30469, "max": 1.56445, "mean": 1.47722, "p50": 1.48657,
                                           "p99": 1.50879}
    assert s["metrics"]["H2D Latency"]["mean"] == 0.82323
    assert s["throughput_qps"] == 169.352 and s["total_gpu_compute_s"] == 1.87796
    assert s["total_host_walltime_s"] == 3.05281


def test_export_times_samples():
    # NVIDIA/TensorRT trt-engine-explorer test input (first 10 records): GPU compute vs end-to-end
    compute, e2e = parse_times(json.loads((SAMPLES / "mobilenet_qat.timing.json").read_text()))
    assert compute.samples[:3] == [0.459041, 0.442369, 0.444799] and len(compute.samples) == 10
    assert compute.unit == "ms" and "GPU compute" in compute.method and "H2D" in e2e.method
    s = compute.stats()
    assert s["min"] == 0.442369 and s["max"] == 0.900864 and s["n"] == 10
    assert s["p50"] == pytest.approx((0.444512 + 0.444544) / 2)
    assert e2e.samples == compute.samples  # recorded with --noDataTransfers: h2dMs = d2hMs = 0
    assert compute.extra["h2d_ms_mean"] == 0 and compute.extra["enqueue_ms_mean"] == pytest.approx(0.05025)


def test_export_profile_layers():
    p = parse_profile(json.loads((SAMPLES / "mobilenet_qat.profile.json").read_text()))
    assert p["iterations"] == 4216 and len(p["layers"]) == 10
    top = p["layers"][0]
    assert top == {"name": "features.16.conv.2.weight + QuantizeLinear_771 + Conv_775 + Add_777", "total_ms": 73.3303,
                   "average_ms": 0.0173933, "percent": 2.68804}
    assert p["layers"][-1]["total_ms"] == 0
    gap = next(x for x in p["layers"] if x["name"] == "GlobalAveragePool_843")
    assert gap["average_ms"] == 0.00610158 and gap["percent"] == 0.942966


def test_full_report_and_version_banners():
    r = trtexec_report((SAMPLES / "trt8_summary_yolov7_pr329.log").read_text(),
                       json.loads((SAMPLES / "mobilenet_qat.timing.json").read_text()),
                       json.loads((SAMPLES / "mobilenet_qat.profile.json").read_text()))
    assert r["gpu_compute"]["stats"]["min"] == 0.442369 and r["end_to_end"]["stats"]["max"] == 0.900864
    assert r["summary"]["metrics"]["GPU Compute Time"]["p99"] == 1.55853 and r["profile"]["iterations"] == 4216
    # the banner trtexec prints first: "&&&& RUNNING TensorRT.trtexec [TensorRT v100200] # ..." (issue #4036)
    assert tensorrt_version("&&&& RUNNING TensorRT.trtexec [TensorRT v100200] # trtexec.exe") == "10.2.0"
    assert tensorrt_version("&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # trtexec") == "8.2.1"
    assert tensorrt_version("[03/28/2024-07:10:12] [I] TensorRT version: 8.6.3") == "8.6.3"


@pytest.mark.parametrize("call, message", [
    (lambda: parse_summary("no numbers here"), "no trtexec performance summary"),
    (lambda: parse_times({"computeMs": 1}), "not trtexec --exportTimes output"),
    (lambda: parse_times([{"startEnqMs": 1}]), "lack computeMs/latencyMs"),
    (lambda: parse_profile([{"name": "x"}]), "not trtexec --exportProfile output"),
    (lambda: trtexec_report(), "nothing to parse"),
])
def test_bad_input_is_one_line(call, message):
    with pytest.raises(TrtexecParseError, match=message) as e:
        call()
    assert "\n" not in str(e.value)
