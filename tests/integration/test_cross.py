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
    t = json.loads((tmp_path / "b.bench.json").read_text())["runs"][0]["timing"]
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


@pytest.mark.slow
def test_mobilenetv2_mali_depthwise_validated_on_lavapipe(tmp_path):
    """Depthwise convolutions in NCHW gave wrong numbers through IREE SPIR-V on lavapipe (max abs err 0.48);
    the target's nhwc_rewrite makes them the NHWC named ops, which are right."""
    b = edgecc.compile("mobilenetv2", target="orangepi5-mali", backend="iree", output=tmp_path / "b")
    assert b.manifest["artifact"]["info"]["nhwc_rewrites"] == 17
    v = b.manifest["validation"]
    assert v["status"] == "passed" and "lavapipe" in v["ran_on"] and v["max_abs_error"] < 1e-4


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


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) not installed")
@pytest.mark.parametrize("target, arch", [("cuda-sm90", "sm_90"), ("jetson-orin", "sm_87")])
def test_tvm_cuda_kernels_compiled_for_the_arch_with_nvcc(target, arch, tmp_path):
    from edgecc.compiler.backends.tvm import cubin_arch

    b = edgecc.compile("ds-cnn", target=target, backend="tvm", output=tmp_path / "b")
    cuda = b.manifest["artifact"]["info"]["cuda"]
    assert cuda["arch"] == arch and all(cubin_arch(b.path / c) == arch for c in cuda["cubins"])
    assert "JIT-compiles" in cuda["runtime_note"]
    assert b.manifest["validation"]["status"].startswith("not run: needs")


@pytest.mark.parametrize("target, checked", [("orangepi5-cpu", "passed"),
                                             ("orangepi5-mali", "not run: needs Mali-G610 MP4 (opencl device)")])
def test_tvm_aarch64_builds(target, checked, tmp_path):
    b = edgecc.compile("cifar-cnn", target=target, backend="tvm", output=tmp_path / "b")
    head = b.artifact().read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 183  # EM_AARCH64
    v = b.manifest["validation"]
    assert v["status"] == checked
    if checked == "passed":  # the bundle's own aarch64 tvm_runner, under qemu-aarch64
        assert v["ran_on"].startswith("qemu-aarch64") and v["max_abs_error"] < 1e-4
        assert {"tvm_runner", "run.sh", "bench.sh"} <= set(b.manifest["files"])
        assert b.manifest["artifact"]["info"]["device_runtime"].startswith("pip install apache-tvm==")


def test_tvm_gpu_bundles_carry_device_scripts_that_run(tmp_path, resnet8_bundles):
    """GPU TVM bundles (CUDA, OpenCL) carry run.sh / bench.sh over TVM's Python runtime (tvm_device.py). Here
    there is no GPU: the scripts must say so in one line; the same scripts on the CPU device must give PyTorch's
    numbers and raw samples (the code path a GPU takes, but for the device)."""
    import sys

    import numpy as np

    from edgecc.compiler.backends.tvm import write_gpu_device_files

    b = edgecc.compile("resnet8", target="jetson-orin", backend="tvm", output=tmp_path / "orin")
    assert {"run.sh", "bench.sh", "tvm_device.py", "kernels0.sm_87.cubin"} <= set(b.manifest["files"])
    assert b.manifest["artifact"]["info"]["device_runtime"].startswith("pip install apache-tvm==")
    for script in ("run.sh", "bench.sh"):
        subprocess.run(["bash", "-n", str(b.path / script)], check=True)
        if shutil.which("shellcheck"):
            subprocess.run(["shellcheck", str(b.path / script)], check=True)
    env = {**__import__("os").environ, "PYTHON": sys.executable}
    r = subprocess.run([str(b.path / "run.sh"), str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "tvm_device.py: no cuda device visible to TVM here (needs the GPU, its driver, and a TVM runtime built "
        "with CUDA)"]

    # the same scripts, rendered for the CPU device into a copy of the host TVM bundle
    host = tmp_path / "host"
    shutil.copytree(resnet8_bundles["tvm"].path, host)
    write_gpu_device_files(host, "cpu", "main")
    r = subprocess.run([str(host / "run.sh"), str(tmp_path / "cpu-out")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    got, ref = np.load(tmp_path / "cpu-out" / "output_0.npy"), np.load(host / "reference_output_0.npy")
    assert np.abs(got - ref).max() < 1e-4
    r = subprocess.run([str(host / "bench.sh"), "4", str(tmp_path / "b.json"), "1"], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stderr
    samples = json.loads((tmp_path / "b.json").read_text())["samples_ms"]
    assert len(samples) == 4 and min(samples) > 0
