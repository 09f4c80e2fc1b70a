"""TVM's integer int8 kernels (compiler/backends/tvm/int8.py), compiled by TVM and run on this CPU: the TIR
requantization against the numpy TFLite arithmetic on edge values, and whole graphs with every op kind bit for bit
against the numpy integer reference (run_int8)."""

import numpy as np
import pytest

tvm = pytest.importorskip("tvm")
torch = pytest.importorskip("torch")
nn = torch.nn

from edgecc.compiler.backends.tvm.int8 import _mbqm, int8_integer_supported, int8_relax_module  # noqa: E402
from edgecc.compiler.frontends import load_model  # noqa: E402
from edgecc.compiler.squeeze.quant import multiply_by_quantized_multiplier, quantize_model, run_int8  # noqa: E402
from tests.conftest import calibration_folder, has_avx512_vnni  # noqa: E402


def _host_target() -> dict:
    from edgecc.targets.host_cpu import host_cpu_name

    return {"kind": "llvm", "mcpu": host_cpu_name(), "num-cores": 2}


needs_vnni = pytest.mark.skipif(not has_avx512_vnni(),
                                reason="needs a CPU with AVX-512 VNNI (/proc/cpuinfo avx512_vnni)")


def test_tir_requantization_matches_tflite_arithmetic_on_edge_values():
    from tvm import te

    i32 = np.iinfo(np.int32)
    edge = np.array([0, 1, -1, 2, -2, 3, -3, 127, -128, 255, -256, 1 << 20, -(1 << 20), i32.max, i32.min,
                     i32.min + 1, 1 << 30, -(1 << 30), 12345678, -12345678], np.int64)
    rng = np.random.default_rng(0)
    xs = np.concatenate([edge, rng.integers(i32.min, i32.max, 2000)])
    mults = np.array([1 << 30, (1 << 31) - 1, 1518500250, 1073741825, 1234567890, 1], np.int64)
    shifts = np.array([-31, -20, -8, -1, 0, 1, 3, 7], np.int64)
    x, m, s = (a.ravel() for a in np.meshgrid(xs, mults, shifts, indexing="ij"))
    n = len(x)
    tx, tm, tl, tr = (te.placeholder((n,), "int32", name=v) for v in "xmlr")
    out = te.compute((n,), lambda i: _mbqm(tx[i], tm[i], tl[i], tr[i]), name="out")
    f = tvm.compile(te.create_prim_func([tx, tm, tl, tr, out]), target=tvm.target.Target(_host_target()))
    args = [tvm.runtime.tensor(a.astype(np.int32)) for a in (x, m, np.maximum(s, 0), np.maximum(-s, 0))]
    res = tvm.runtime.tensor(np.zeros(n, np.int32))
    f(*args, res)
    expect = multiply_by_quantized_multiplier(x, m, s)
    assert np.array_equal(res.numpy().astype(np.int64), expect)


def test_conv_tiles_allocate_nothing_on_the_heap():
    """A parallel conv's register tiles keep their sums and operands on the stack: a tile of 1024 bytes or more, or
    a named value in the tensor intrinsic's implementation, became a TVMBackendAllocWorkspace and free per tile
    (together a fifth of a 1x1 conv's time over 16 channels)."""
    from edgecc.compiler.backends.tvm.int8 import _Kernels

    w = np.zeros((6, 1, 1, 4, 16, 4), np.int8)
    func = _Kernels().conv((1, 56, 56, 16), w, (1, 1), (0, 0), -3, 5, (-128, 127), 56, 56)
    lib = tvm.compile(func, target=tvm.target.Target({"kind": "llvm", "mcpu": "znver4", "num-cores": 2}))
    ir = lib.mod.inspect_source("ll")
    assert "vpdpbusd" in ir
    assert "ptr @__TVMBackendAllocWorkspace" not in ir  # a load of the function pointer: a call


