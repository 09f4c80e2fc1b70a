"""TensorRT bundles built here: ONNX checked with ONNX Runtime against PyTorch, device scripts checked with bash -n,
shellcheck and by running them where TensorRT is absent. Engines are built in tests/device (needs a GPU)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import edgecc
from tests.conftest import DATA, edgecc_cli

SCRIPTS = ("build_engine.sh", "bench.sh", "run.sh")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("trt")
    return {t: edgecc.compile("cifar-cnn", target=t, backend="tensorrt", output=root / t)
            for t in ("jetson-orin", "jetson-nano")}


@pytest.mark.parametrize("target, version, opset", [("jetson-orin", "10.3", 17), ("jetson-nano", "8.2", 13)])
def test_bundle_onnx_validated_with_onnxruntime(bundles, target, version, opset):
    b = bundles[target]
    m = b.manifest
    v = m["validation"]
    assert v["status"] == "passed" and v["reference"] == "pytorch" and v["max_abs_error"] < 1e-4
    assert v["ran_on"].startswith("host (ONNX Runtime CPU")
    assert f"engine not built: needs TensorRT {version} on" in v["note"]
    info = m["artifact"]["info"]
    assert info["tensorrt"] == version and info["onnx_opset"] == opset
    assert info["op_check"]["table"] == f"ops-{version}.toml" and info["op_check"]["ops"]["Conv"] == 3
    assert set(SCRIPTS) | {"model.onnx", "plan.json", "trt_tool.py"} <= set(m["files"])
    plan = json.loads((b.path / "plan.json").read_text())
    assert plan == info["plan"] and plan["precision"] == "fp32"
    import onnx

    proto = onnx.load(str(b.path / "model.onnx"))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [opset]
    # the ONNX computes what the bundle's reference says, independently of the validation path
    import onnxruntime as ort

    sess = ort.InferenceSession(str(b.path / "model.onnx"), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input_0": b.reference_inputs()[0]})[0]
    np.testing.assert_allclose(out, b.reference_outputs()[0], atol=1e-4, rtol=1e-3)


def test_scripts_pass_bash_n(bundles):
    for b in bundles.values():
        for s in SCRIPTS:
            r = subprocess.run(["bash", "-n", str(b.path / s)], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            assert os.access(b.path / s, os.X_OK)
        subprocess.run([sys.executable, "-m", "py_compile", str(b.path / "trt_tool.py")], check=True,
                       env={**os.environ, "PYTHONPYCACHEPREFIX": str(b.path.parent / "pycache")})


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (make setup installs it)")
def test_scripts_pass_shellcheck(bundles):
    for b in bundles.values():
        r = subprocess.run(["shellcheck", *[str(b.path / s) for s in SCRIPTS]], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout


def test_scripts_carry_the_plan(bundles):
    orin = (bundles["jetson-orin"].path / "build_engine.sh").read_text()
    nano = (bundles["jetson-nano"].path / "build_engine.sh").read_text()
    assert "--memPoolSize=workspace:1024" in orin and "install TensorRT 10.3 (JetPack 6.1)" in orin
    assert "--workspace=512" in nano and "install TensorRT 8.2 (JetPack 4.6)" in nano
    assert "@" not in orin.replace("$@", "")
    assert "@TRT_VERSION@" not in (bundles["jetson-orin"].path / "trt_tool.py").read_text()
    bench = (bundles["jetson-orin"].path / "bench.sh").read_text()
    assert "--exportTimes=" in bench and "--exportProfile=" in bench


def _no_tensorrt_env(tmp_path):
    """PATH with bash/coreutils but no trtexec, and a python3 without the tensorrt module (this one)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    return {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path / "home"),
            "EDGECC_TRT_CACHE": str(tmp_path / "cache")}


