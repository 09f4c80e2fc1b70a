"""edgecc's int8 kernels in their DSP build (SMLAD / SXTB16, the 2 channels x 2 pixels GEMM) on a Cortex-M in
qemu-system-arm, bit-exact with the numpy TFLite-arithmetic reference (run_int8) on every output. On the M55 the same
net runs the Helium (MVE) build (test_int8_kernels_mve.py adds the shapes that build splits on).

The net is shaped to reach every path of edgecc_q8_conv: the byte-wise im2col (3 and 7 input channels), the
word-wise im2col with padding (8 channels) and its 1x1 form, odd output-channel counts (the 1-channel tail), odd
pixel counts (the 1-pixel tail: 13x13 and 7x7), a 1-pixel dense with an odd width; depthwise; and both forms of
the residual add (tabulated input rescales from 1024 elements: 8x13x13; per element below: 7x7x7), each once
fused into a conv's epilogue (edgecc_q8_conv_add: out of place where the residual is the conv's own input, in
place over the residual otherwise) and once as its own kernel written over a dying input (edgecc_q8_add after a
depthwise conv, which does not fuse). Dense layers (one pixel: the 2-channel x 1-pixel tail) are covered
bit-exact on the M4 by test_quantize's digits-cnn.
"""

import numpy as np
import pytest
import torch

import edgecc
from tests.conftest import calibration_folder, int8_reference, require_cortex_m_tools

require_cortex_m_tools()


class TailNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, 1, 1)  # ic 3: byte-wise im2col; 169 pixels: the 1-pixel tail
        self.mix = torch.nn.Conv2d(8, 8, 1)  # 1x1, stride 1, then an add of 1352 elements
        self.dw8 = torch.nn.Conv2d(8, 8, 3, 1, 1, groups=8)  # 8 channels: the word path (3-wide rows unrolled)
        self.c2 = torch.nn.Conv2d(8, 7, 3, 2, 1)  # ic 8: word-wise im2col with padding; oc 7: the 1-channel tail
        self.sc = torch.nn.Conv2d(8, 7, 1, 2, 0)  # the 1x1 im2col (no bounds checks), stride 2
        self.dw = torch.nn.Conv2d(7, 7, 3, 1, 1, groups=7)  # 7 channels: the per-channel path
        self.pw = torch.nn.Conv2d(7, 9, 1)  # 1x1 with ic 7: byte-wise im2col again; its map is the output

    def forward(self, x):
        y = torch.relu(self.c1(x))
        u = torch.relu(y + self.mix(y))  # fused into mix, tabulated; y is mix's input too: not overwritten
        y = torch.relu(self.dw8(u) + u)  # edgecc_q8_add, tabulated, written over a dying input
        y = torch.relu(self.c2(y) + self.sc(y))  # fused into sc (both tails), per element, over c2's output
        return self.pw(torch.relu(self.dw(y)) + y)  # edgecc_q8_add per element, in place; then a feature map


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7", "cortex-m55"])
def test_dsp_int8_kernels_are_bit_exact_in_qemu(target, tmp_path):
    torch.manual_seed(0)
    net = TailNet().eval()
    gen = torch.Generator().manual_seed(1)
    cal, x = torch.randn(32, 3, 13, 13, generator=gen).numpy(), torch.randn(12, 3, 13, 13, generator=gen).numpy()
    folder = calibration_folder(tmp_path / "cal", cal)
    bundle = edgecc.compile(net, (torch.from_numpy(x[:1]),), target=target, backend="micro",
                            output=tmp_path / "b", quantize="int8", calibration=folder)
    model_c = (bundle.path / "model.c").read_text()
    assert "edgecc_q8_conv(" in model_c and "edgecc_q8_depthwise_conv(" in model_c
    assert model_c.count("edgecc_q8_conv_add(") == 2 and model_c.count("edgecc_q8_add(") == 2
    assert model_c.count("in place over") == 3  # the mix conv's sum may not overwrite y: mix still reads it
    mem = bundle.manifest["artifact"]["info"]["memory"]
    assert mem["arena_bytes"] < mem["tensor_level_arena_bytes"] and len(mem["inplace_outputs"]) == 3
    _, want = int8_reference(net, cal, x)
    got = bundle.runner().run_many(x)
    assert got.shape == want.shape
    assert np.array_equal(got.reshape(want.shape), want), np.abs(got.reshape(want.shape) - want).max()
    assert len(np.unique(want)) > 50  # the outputs are not all clamped to one value
