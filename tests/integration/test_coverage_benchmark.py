"""benchmarks/coverage.py: real compiles of the onnx wheel's models, classified and written as Markdown."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "coverage.py"
pytest.importorskip("onnx")
pytest.importorskip("tvm")


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=900)


def test_one_model_passes_and_a_partial_run_merges(tmp_path):
    res, md = tmp_path / "res", tmp_path / "coverage.md"
    common = ["--suites", "pytorch-converted", "--cells", "host/tvm", "--results", str(res), "--out", str(md)]
    r = run(*common, "--models", "^Conv2d$")
    assert r.returncode == 0, r.stderr
    data = json.loads((res / "pytorch-converted.json").read_text())
    [row] = data["rows"]
    assert row["status"] == "pass" and row["max_abs_error"] < 1e-4, row
    r = run(*common, "--models", "^ConvTranspose2d$")
    assert r.returncode == 0, r.stderr
    data = json.loads((res / "pytorch-converted.json").read_text())
    assert {x["model"] for x in data["rows"]} == {"Conv2d", "ConvTranspose2d"}
    assert len(data["runs"]) == 2
    text = md.read_text()
    assert "| Conv2d | pass (" in text and "| pytorch-converted | 2 | host/tvm |" in text
    assert "--models '^ConvTranspose2d$'" in text  # each run's command is in the report


def test_render_counts_and_flags(tmp_path):
    spec = importlib.util.spec_from_file_location("edgecc_coverage_benchmark", SCRIPT)
    cov = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cov)
    rows = [{"model": "a", "cell": "host/iree", "status": "pass", "max_abs_error": 1e-6},
            {"model": "b", "cell": "host/iree", "status": "refused", "message": "op Foo is not supported by iree"},
            {"model": "c", "cell": "host/iree", "status": "failed", "message": "internal error: KeyError",
             "internal": True}]
    result = {"suite": "simple", "cells": ["host/iree"], "models": ["a", "b", "c"], "rows": rows, "date": "d",
              "commit": "x", "command": "python benchmarks/coverage.py", "host": "2 cores"}
    text = cov.render([result])
    assert "| simple | 3 | host/iree | 1 (33%) | 1 | 0 | 1 | 1 |" in text
    assert "| c | failed (internal error) [2] |" in text
    assert "2. `internal error: KeyError`" in text
