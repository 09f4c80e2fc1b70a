"""The runner registry and protocol without a toolchain: which manifests get which reason, and that every
registered runner plays the whole role (callers call its methods without probing)."""

import numpy as np
import pytest

from edgecc.bundle import Bundle
from edgecc.errors import BundleError, CannotRunHere, TargetError
from edgecc.runtime.runners import Runner, WallClockRunner, register_runner, runner_for
from edgecc.runtime.runners.registry import _RUNNERS
from edgecc.runtime.stats import WALL_CLOCK


def bundle(tmp_path, backend, triple="x86_64-linux-gnu", accelerator=None, **info):
    manifest = {"backend": backend, "target": {"name": "t", "triple": triple, "accelerator": accelerator},
                "artifact": {"entry": "model.bin", "info": info}, "io": {"inputs": [], "outputs": []}}
    return Bundle(tmp_path, manifest)


def test_every_registered_runner_has_the_whole_role():
    assert {k[0] for k in _RUNNERS} == {"iree", "tvm", "micro", "tensorrt"}
    for key, cls in _RUNNERS.items():
        for method in ("run", "run_many", "run_samples", "time"):
            assert callable(getattr(cls, method, None)), (key, method)
        assert isinstance(cls.where, str) and cls.note == "", key


def test_a_runner_registered_twice_is_refused():
    @register_runner("test-backend", "nowhere")
    class A(WallClockRunner):
        pass

    try:
        assert register_runner("test-backend", "nowhere")(A) is A  # the same class again: harmless
        with pytest.raises(RuntimeError, match="registered twice"):
            register_runner("test-backend", "nowhere")(type("B", (WallClockRunner,), {}))
    finally:
        del _RUNNERS[("test-backend", "nowhere")]


def test_wall_clock_runner_times_run_and_batches_one_sample_a_call(monkeypatch):
    monkeypatch.setenv("EDGECC_THREADS", "3")

    class Double(WallClockRunner):
        calls = 0

        def run(self, inputs):
            self.calls += 1
            return [inputs[0] * 2]

    r = Double()
    assert isinstance(r, Runner)
    t = r.time([np.ones((1, 2), np.float32)], warmup=2, iters=3)
    assert r.calls == 5 and len(t["samples"]) == 3
    assert {k: t[k] for k in ("unit", "method", "warmup", "iterations", "extra")} == \
        {"unit": "ms", "method": WALL_CLOCK, "warmup": 2, "iterations": 3, "extra": {"threads": "3"}}
    np.testing.assert_array_equal(r.run_many(np.arange(6, dtype=np.float32).reshape(3, 2)),
                                  np.arange(6, dtype=np.float32).reshape(3, 2) * 2)


@pytest.mark.parametrize("backend, triple, accel, info, error, text", [
    ("onnx", "x86_64-linux-gnu", None, {}, TargetError,
     "unknown backend 'onnx'; known backends: iree, tvm, micro, tensorrt"),
    ("iree", "riscv64-linux-gnu", None, {"driver": "local-task"}, CannotRunHere,
     "no emulator for riscv64-linux-gnu here"),
    ("iree", "aarch64-linux-gnu", {"name": "Mali-G610 MP4", "arch": "valhall3"}, {"driver": "vulkan"},
     CannotRunHere, "needs Mali-G610 MP4 (vulkan device)"),
    ("tvm", "riscv64-linux-gnu", None, {"device": "cpu"}, CannotRunHere,
     "needs a device running riscv64-linux-gnu (no emulator for riscv64 here)"),
    ("tvm", "aarch64-linux-gnu", {"arch": "valhall3"}, {"device": "opencl"}, CannotRunHere,
     "needs valhall3 (opencl device)"),
    ("micro", "thumbv7em-none-eabi", None, {"board": "nucleo", "flash_command": "pyocd flash x"}, CannotRunHere,
     "board nucleo is real hardware and cannot run here; flash it with: pyocd flash x"),
    ("micro", "thumbv7em-none-eabi", None, {"board": "b", "qemu_machine": "-M virt"}, BundleError,
     "is not a QEMU machine name"),
])
def test_runner_for_says_why_a_bundle_cannot_run_here(tmp_path, backend, triple, accel, info, error, text):
    with pytest.raises(error) as e:
        runner_for(bundle(tmp_path, backend, triple, accel, **info))
    assert text in str(e.value)


def test_micro_bundles_get_the_cortex_m_runner(tmp_path):
    io = {"inputs": [], "outputs": []}
    r = bundle(tmp_path, "micro", "thumbv7em-none-eabi", qemu_machine="mps2-an386", io=io).runner()
    assert type(r).__name__ == "QemuCortexMRunner" and r.where == "qemu-system-arm -M mps2-an386"
    assert r.elf == tmp_path / "firmware.elf" and r.note == ""