def test_build_engine_without_tensorrt_fails_in_one_line_and_writes_no_engine(bundles, tmp_path):
    if shutil.which("trtexec") or os.path.exists("/usr/src/tensorrt/bin/trtexec"):
        pytest.skip("trtexec is installed here: tests/device builds a real engine instead")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("the TensorRT Python module is installed here: tests/device builds a real engine instead")
    except ImportError:
        pass
    env = _no_tensorrt_env(tmp_path)
    b = bundles["jetson-nano"]
    for script in SCRIPTS:
        r = subprocess.run(["bash", str(b.path / script)], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert r.returncode != 0
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("build_engine.sh: error: TensorRT not found"), r.stderr
        assert "install TensorRT 8.2 (JetPack 4.6)" in lines[0]
    assert not list(tmp_path.rglob("*.engine*"))  # nothing half-written in the cache
    r = subprocess.run(["bash", str(b.path / "build_engine.sh")], capture_output=True, text=True,
                       env={**env, "TRTEXEC": str(tmp_path / "nope")})
    assert r.returncode != 0 and "TRTEXEC=" in r.stderr and "is not an executable file" in r.stderr
    r = subprocess.run([sys.executable, str(b.path / "trt_tool.py"), "build", "--onnx", str(b.path / "model.onnx"),
                        "--plan", str(b.path / "plan.json"), "--engine", str(tmp_path / "x.engine")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip() == ("trt_tool.py: error: the TensorRT Python module is not installed "
                                                      "(import tensorrt failed); install TensorRT 8.2")
    assert not (tmp_path / "x.engine").exists()
    assert edgecc_cli("verify", b.path).returncode == 0  # running the scripts left nothing in the bundle


def test_unsupported_op_refused_on_nano_accepted_on_orin(tmp_path):
    r = edgecc_cli("compile", f"{DATA / 'unsupported_ops.py'}:fmod", "--target", "jetson-nano", "--backend",
                   "tensorrt", "-o", tmp_path / "nano")
    assert r.returncode == 5, r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert "cannot lower op Mod (TensorRT 8.2: marked unsupported" in r.stderr
    assert not (tmp_path / "nano").exists() and not list(tmp_path.glob(".nano*"))
    r = edgecc_cli("compile", f"{DATA / 'unsupported_ops.py'}:fmod", "--target", "jetson-orin", "--backend",
                   "tensorrt", "-o", tmp_path / "orin", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["artifact"]["info"]["op_check"]["ops"]["Mod"] == 1


def test_cli_options_and_refusals(tmp_path):
    r = edgecc_cli("compile", "resnet8", "--target", "jetson-orin", "--backend", "tensorrt", "-o", tmp_path / "o",
                   "--option", "precision=fp16", "--option", "dla_core=0", "--option", "max_batch=4", "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)["artifact"]["info"]["plan"]
    assert plan["dla_core"] == 0 and plan["shapes"]["input_0"]["max"] == [4, 3, 32, 32]
    assert "--useDLACore=0" in (tmp_path / "o" / "bench.sh").read_text()
    r = edgecc_cli("compile", "resnet8", "--target", "jetson-nano", "--backend", "tensorrt", "-o", tmp_path / "n",
                   "--option", "dla_core=0")
    assert r.returncode == 3 and "target 'jetson-nano' has no DLA" in r.stderr and not (tmp_path / "n").exists()
    r = edgecc_cli("bench", tmp_path / "o")
    assert r.returncode == 11 and "time the engine on the device with bench.sh" in r.stderr


def test_trtexec_report_cli(tmp_path):
    d = DATA / "trtexec"
    r = edgecc_cli("trtexec-report", d / "trt10_summary_nvidia_tensorrt_issue4177.log", "--times",
                   d / "mobilenet_qat.timing.json", "--profile", d / "mobilenet_qat.profile.json", "--json",
                   tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    assert "GPU Compute Time" in r.stdout and "features.16.conv.2.weight" in r.stdout
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["summary"]["metrics"]["GPU Compute Time"]["p90"] == 10.2881
    assert rep["gpu_compute"]["samples"][0] == 0.459041 and rep["profile"]["iterations"] == 4216
    r = edgecc_cli("trtexec-report", tmp_path / "missing.log")
    assert r.returncode == 4 and "does not exist" in r.stderr


@pytest.mark.parametrize("model", ["resnet18", "mobilenetv2", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_done_when_models_for_orin_and_nano(model, tmp_path):
    """Issue #8's "done when": tensorrt bundles for jetson-orin and jetson-nano whose ONNX validates against PyTorch
    here and whose scripts pass the checks."""
    for target, opset in (("jetson-orin", 17), ("jetson-nano", 13)):
        b = edgecc.compile(model, target=target, backend="tensorrt", output=tmp_path / target)
        v = b.manifest["validation"]
        assert v["status"] == "passed" and v["top1_agreement"] == 1.0 and v["max_abs_error"] < 1e-4, v
        assert b.manifest["artifact"]["info"]["onnx_opset"] == opset
        scripts = [str(b.path / s) for s in SCRIPTS]
        for s in scripts:
            subprocess.run(["bash", "-n", s], check=True)
        if shutil.which("shellcheck"):
            r = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True)
            assert r.returncode == 0, r.stdout
