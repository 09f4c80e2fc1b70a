"""The host path through the real IREE and TVM compilers and runtimes, validated against PyTorch."""

import json

import numpy as np
import pytest

import edgecc
from tests.conftest import DATA, edgecc_cli

BACKENDS = ["iree", "tvm"]
ZOO = [
    pytest.param("cifar-cnn"), pytest.param("ds-cnn"), pytest.param("mobilenetv2", marks=pytest.mark.slow),
    pytest.param("resnet18", marks=pytest.mark.slow), pytest.param("resnet50", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", ZOO)
def test_zoo_model_compiles_and_validates(model, backend, tmp_path):
    bundle = edgecc.compile(model, target="host", backend=backend, output=tmp_path / "b")
    v = bundle.manifest["validation"]
    assert v["status"] == "passed" and v["reference"] == "pytorch"
    assert v["max_rel_error"] < 1e-3 and v["top1_agreement"] == 1.0
    # the artifact really is the one that computed: rerun it from the bundle and compare with the saved reference
    out = bundle.runner().run(bundle.reference_inputs())
    np.testing.assert_allclose(out[0], bundle.reference_outputs()[0], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_resnet8_bundle_is_complete(resnet8_bundles, backend):
    b = resnet8_bundles[backend]
    m = b.manifest
    assert m["model"]["name"] == "resnet8" and m["target"]["name"] == "host" and m["backend"] == backend
    assert m["io"]["inputs"] == [{"name": "input_0", "shape": [1, 3, 32, 32], "dtype": "float32",
                                  "values": {"source": "the zoo's example input for resnet8"}, "file": "input_0.npy"}]
    assert m["io"]["outputs"][0]["shape"] == [1, 10]
    assert m["compile"]["seconds"] > 0 and m["compile"]["calls"]
    versions = m["versions"]
    assert versions["torch"].startswith("2.13.0")
    assert (versions["iree-base-compiler"] == "3.13.0") if backend == "iree" else versions["apache-tvm"]
    entry = m["artifact"]["entry"]
    assert entry in m["files"] and (b.path / entry).stat().st_size > 10_000
    assert not (b.path / "work").exists(), "intermediates are dropped unless --keep-intermediates"
    if backend == "iree":
        assert "--iree-llvmcpu-target-cpu=host" in m["compile"]["flags"] and m["artifact"]["info"]["host_cpu"]
        assert "iree-compile" in m["compile"]["calls"][-1]


def test_compile_does_different_work_per_backend(resnet8_bundles):
    iree, tvm = resnet8_bundles["iree"], resnet8_bundles["tvm"]
    import zipfile

    head = iree.artifact().read_bytes()[:4096]
    assert zipfile.is_zipfile(iree.artifact()) and b"IREE" in head  # vmfb: zip container, IREE flatbuffer
    assert tvm.artifact().read_bytes()[:4] == b"\x7fELF"


@pytest.mark.parametrize("backend", BACKENDS)
def test_sources_onnx_pt2_and_factory(backend, tmp_path):
    import torch

    module, inputs = edgecc.models.get_model("ds-cnn").factory()
    torch.onnx.export(module, inputs, tmp_path / "kws.onnx", dynamo=True, input_names=["mfcc"])
    torch.export.save(torch.export.export(module, inputs), tmp_path / "kws.pt2")
    onnx_b = edgecc.compile(str(tmp_path / "kws.onnx"), backend=backend, output=tmp_path / "onnx")
    assert onnx_b.manifest["validation"]["reference"] == "onnxruntime"
    assert onnx_b.manifest["io"]["inputs"][0]["name"] == "mfcc"
    pt2_b = edgecc.compile(str(tmp_path / "kws.pt2"), backend=backend, output=tmp_path / "pt2")
    fac_b = edgecc.compile(f"{DATA}/tiny_factory.py:build", backend=backend, output=tmp_path / "fac")
    for b in (onnx_b, pt2_b, fac_b):
        assert b.manifest["validation"]["status"] == "passed", b


def test_python_api_with_module_and_inputs(tmp_path):
    import torch

    module = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh())
    b = edgecc.compile(module, (torch.randn(2, 8),), backend="iree", output=tmp_path / "lin")
    assert b.manifest["io"]["outputs"][0]["shape"] == [2, 4]
    x = np.ones((2, 8), np.float32)
    np.testing.assert_allclose(b.runner().run([x])[0], module(torch.from_numpy(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_compile_verify_run_bench(backend, tmp_path):
    out = tmp_path / f"ds-{backend}"
    r = edgecc_cli("compile", "ds-cnn", "--target", "host", "--backend", backend, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "validated vs pytorch" in r.stdout
    assert edgecc_cli("verify", out).stdout.strip().endswith("files match their sha256)")
    x = np.random.default_rng(7).standard_normal((1, 1, 49, 10)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = edgecc_cli("run", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert r.returncode == 0, r.stderr
    import torch

    module, _ = edgecc.models.get_model("ds-cnn").factory()
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), module(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-3, atol=1e-4)
    r = edgecc_cli("bench", out, "--warmup", "2", "--iters", "7", "--threads", "1")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / f"ds-{backend}.bench.json").read_text())
    t = report["runs"][0]["timing"]
    assert len(t["samples"]) == 7 and t["unit"] == "ms" and "wall clock" in t["method"]
    assert 0 < t["stats"]["min"] <= t["stats"]["p50"] <= t["stats"]["p99"]
    assert t["extra"]["threads"] == "1"
    assert "p50" in r.stdout and "wall clock" in r.stdout


def test_cli_lists_targets_and_models():
    r = edgecc_cli("targets")
    assert r.returncode == 0 and "host" in r.stdout and "iree*" in r.stdout
    show = json.loads(edgecc_cli("targets", "show", "host").stdout)
    assert show["backends"]["iree"]["driver"] == "local-task"
    models = json.loads(edgecc_cli("models", "--json").stdout)
    by_name = {m["name"]: m for m in models}
    assert set(by_name) >= {"cifar-cnn", "resnet8", "ds-cnn", "mobilenetv2", "resnet18", "resnet50"}
    assert by_name["resnet18"]["params"] == "11.690 M" and by_name["resnet50"]["params"] == "25.557 M"
    assert by_name["mobilenetv2"]["params"] == "3.505 M" and by_name["resnet8"]["macs"] == "12.5 M"


def test_host_cpu_bundle_refused_on_a_cpu_lacking_its_isa(resnet8_bundles, tmp_path):
    import shutil

    from edgecc.bundle import write_manifest

    b = tmp_path / "b"
    shutil.copytree(resnet8_bundles["iree"].path, b)
    m = json.loads((b / "manifest.json").read_text())
    assert m["artifact"]["info"]["host_cpu_isa"], "the host's ISA extensions are recorded"
    m["artifact"]["info"]["host_cpu_isa"] += ["avx10_9_imaginary"]
    write_manifest(b, {k: v for k, v in m.items() if k != "files"})
    r = edgecc_cli("run", b)
    assert r.returncode == 8 and "this CPU lacks avx10_9_imaginary: recompile it here" in r.stderr
    assert edgecc_cli("run", resnet8_bundles["iree"].path).returncode == 0  # same machine: runs
