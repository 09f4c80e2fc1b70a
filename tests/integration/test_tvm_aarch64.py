"""TVM aarch64 bundles checked on this x86 machine: edgecc's native tvm_runner (runtime/tvm_native/runner.cc),
cross-compiled against the aarch64 apache-tvm wheel, runs the Relax VM in model.so under qemu-aarch64."""

import shutil
import subprocess

import numpy as np
import pytest

import edgecc

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-aarch64") is None or shutil.which("aarch64-linux-gnu-g++") is None,
    reason="needs qemu-user and g++-aarch64-linux-gnu (apt-get install qemu-user g++-aarch64-linux-gnu)")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return edgecc.compile("ds-cnn", target="orangepi5-cpu", backend="tvm",
                          output=tmp_path_factory.mktemp("tvm-a64") / "b", validate=False)


def test_tvm_runner_under_qemu_matches_pytorch(bundle):
    from edgecc.runtime.runners import TvmQemuRunner

    runner = TvmQemuRunner(bundle)
    assert runner.where.startswith("qemu-aarch64 -cpu cortex-a76")
    outs = runner.run(bundle.reference_inputs())
    refs = bundle.reference_outputs()
    assert len(outs) == len(refs)
    for o, r in zip(outs, refs, strict=True):
        assert o.shape == r.shape and o.dtype == r.dtype
        np.testing.assert_allclose(o, r, rtol=1e-3, atol=1e-4)


def test_tvm_runner_timing_under_qemu(bundle):
    from edgecc.runtime.runners import TvmQemuRunner

    t = TvmQemuRunner(bundle).time(bundle.reference_inputs(), warmup=1, iters=4)
    assert len(t["samples"]) == 4 and all(s > 0 for s in t["samples"])
    assert t["unit"] == "ms" and t["method"].startswith("emulated wall clock (qemu-aarch64")


def test_device_files_run_under_qemu(bundle, tmp_path):
    """The bundle's own run.sh / bench.sh + aarch64 tvm_runner (what goes to the board), run through qemu."""
    from edgecc.bundle import Bundle
    from edgecc.runtime.runners import TvmQemuRunner
    from edgecc.runtime.tvm_native import write_device_files

    copy = tmp_path / "b"
    shutil.copytree(bundle.path, copy)
    written = write_device_files(copy, n_inputs=len(bundle.manifest["io"]["inputs"]))
    assert written == ["tvm_runner", "run.sh", "bench.sh"]
    for script in ("run.sh", "bench.sh"):
        subprocess.run(["sh", "-n", str(copy / script)], check=True)
    runner = TvmQemuRunner(Bundle(copy, bundle.manifest))
    assert runner.scripts and runner.binary == copy / "tvm_runner"
    [out] = runner.run(bundle.reference_inputs())
    np.testing.assert_allclose(out, bundle.reference_outputs()[0], rtol=1e-3, atol=1e-4)
    t = runner.time(bundle.reference_inputs(), warmup=1, iters=2)
    assert len(t["samples"]) == 2 and t["extra"]["via"] == "bundle bench.sh"
