"""The cascade's pieces that need no toolchain: the policy scores, the calibration curve and the automatic
threshold, the request checks (one-line refusals before any model is loaded), calibration folders, the device-side
policy script and the HTML curve."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgecc.compiler.compose.cascade import plan_cascade
from edgecc.compiler.compose.cascade_calibration import THRESHOLDS, choose_threshold, load_calibration, threshold_curve
from edgecc.errors import ModelError, UsageError
from edgecc.runtime.cascade import BIG, LITTLE, decide, score, score_one, softmax
from edgecc.runtime.report_cascade import cascade_report_html

POLICY_SCRIPT = __import__("pathlib").Path(__file__).resolve().parents[2] / "runtime" / "scripts" / \
    "cascade_policy.py"


def test_scores_are_softmax_margin_and_max_probability():
    logits = np.array([[2.0, 0.0, 0.0], [1.0, 1.0, -5.0], [9.0, 0.0, 8.0]])
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    top = np.sort(p, 1)
    assert np.allclose(score(logits, "score-margin"), top[:, -1] - top[:, -2])
    assert np.allclose(score(logits, "max-prob"), top[:, -1])
    assert score(logits, "score-margin")[1] == pytest.approx(0.0)  # a tie: no confidence at all
    assert np.allclose(softmax(np.array([[1000.0, 0.0]])), [[1.0, 0.0]])  # shifted: no overflow
    assert list(decide(logits, "score-margin", 0.5)) == [LITTLE, BIG, BIG]  # margins 0.68, 0, 0.46
    assert list(decide(logits, "max-prob", 0.0)) == [LITTLE, LITTLE, LITTLE]
    for policy in ("score-margin", "max-prob"):  # the host runner's per-input form
        assert [score_one(r, policy) for r in logits] == pytest.approx(list(score(logits, policy)), abs=1e-12)
    with pytest.raises(ValueError, match="unknown cascade policy"):
        score(logits, "entropy")


def _synthetic(n=200, seed=0):
    """A little model right on its confident 80% and wrong on the rest; a big model right everywhere but 2."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    little = rng.normal(0, 0.1, (n, 10))
    confident = np.arange(n) < int(0.8 * n)
    little[np.arange(n), np.where(confident, y, (y + 1) % 10)] += np.where(confident, 8.0, 0.3)
    big = rng.normal(0, 0.1, (n, 10))
    big[np.arange(n), y] += 5.0
    big[:2] = big[:2][:, ::-1]  # two mistakes, among the little model's confident ones
    return little, big, y


def test_curve_runs_from_little_alone_to_big_and_costs_weight_the_fraction_sent():
    little, big, y = _synthetic()
    costs = {"little": 100.0, "big": 1000.0}
    rows = threshold_curve(little, big, y, "score-margin", costs)
    assert [r["threshold"] for r in rows] == list(THRESHOLDS) and rows[0]["threshold"] == 0.0
    assert rows[0]["to_big"] == 0.0 and rows[0]["accuracy"] == pytest.approx(0.8)  # little alone
    fracs = [r["to_big"] for r in rows]
    assert fracs == sorted(fracs)  # a higher threshold never sends fewer to big
    for r in rows:
        assert r["expected_cost"] == pytest.approx(100.0 + r["to_big"] * 1000.0)
    assert threshold_curve(little, big, y, "score-margin", None)[5]["expected_cost"] is None


def test_auto_takes_the_cheapest_threshold_within_the_drop():
    little, big, y = _synthetic()
    rows = threshold_curve(little, big, y, "score-margin", {"little": 1.0, "big": 10.0})
    big_acc = float(np.mean(np.argmax(big, 1) == y))
    chosen = choose_threshold(rows, big_acc, 0.5)
    assert chosen["accuracy"] >= big_acc - 0.005
    assert chosen["to_big"] == pytest.approx(0.2)  # exactly the unconfident 20%: the little one's 80% stand
    assert all(r["to_big"] >= chosen["to_big"] for r in rows if r["accuracy"] >= big_acc - 0.005)
    loose = choose_threshold(rows, big_acc, 50.0)
    assert loose["to_big"] == 0.0  # a 50-point budget: the little model alone
    # big's two mistakes are where the little model is right: the cascade beats big, so a 0 drop is reachable
    assert choose_threshold(rows, big_acc, 0.0)["accuracy"] >= big_acc
    assert choose_threshold(rows, 1.01, 0.0) is None  # an accuracy nothing reaches


@pytest.mark.parametrize("kwargs, needle", [
    ({"threshold": "1.5"}, "--threshold 1.5: out of range"),
    ({"threshold": "-0.1"}, "--threshold -0.1: out of range"),
    ({"threshold": "nan"}, "out of range"),
    ({"threshold": "high"}, "give auto or a number in [0, 1]"),
    ({"policy": "entropy"}, "--policy 'entropy': expected one of score-margin, max-prob"),
    ({"max_accuracy_drop": -1}, "--max-accuracy-drop -1"),
    ({"calibration": "nosuchdata"}, "--calibration nosuchdata: not a dataset (digits) and not a folder"),
    ({"backend": "tensorrt", "target": "jetson-orin"}, "backend 'tensorrt' is not supported yet"),
])
def test_bad_requests_are_refused_before_any_model_is_loaded(kwargs, needle):
    with pytest.raises(UsageError) as e:
        plan_cascade(**{"target": "cortex-m4", **kwargs})
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_plan_accepts_the_bounds_and_a_zoo_dataset():
    assert plan_cascade(threshold="0").threshold == 0.0 and plan_cascade(threshold="1").threshold == 1.0
    p = plan_cascade("host", backend="iree", threshold="AUTO", calibration="digits", max_accuracy_drop=0)
    assert (p.threshold, p.backend, p.board, p.calibration) == ("auto", "iree", "", "digits")
    assert plan_cascade().board == "mps2-an386"


