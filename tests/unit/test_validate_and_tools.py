import numpy as np
import pytest

from edgecc.errors import ToolError
from edgecc.runtime.stats import summarize
from edgecc.tools import find_tool, run_tool
from edgecc.validate import compare


def test_compare_passes_within_tolerance_and_fails_beyond():
    ref = [np.array([[1.0, 2.0, 3.0]], np.float32)]
    ok = compare([ref[0] + 1e-6], ref, "pytorch", True)
    assert ok.passed and ok.top1_agreement == 1.0 and ok.max_abs_error == pytest.approx(1e-6, rel=0.1)
    bad = compare([ref[0] + np.float32(0.1)], ref, "pytorch", False)
    assert not bad.passed and "max abs error" in bad.detail


def test_compare_catches_top1_flip_shape_and_nan():
    ref = [np.array([[1.0, 1.0001]], np.float32)]
    flipped = compare([np.array([[1.0001, 1.0]], np.float32)], ref, "pytorch", True, {"atol": 1.0})
    assert not flipped.passed and flipped.top1_agreement == 0.0
    assert not compare([np.zeros((1, 3))], [np.zeros((1, 2))], "pytorch", False).passed
    assert not compare([np.array([np.nan])], [np.zeros(1)], "pytorch", False).passed


def test_run_tool_error_has_argv_code_stderr_and_repro(tmp_path):
    with pytest.raises(ToolError) as e:
        run_tool(["sh", "-c", "echo boom: error here >&2; exit 3"], cwd=tmp_path)
    err = e.value
    assert err.returncode == 3 and "boom: error here" in err.stderr
    assert err.repro.startswith(f"cd {tmp_path} && ") and "exit 3" in err.repro
    assert "exit 3" in str(err) and "repro:" in str(err)


def test_missing_tool_says_how_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolError, match="tool 'qemu-aarch64' not found .*apt-get install qemu-user"):
        find_tool("qemu-aarch64")


def test_env_var_overrides_tool(monkeypatch, tmp_path):
    fake = tmp_path / "my-iree-compile"
    fake.write_text("#!/bin/sh\n")
    monkeypatch.setenv("EDGECC_IREE_COMPILE", str(fake))
    assert find_tool("iree-compile") == str(fake)


def test_summarize_percentiles():
    s = summarize(list(range(1, 101)))
    assert s["min"] == 1 and s["max"] == 100 and s["p50"] == 50.5 and s["n"] == 100
    assert summarize([]) == {"n": 0}


def test_nan_and_inf_must_stand_at_the_same_places():
    ref = np.array([[1.0, np.nan, -np.inf, 2.0]], np.float32)
    assert compare([ref.copy()], [ref], "pytorch", False).passed  # NaN matches NaN, -inf matches -inf
    zero_for_nan = np.array([[1.0, 0.0, -np.inf, 2.0]], np.float32)
    c = compare([zero_for_nan], [ref], "pytorch", False)
    assert not c.passed and "non-finite value(s) differ" in c.detail and "index [0, 1]" in c.detail
    all_nan = np.full((1, 64), np.nan, np.float32)
    assert not compare([np.zeros((1, 64), np.float32)], [all_nan], "pytorch", False).passed
    flipped = np.array([[1.0, np.nan, np.inf, 2.0]], np.float32)
    assert not compare([flipped], [ref], "pytorch", False).passed  # +inf for -inf
    with np.errstate(all="raise"):  # and no floating-point warning on the way
        compare([zero_for_nan], [ref], "pytorch", False)
