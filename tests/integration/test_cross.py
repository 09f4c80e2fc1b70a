"""Cross targets built on this x86 machine: aarch64 (validated under qemu-aarch64 with the aarch64 IREE runtime
wheel), Mali (valhall build + generic Vulkan build validated on Mesa lavapipe), CUDA (PTX checked with ptxas)."""

import json
import shutil
import subprocess

import pytest

import edgecc
from tests.conftest import edgecc_cli


def test_orangepi5_cpu_iree_validated_under_qemu_aarch64(tmp_path):
    b = edgecc.compile("ds-cnn", target="orangepi5-cpu", backend="iree", output=tmp_path / "b")
    v = b.manifest["validation"]
    assert v["status"] == "passed" and v["ran_on"].startswith("qemu-aarch64 -cpu cortex-a76")
    assert "--iree-llvmcpu-target-triple=aarch64-linux-gnu" in b.manifest["compile"]["flags"]
    assert b.manifest["artifact"]["info"]["device_runtime"] == "pip install iree-base-runtime==3.13.0"
    for script in ("run.sh", "bench.sh"):
        subprocess.run(["bash", "-n", str(b.path / script)], check=True)
    r = edgecc_cli("bench", b.path, "--iters", "3")
    assert r.returncode == 0, r.stderr
    assert "emulated wall clock (qemu-aarch64" in r.stdout
    t = json.loads((tmp_path / "b.bench.json").read_text())["timing"]
    assert len(t["samples"]) == 3 and t["method"].startswith("emulated")


def test_orangepi5_mali_generic_vulkan_validated_on_lavapipe(tmp_path):
    b = edgecc.compile("cifar-cnn", target="orangepi5-mali", backend="iree", output=tmp_path / "b")
    v = b.manifest["validation"]
    assert v["status"] == "passed" and "lavapipe" in v["ran_on"]
    assert "model.vmfb (valhall3) numerics not checked: needs Mali-G610" in v["note"]
    assert {"model.vmfb", "model.check.vmfb", "run.sh", "bench.sh"} <= set(b.manifest["files"])
    assert "--iree-vulkan-target=valhall3" in b.manifest["compile"]["flags"]
    r = edgecc_cli("bench", b.path)
    assert r.returncode == 11 and "time the bundle on the device with bench.sh" in r.stderr


@pytest.mark.skipif(shutil.which("ptxas") is None, reason="ptxas (CUDA toolkit) not installed")
@pytest.mark.parametrize("target, arch", [("cuda-sm80", "sm_80"), ("jetson-orin", "sm_87"), ("cuda-sm90", "sm_89")])
def test_cuda_targets_build_ptx_for_their_arch(target, arch, tmp_path):
    b = edgecc.compile("resnet8", target=target, backend="iree", output=tmp_path / "b")
    info = b.manifest["artifact"]["info"]
    assert info["cuda"]["ptx_targets"] == [arch] and info["cuda"]["ptxas"].startswith(f"assembled for {arch}")
    assert b.manifest["validation"]["status"].startswith("not run: needs")
    if target == "cuda-sm90":
        assert "IREE 3.13 refuses sm_90" in info["note"]


@pytest.mark.parametrize("backend", ["iree", "tvm"])
def test_jetson_nano_gpu_paths_refused_with_reason(backend, tmp_path):
    r = edgecc_cli("compile", "resnet8", "--target", "jetson-nano", "--backend", backend, "-o", tmp_path / "b")
    assert r.returncode == 3 and "refused for target 'jetson-nano'" in r.stderr and "tensorrt" in r.stderr
    assert not (tmp_path / "b").exists()