def test_calibration_folder_needs_labels_one_per_sample(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 1, 8, 8), np.float32))
    with pytest.raises(ModelError, match="no y.npy"):
        load_calibration(str(tmp_path))
    np.save(tmp_path / "y.npy", np.zeros(3, np.int64))
    with pytest.raises(ModelError, match="one label per sample"):
        load_calibration(str(tmp_path))
    np.save(tmp_path / "y.npy", np.arange(4))
    np.save(tmp_path / "x_test.npy", np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(ModelError, match="x_test.npy and y_test.npy must both be there"):
        load_calibration(str(tmp_path))
    np.save(tmp_path / "y_test.npy", np.arange(2))
    s = load_calibration(str(tmp_path))
    assert s.x.shape == (4, 1, 8, 8) and list(s.y) == [0, 1, 2, 3] and s.x_test.shape[0] == 2


def test_device_policy_script_decides_and_reads_both_bench_formats(tmp_path):
    np.save(tmp_path / "l.npy", np.array([[4.0, 0.0, 0.0]], np.float32))
    run = lambda *a: subprocess.run([sys.executable, str(POLICY_SCRIPT), *map(str, a)],  # noqa: E731
                                    capture_output=True, text=True)
    margin = float(score(np.array([[4.0, 0.0, 0.0]]), "score-margin")[0])
    assert run("decide", tmp_path / "l.npy", "score-margin", margin - 1e-3).returncode == 0
    r = run("decide", tmp_path / "l.npy", "score-margin", margin + 1e-3)
    assert r.returncode == 1 and f"{margin:.6f}" in r.stdout
    (tmp_path / "iree.json").write_text(json.dumps({"benchmarks": [
        {"run_type": "iteration", "real_time": t, "time_unit": "us"} for t in (100, 200, 300)] + [
        {"run_type": "aggregate", "real_time": 9999, "time_unit": "us"}]}))
    (tmp_path / "tvm.json").write_text(json.dumps({"samples_ms": [1.0, 2.0, 3.0]}))
    r = run("expected", tmp_path / "iree.json", tmp_path / "tvm.json", 0.25)
    assert r.returncode == 0 and "little p50 0.2000 ms, big p50 2.0000 ms; cascade expected 0.7000 ms" in r.stdout


def _doc():
    rows = [{"threshold": t, "accuracy": 0.9 + 0.05 * t, "to_big": t, "expected_cost": 10 + 100 * t}
            for t in (0.0, 0.5, 1.0)]
    return {"models": {"little": {"name": "l"}, "big": {"name": "b"}}, "target": {"name": "cortex-m4"},
            "policy": {"name": "score-margin", "rule": "rule"},
            "threshold": {"value": 0.5, "how": "auto: x", "calibration_accuracy": 0.925, "to_big": 0.5,
                          "expected_cost": 60.0},
            "calibration": {"description": "d", "curve": rows, "little_only": {"cost": 10, "accuracy": 0.9},
                            "big_only": {"cost": 100, "accuracy": 0.96}},
            "costs": {"status": "ok", "little": 10, "big": 100, "unit": "instructions", "method": "QEMU icount"},
            "validation": {"status": "passed"},
            "measured": {"status": "ok", "samples": 360, "mean_cost": 55.0, "accuracy": 0.93,
                         "saving_vs_big_measured": 0.45, "alone_accuracy": {"big": 0.95},
                         "drop_vs_big_points": 2.0}}


def test_report_plots_the_curve_with_both_models_alone_and_the_choice_marked():
    page = cascade_report_html(_doc())
    assert page.count('class="threshold"') == 3 and 'id="cascade-curve"' in page
    for mark in ("little alone", "big alone", "chosen", "measured on the test split"):
        assert f'data-mark="{mark}"' in page
    assert "expected 40.0% and measured 45.0% below the big model alone" in page
    assert "0.5 (chosen)" in page


def test_host_cascade_without_bundle_scripts_says_how_to_run_it():
    from edgecc.compiler.compose.cascade_doc import _deploy

    plan = plan_cascade("host", backend="tvm")
    d = _deploy(plan, [])
    assert d["entry"] is None and d["scripts"] == [] and "HostCascadeRunner" in d["note"]
    assert _deploy(plan, ["run.sh", "bench.sh", "cascade_policy.py"])["entry"] == "run.sh"
    fw = _deploy(plan_cascade("cortex-m4", board="NUCLEO-L4R5ZI"), [])
    assert fw["kind"] == "firmware" and fw["qemu"] is None and "firmware/firmware.hex" in fw["flash_command"]
