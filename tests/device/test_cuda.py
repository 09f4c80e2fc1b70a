"""CUDA bundles executed on a real GPU (IREE's cuda driver; TVM's CUDA runtime), where this machine has one.
Skipped with the reason elsewhere: CI machines have no GPU, so there these bundles are built and inspected only
(tests/integration/test_cross.py)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import edgecc


def _no_gpu() -> str:
    if shutil.which("nvidia-smi") is None:
        return "needs a CUDA GPU (no nvidia-smi)"
    if subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode != 0:
        return "needs a CUDA GPU (nvidia-smi -L failed)"
    return ""


pytestmark = pytest.mark.skipif(bool(_no_gpu()), reason=_no_gpu() or "GPU present")


def test_iree_cuda_bundle_runs_on_the_gpu(tmp_path):
    b = edgecc.compile("resnet8", target="cuda-sm80", backend="iree", output=tmp_path / "b")
    v = b.manifest["validation"]
    assert v["status"] == "passed" and v["ran_on"] == "host cuda GPU", v
    r = subprocess.run([str(b.path / "run.sh"), str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_tvm_cuda_bundle_runs_and_times_on_the_gpu(tmp_path):
    b = edgecc.compile("resnet8", target="cuda-sm80", backend="tvm", output=tmp_path / "b")
    v = b.manifest["validation"]
    assert v["status"] == "passed" and v["ran_on"] == "host cuda GPU", v
    env = {**os.environ, "PYTHON": sys.executable}
    r = subprocess.run([str(b.path / "run.sh"), str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    got, ref = np.load(tmp_path / "out" / "output_0.npy"), np.load(b.path / "reference_output_0.npy")
    assert np.abs(got - ref).max() < 1e-3
    r = subprocess.run([str(b.path / "bench.sh"), "10", str(tmp_path / "t.json"), "2"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert len(json.loads((tmp_path / "t.json").read_text())["samples_ms"]) == 10
