"""A real TensorRT engine from a tensorrt bundle, where a CUDA GPU and TensorRT (trtexec or the Python module) are
present: build_engine.sh builds and caches it, run.sh matches PyTorch, bench.sh's output parses into a report.
Skipped with the reason elsewhere (CI machines have no GPU and TensorRT does not install there)."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import edgecc
from tests.conftest import edgecc_cli


def _tensorrt_here() -> str:
    """'' when TensorRT and a GPU are usable here, else why not."""
    trtexec = os.environ.get("TRTEXEC") or shutil.which("trtexec") or (
        "/usr/src/tensorrt/bin/trtexec" if os.path.exists("/usr/src/tensorrt/bin/trtexec") else "")
    if not trtexec:
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return "needs TensorRT: neither trtexec nor the tensorrt Python module is installed"
    if shutil.which("nvidia-smi") is None and not os.path.exists("/proc/device-tree/model"):
        return "needs a CUDA GPU (no nvidia-smi, not a Jetson)"
    if shutil.which("nvidia-smi") and subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode != 0:
        return "needs a CUDA GPU (nvidia-smi -L failed)"
    return ""


pytestmark = [pytest.mark.device, pytest.mark.skipif(bool(_tensorrt_here()), reason=_tensorrt_here() or "ok")]


def test_engine_built_cached_run_and_timed(tmp_path):
    target = "jetson-orin" if os.path.exists("/proc/device-tree/model") else "cuda-sm90"
    b = edgecc.compile("resnet8", target=target, backend="tensorrt", output=tmp_path / "b",
                       options={"precision": "fp32"})
    env = {**os.environ, "EDGECC_TRT_CACHE": str(tmp_path / "cache")}
    first = subprocess.run(["bash", str(b.path / "build_engine.sh")], capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    engine = first.stdout.strip().splitlines()[-1]
    assert os.path.getsize(engine) > 0 and "building the engine" in first.stderr
    again = subprocess.run(["bash", str(b.path / "build_engine.sh")], capture_output=True, text=True, env=env)
    assert again.stdout.strip().splitlines()[-1] == engine and "cached engine" in again.stderr
    key = json.loads(open(engine[:-len(".engine")] + ".json").read())
    assert key["onnx_sha256"] == b.manifest["artifact"]["info"]["onnx_sha256"]

    out = tmp_path / "out"
    r = subprocess.run(["bash", str(b.path / "run.sh"), str(out)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.load(out / "output_0.npy"), b.reference_outputs()[0], atol=1e-3, rtol=1e-2)

    bench = tmp_path / "bench"
    r = subprocess.run(["bash", str(b.path / "bench.sh"), str(bench), "50", "200"], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stderr
    args = ["trtexec-report", bench / "trtexec.log", "--times", bench / "times.json", "--json", tmp_path / "r.json"]
    if json.loads((bench / "profile.json").read_text())[0].get("count"):
        args += ["--profile", bench / "profile.json"]
    r = edgecc_cli(*args)
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["gpu_compute"]["stats"]["n"] >= 50 and rep["gpu_compute"]["stats"]["min"] > 0
