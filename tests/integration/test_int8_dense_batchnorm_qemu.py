"""Linear → BatchNorm1d → ReLU (the MLPerf Tiny anomaly detector's block) through the int8 micro path: the
BatchNorm is folded into the dense weights at capture, and the firmware in qemu-system-arm is bit-exact with the
numpy TFLite-arithmetic reference (run_int8)."""

import subprocess

import numpy as np
import torch

import edgecc
from tests.conftest import calibration_folder, int8_reference, require_cortex_m_tools

require_cortex_m_tools()


def _mlp():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(40, 24), torch.nn.BatchNorm1d(24), torch.nn.ReLU(),
                              torch.nn.Linear(24, 24), torch.nn.BatchNorm1d(24), torch.nn.ReLU(),
                              torch.nn.Linear(24, 40))
    for m in net:
        if isinstance(m, torch.nn.BatchNorm1d):  # statistics far from (0, 1), so an unfolded BN would show
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.2, 3)
            m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-0.5, 0.5)
    return net.eval()


def test_dense_batchnorm1d_int8_is_bit_exact_on_cortex_m4(tmp_path):
    net = _mlp()
    gen = torch.Generator().manual_seed(1)
    cal, x = torch.randn(32, 40, generator=gen).numpy(), torch.randn(6, 40, generator=gen).numpy()
    folder = calibration_folder(tmp_path / "cal", cal)
    bundle = edgecc.compile(net, (torch.from_numpy(x[:1]),), target="cortex-m4", backend="micro",
                            output=tmp_path / "b", quantize="int8", calibration=folder)
    g, want = int8_reference(net, cal, x)
    assert [op.kind for op in g.ops] == ["dense", "dense", "dense"] and g.ops[0].relu
    got = bundle.runner().run_many(x)
    assert np.array_equal(got.reshape(want.shape), want), np.abs(got.reshape(want.shape) - want).max()
    with torch.no_grad():  # and the int8 model still tracks the float one
        ref = net(torch.from_numpy(x)).numpy()
    assert np.abs(want - ref).max() < 0.1 * np.abs(ref).max()


def test_specialize_builds_the_kernels_with_the_model_and_computes_the_same(tmp_path):
    """--option specialize=1 (default) compiles int8_kernels.c inside model.c's translation unit (per-layer
    clones by gcc); 0 links one generic copy. Same firmware outputs, bit for bit."""
    import pytest

    from edgecc.errors import TargetError

    net = _mlp()
    x = torch.randn(4, 40, generator=torch.Generator().manual_seed(2)).numpy()
    cal = torch.randn(16, 40, generator=torch.Generator().manual_seed(3)).numpy()
    folder = calibration_folder(tmp_path / "cal", cal)
    outs = {}
    for flag in ("1", "0"):
        b = edgecc.compile(net, (torch.from_numpy(x[:1]),), target="cortex-m4", backend="micro", output=tmp_path / flag,
                           quantize="int8", calibration=folder, options={"specialize": flag})
        included = '#include "int8_kernels.c"' in (b.path / "model.c").read_text()
        assert included == (flag == "1") and b.manifest["artifact"]["info"]["memory"]["specialize"] == (flag == "1")
        members = subprocess.run(["arm-none-eabi-ar", "t", str(b.path / "libmodel.a")], capture_output=True,
                                 text=True, check=True).stdout.split()
        assert ("int8_kernels.o" in members) == (flag == "0"), members
        outs[flag] = b.runner().run_many(x)
    assert np.array_equal(outs["1"], outs["0"])
    with pytest.raises(TargetError, match="specialize=maybe"):
        edgecc.compile(net, (torch.from_numpy(x[:1]),), target="cortex-m4", backend="micro", output=tmp_path / "bad",
                       quantize="int8", calibration=folder, options={"specialize": "maybe"})
    assert not (tmp_path / "bad").exists()
