"""TVM's CPU fast math (compiler/backends/tvm/fast_math.py) and the local TVM runner's DLPack path, with real TVM:
the rewritten functions hold no libm calls, compute what libm computes to a few ulp over the whole float range,
`--option fast_math=0` keeps the calls, and the runner takes misaligned inputs and returns arrays of its own."""

import numpy as np
import pytest
import torch

import edgecc

tvm = pytest.importorskip("tvm")

from edgecc.compiler.backends.tvm import tuning  # noqa: E402
from edgecc.compiler.backends.tvm.importer import import_relax  # noqa: E402
from edgecc.compiler.frontends import load_model  # noqa: E402

HOST = tvm.target.Target({"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "haswell"})


class Gates(torch.nn.Module):
    """The four functions the rewrite replaces, each in its own output."""

    def forward(self, x):
        return torch.sigmoid(x), torch.tanh(x), torch.exp(x), torch.erf(x)


def _fused(fast_math: bool, n: int = 4096):
    mod, _ = import_relax(load_model(Gates().eval(), (torch.zeros(1, n),)))
    with HOST:
        return tuning.fuse(mod, HOST, fast_math)


def _calls(fused) -> set[str]:
    text = "\n".join(f.script() for gv, f in fused.functions_items() if isinstance(f, tvm.tirx.PrimFunc))
    return {name for name in ("T.sigmoid(", "T.tanh(", "T.exp(", "T.erf(") if name in text}


def test_fast_math_leaves_no_libm_calls_and_off_keeps_them():
    assert _calls(_fused(True)) == set()
    assert _calls(_fused(False)) == {"T.sigmoid(", "T.tanh(", "T.exp(", "T.erf("}


def test_fast_math_matches_libm_over_the_float_range():
    n = 4096
    x = np.concatenate([np.linspace(-100, 100, n // 2), np.linspace(-6, 6, n // 2)]).astype("float32")[None]
    outs = {}
    for fast in (True, False):
        ex, _ = tuning.build(import_relax(load_model(Gates().eval(), (torch.zeros(1, n),)))[0],
                             {"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "haswell"}, None,
                             fast_math=fast)
        vm = tvm.relax.VirtualMachine(ex, tvm.cpu())
        outs[fast] = [o.numpy() for o in vm["main"](tvm.runtime.tensor(x))]
    # TOPI's fast_exp clamps its argument to +-88.376: above that it says inf where float32 still holds exp(x)
    # (up to 88.72), below it 0 where libm gives a denormal
    inside = np.abs(x) <= 88.3
    for name, fast, libm in zip(("sigmoid", "tanh", "exp", "erf"), outs[True], outs[False], strict=True):
        np.testing.assert_allclose(fast[inside], libm[inside], rtol=5e-6, atol=1e-6, err_msg=name)
    # sigmoid and tanh saturate where they should (fast_tanh's rational form lands up to an ulp past +-1); exp
    # underflows to 0, not to a negative or NaN
    assert outs[True][0].min() >= 0 and outs[True][0].max() <= 1
    assert np.abs(outs[True][1]).max() <= np.nextafter(np.float32(1), np.float32(2))
    assert np.all(outs[True][2][x < -90] >= 0) and not np.isnan(outs[True][2]).any()


def test_fast_math_option(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Tanh()).eval()
    on = edgecc.compile(net, (torch.randn(1, 16),), target="host", backend="tvm", output=tmp_path / "on")
    off = edgecc.compile(net, (torch.randn(1, 16),), target="host", backend="tvm", output=tmp_path / "off",
                         options={"fast_math": "0"})
    assert on.manifest["artifact"]["info"]["fast_math"].startswith("float32 exp/tanh")
    assert off.manifest["artifact"]["info"]["fast_math"].startswith("off")
    assert on.manifest["validation"]["passed"] and off.manifest["validation"]["passed"]
    with pytest.raises(edgecc.EdgeccError, match="fast_math=maybe: expected 1/0"):
        edgecc.compile(net, (torch.randn(1, 16),), target="host", backend="tvm", output=tmp_path / "bad",
                       options={"fast_math": "maybe"})
    assert not (tmp_path / "bad").exists()


def test_runner_takes_misaligned_inputs_and_returns_its_own_arrays(tmp_path):
    from edgecc.runtime.runners import TvmLocalRunner

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(61, 64), torch.nn.Sigmoid()).eval()
    x = torch.randn(1, 61)
    bundle = edgecc.compile(net, (x,), target="host", backend="tvm", output=tmp_path / "b")
    runner = TvmLocalRunner(bundle)
    ref = net(x).detach().numpy()
    raw = np.empty(61 * 4 + 64, np.uint8)
    start = (-raw.ctypes.data) % 64 + 4  # 4 bytes past a 64-byte boundary: TVM's kernels assume 64
    misaligned = raw[start:start + 61 * 4].view(np.float32).reshape(1, 61)
    misaligned[...] = x.numpy()
    first = runner.run([misaligned])[0]
    np.testing.assert_allclose(first, ref, rtol=1e-5, atol=1e-6)
    second = runner.run([np.zeros((1, 61), np.float32)])[0]
    assert not np.shares_memory(first, second)
    np.testing.assert_allclose(first, ref, rtol=1e-5, atol=1e-6)  # the second run did not overwrite the first
    np.testing.assert_allclose(second, net(torch.zeros(1, 61)).detach().numpy(), rtol=1e-5, atol=1e-6)