class EveryOp(nn.Module):
    """conv 3 -> 10 channels (stride 2, padding: channels padded to 4 and 16), BN, ReLU; depthwise, ReLU6; 1x1 conv;
    residual add with ReLU; max pool with padding; a 3x3 map flattened into a dense layer (NHWC column order)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 10, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(10)
        self.dw = nn.Conv2d(10, 10, 3, padding=1, groups=10)
        self.pw = nn.Conv2d(10, 10, 1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.fc1 = nn.Linear(10 * 3 * 3, 20)
        self.fc2 = nn.Linear(20, 7)

    def forward(self, x):
        y = torch.relu(self.bn(self.c1(x)))
        z = self.pw(nn.functional.relu6(self.dw(y)))
        y = torch.relu(y + z)
        y = self.pool(y)
        return self.fc2(torch.relu(self.fc1(torch.flatten(y, 1))))


class GlobalPool(nn.Module):
    """7x7 stride-2 stem, 3x3 convs of 64 channels (channel blocks and pixel tiles), global average pool, dense."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 7, stride=2, padding=3)
        self.c2 = nn.Conv2d(32, 64, 3, padding=1)
        self.c3 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        y = torch.relu(self.c3(torch.relu(self.c2(torch.relu(self.stem(x))))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


def _quantized(module, shape, tmp_path):
    torch.manual_seed(0)
    module.eval()
    if hasattr(module, "bn"):
        module.bn.running_mean.uniform_(-0.5, 0.5)
        module.bn.running_var.uniform_(0.5, 2.0)
    rng = np.random.default_rng(1)
    cal = calibration_folder(tmp_path / "cal", rng.standard_normal((8, *shape[1:])).astype(np.float32))
    loaded = load_model(module, [rng.standard_normal(shape).astype(np.float32)])
    return quantize_model(loaded, "int8", cal)


@needs_vnni
@pytest.mark.parametrize("module,shape", [(EveryOp, (1, 3, 12, 12)), (GlobalPool, (1, 3, 32, 32))])
def test_integer_kernels_are_bit_exact_with_the_integer_reference(module, shape, tmp_path):
    q = _quantized(module(), shape, tmp_path)
    target = _host_target()
    assert int8_integer_supported(q.qgraph, target) == ""
    ex = tvm.compile(int8_relax_module(q.qgraph, target), target=tvm.target.Target(target))
    vm = tvm.relax.VirtualMachine(ex, tvm.cpu())
    rng = np.random.default_rng(2)
    for scale in (0.5, 1.0, 4.0):  # 4x the calibration range: saturation at -128 / 127 included
        x = (scale * rng.standard_normal(shape)).astype(np.float32)
        got = vm["main"](tvm.runtime.tensor(x)).numpy()
        want = run_int8(q.qgraph, x)
        assert got.shape == want.shape and np.array_equal(got, want), np.abs(got - want).max()


def test_relu6_clamps_at_the_quantized_six_and_micro_refuses_it(tmp_path):
    from edgecc.compiler.micro.int8 import plan_int8
    from edgecc.compiler.squeeze.quant import activation_max
    from edgecc.errors import UnsupportedOpError

    q = _quantized(EveryOp(), (1, 3, 12, 12), tmp_path)
    dw = q.qgraph.ops[1]
    assert dw.kind == "conv" and dw.relu6 and dw.relu and not q.qgraph.ops[0].relu6
    s, zp = q.qgraph.qparams[dw.output]
    top = activation_max(True, s, zp)
    assert top == min(127, zp + int(np.floor(6.0 / s + 0.5)))
    _, ints = run_int8(q.qgraph, 8 * np.random.default_rng(3).standard_normal((4, 3, 12, 12)).astype(np.float32),
                       return_int=True)
    assert ints[dw.output].max() <= top and ints[dw.output].min() >= zp
    with pytest.raises(UnsupportedOpError, match="relu6"):
        plan_int8(q.qgraph, "m")


def test_integer_path_says_why_it_does_not_apply(tmp_path):
    q = _quantized(GlobalPool(), (1, 3, 32, 32), tmp_path)
    assert "VNNI" in int8_integer_supported(q.qgraph, {"kind": "llvm", "mcpu": "haswell"})
    assert "x86-64 only" in int8_integer_supported(
        q.qgraph, {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a76"})
    assert "not an LLVM CPU" in int8_integer_supported(q.qgraph, {"kind": "cuda", "arch": "sm_80"})

    class Grouped(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(4, 8, 3, groups=2)

        def forward(self, x):
            return self.c(x)

    (tmp_path / "g").mkdir()
    g = _quantized(Grouped(), (1, 4, 8, 8), tmp_path / "g").qgraph
    assert "grouped convolution (2 groups)" in int8_integer_supported(g, {"kind": "llvm", "mcpu": "icelake-server"})
