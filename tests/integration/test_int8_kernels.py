"""runtime/c's int8 kernels compiled with the host C compiler (their portable path), bit-exact with the numpy
int8 reference and TFLite's requantization arithmetic."""

import ctypes
import shutil
import subprocess

import numpy as np
import pytest
import torch

from edgecc.compiler.squeeze.quant import multiply_by_quantized_multiplier, quantize_multiplier
from tests.unit.test_quantize import EDGE

# ------------------------------------------------------------- the C kernels (portable path) on the host

@pytest.fixture(scope="module")
def kernels_lib(tmp_path_factory):
    from edgecc.compiler.micro.link import runtime_c_dir

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no host C compiler")
    rt = runtime_c_dir()
    so = tmp_path_factory.mktemp("q8") / "libq8.so"
    subprocess.run([cc, "-O2", "-shared", "-fPIC", f"-I{rt / 'include'}", str(rt / "src" / "int8_kernels.c"),
                    "-o", str(so)], check=True)
    lib = ctypes.CDLL(str(so))
    lib.edgecc_q8_requantize.restype = ctypes.c_int32
    lib.edgecc_q8_requantize.argtypes = [ctypes.c_int32] * 3
    return lib


def test_c_requantize_is_bit_exact_with_the_numpy_reference(kernels_lib):
    rng = np.random.default_rng(3)
    accs = EDGE + rng.integers(-(1 << 24), 1 << 24, 300).tolist()
    # every right shift 0..31 (the one-sum rounding), left shifts, multipliers of exactly 2^30 and 0
    reals = [0.0123, 0.5, 0.9999, 1.7, 3.1e-4, 2.0 ** -20, 5.5, 2.0 ** -32, 0.75 * 2.0 ** -31, 0.0]
    for real in reals + [float(v) for v in 2.0 ** rng.uniform(-33, 3, 60)]:
        m, s = quantize_multiplier(real)
        want = multiply_by_quantized_multiplier(np.array(accs), m, s).tolist()
        got = [kernels_lib.edgecc_q8_requantize(a, m, s) for a in accs]
        assert got == want, real


@pytest.mark.parametrize("size", [9, 65], ids=["add-per-element", "add-tabulated"])
@pytest.mark.parametrize("inplace", [True, False], ids=["fused-inplace", "tensor-level"])
def test_c_conv_kernels_match_the_numpy_reference(kernels_lib, inplace, size):
    """A small quantized net (conv 3->8 stride 2 pad 1, depthwise 3x3, 1x1 conv + residual add, maxpool, global
    avgpool, dense) through the C kernels, portable path, bit-exact with run_int8: with the add fused into the 1x1
    conv's epilogue and written over the residual (the default plan), and as separate kernels; on a 9x9 input the
    add rescales per element (200 sums), on 65x65 from tables (8712 sums)."""
    from edgecc.compiler.micro.int8 import plan_int8
    from edgecc.compiler.squeeze.quant import calibrate, capture_graph, quantize_graph, run_int8

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(3, 8, 3, 2, 1)
            self.dw = torch.nn.Conv2d(8, 8, 3, 1, 1, groups=8)
            self.pw = torch.nn.Conv2d(8, 8, 1)
            self.fc = torch.nn.Linear(8 * ((size + 1) // 4) ** 2, 5)

        def forward(self, x):
            y = torch.relu(self.c1(x))
            y = torch.relu(self.pw(torch.relu(self.dw(y))) + y)
            y = torch.nn.functional.max_pool2d(y, 2)
            return self.fc(torch.flatten(y, 1))

    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(16, 3, size, size, generator=torch.Generator().manual_seed(1))
    g = capture_graph(net, x[:1])
    quantize_graph(g, calibrate(g, x.numpy()))
    prog = plan_int8(g, "net", inplace=inplace)
    fns = [s.kernel.split("(")[0] for s in prog.steps]
    assert ("edgecc_q8_conv_add" in fns) == inplace and ("edgecc_q8_add" in fns) != inplace
    assert bool(prog.inplace) == inplace  # the sum takes the residual's buffer
    # run the steps with ctypes against numpy buffers
    import re

    lib = kernels_lib
    bufs = {n: np.zeros(int(np.prod(c)), np.int8) for n, c in prog.chw.items()}
    consts = {name: v for _, name, v in prog.consts}

    class Conv(ctypes.Structure):
        _fields_ = [(f, ctypes.c_int16) for f in "ih iw ic oh ow oc kh kw sh sw ph pw".split()] + [
            ("zp_in", ctypes.c_int32), ("zp_out", ctypes.c_int32), ("act_min", ctypes.c_int32)]

    class Add(ctypes.Structure):
        _fields_ = [(f, ctypes.c_int32) for f in
                    "zp_a zp_b zp_out act_min mult_a shift_a mult_b shift_b mult_out shift_out".split()]

    def ptr(a):
        return a.ctypes.data_as(ctypes.c_void_p)

    def struct(name, cls):
        return cls(*[int(v) for v in consts[name].strip("{}").split(",")])

    xin = x[:1].numpy()
    out = np.zeros(5, np.float32)
    scratch = np.zeros(max(s.scratch_bytes for s in prog.steps), np.int8)
    for step in prog.steps:
        args = [a.strip() for a in re.match(r"\w+\((.*)\)$", step.kernel).group(1).split(",")]
        fn = step.kernel.split("(")[0]
        buf = lambda a: ptr(bufs[prog.root(a.strip("{}"))])  # noqa: E731
        if fn == "edgecc_q8_quantize":
            lib.edgecc_q8_quantize(ptr(xin), buf(args[1]), *[int(a) for a in args[2:5]], ctypes.c_float(
                float(args[5].rstrip("f"))), int(args[6]))
        elif fn == "edgecc_q8_dequantize":
            lib.edgecc_q8_dequantize(buf(args[0]), ptr(out), *[int(a) for a in args[2:5]],
                                     ctypes.c_float(float(args[5].rstrip("f"))), int(args[6]))
        elif fn in ("edgecc_q8_conv", "edgecc_q8_depthwise_conv"):
            p = struct(args[0][1:], Conv)
            getattr(lib, fn)(ctypes.byref(p), buf(args[1]), *[ptr(consts[a]) for a in args[2:6]], buf(args[6]),
                             ptr(scratch))
        elif fn == "edgecc_q8_conv_add":
            p, pa = struct(args[0][1:], Conv), struct(args[6][1:], Add)
            lib.edgecc_q8_conv_add(ctypes.byref(p), buf(args[1]), *[ptr(consts[a]) for a in args[2:6]],
                                   ctypes.byref(pa), buf(args[7]), buf(args[8]), ptr(scratch))
        elif fn == "edgecc_q8_add":
            p = struct(args[0][1:], Add)
            lib.edgecc_q8_add(ctypes.byref(p), buf(args[1]), buf(args[2]), buf(args[3]), int(args[4]))
        elif fn == "edgecc_q8_maxpool":
            p = struct(args[0][1:], Conv)
            lib.edgecc_q8_maxpool(ctypes.byref(p), buf(args[1]), buf(args[2]))
        elif fn == "edgecc_q8_global_avgpool":
            lib.edgecc_q8_global_avgpool(buf(args[0]), buf(args[1]), *[int(a) for a in args[2:5]])
        else:
            raise AssertionError(fn)
    want = run_int8(g, xin)
    assert out.tolist() == want.reshape(-1).tolist()


def test_c_requantize_negative_multipliers_keep_gemmlowp_saturation(kernels_lib):
    """The reference form the kernels do not use (negative multipliers), INT32_MIN x INT32_MIN included."""
    accs = EDGE
    for m, s in ((-(1 << 31), 0), (-(1 << 30) - 12345, -3), (-(1 << 31), -5), (-7, 2)):
        want = multiply_by_quantized_multiplier(np.array(accs), m, s).tolist()
        assert [kernels_lib.edgecc_q8_requantize(a, m, s) for a in accs] == want, (m, s)
