"""edgecc's int8 kernels in their Helium (MVE) build (runtime/c/include/edgecc/int8_mve.h) on the Cortex-M55 in
qemu-system-arm (mps3-an547), bit-exact with the numpy TFLite-arithmetic reference (run_int8) on every output.

test_int8_kernels_qemu's TailNet runs the same kernels on the M55 too; this net adds the shapes the MVE code
splits on and TailNet does not reach: GEMM rows whose length is a multiple of 16 (no predicated step: 3x3 over 16
channels, 144 k), a last step of 4 whole groups (45 k from 3x3 over 5 channels; 13 k from a 1x1 over 13), more
than 64 output channels (two channel chunks: 70, and 69 with the odd channel in the second chunk), a 1x1 read in
place with a 6-k tail (70 k), a stride-2 depthwise over 69 channels (8 full blocks of 8 and a predicated 5), a
5x5 depthwise (the per-tap loop, not the unrolled 3-wide row), a residual add fused into a 69-channel conv
(the per-pixel add rows of a second chunk), odd pixel counts (13x13, 7x7) and a plain add over an element
count that is not a multiple of 4.
"""

import subprocess

import numpy as np
import torch

import edgecc
from tests.conftest import calibration_folder, int8_reference, require_cortex_m_tools

require_cortex_m_tools()


class HeliumNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(5, 70, 3, 1, 1)  # 45 k: 2 steps + 4 groups; 70 channels: chunks of 64 and 6
        self.pw = torch.nn.Conv2d(70, 69, 1)  # in place, 70 k: 4 steps + 6 k; 69: the odd channel in chunk 2
        self.res = torch.nn.Conv2d(69, 69, 1)  # fused with the add below: per-pixel add rows (two chunks)
        self.dw = torch.nn.Conv2d(69, 69, 3, 2, 1, groups=69)  # stride 2: blocks of 8 and a predicated 5
        self.sq = torch.nn.Conv2d(69, 16, 1)
        self.c3 = torch.nn.Conv2d(16, 13, 3, 1, 1)  # 144 k: rows without a predicated step
        self.dw5 = torch.nn.Conv2d(13, 13, 5, 1, 2, groups=13)  # 5x5: the per-tap loop
        self.p13 = torch.nn.Conv2d(13, 11, 1)  # 13 k: no full step, a last step of 4 groups

    def forward(self, x):
        y = torch.relu(self.pw(torch.relu(self.c1(x))))
        y = torch.relu(self.res(y) + y)
        y = torch.relu(self.sq(torch.relu(self.dw(y))))
        z = torch.relu(self.c3(y))
        return self.p13(torch.relu(self.dw5(z)) + z)  # an add of 13 x 7 x 7 = 637 elements: a 1-element tail


def test_mve_int8_kernels_are_bit_exact_on_the_m55(tmp_path):
    torch.manual_seed(0)
    net = HeliumNet().eval()
    gen = torch.Generator().manual_seed(2)
    cal, x = torch.randn(32, 5, 13, 13, generator=gen).numpy(), torch.randn(6, 5, 13, 13, generator=gen).numpy()
    folder = calibration_folder(tmp_path / "cal", cal)
    bundle = edgecc.compile(net, (torch.from_numpy(x[:1]),), target="cortex-m55", backend="micro",
                            output=tmp_path / "b", quantize="int8", calibration=folder)
    model_c = (bundle.path / "model.c").read_text()
    assert "edgecc_q8_conv_add(" in model_c and "edgecc_q8_add(" in model_c
    assert "edgecc_q8_depthwise_conv(" in model_c
    # the firmware runs the Helium kernels, not the DSP ones
    symbols = subprocess.run(["arm-none-eabi-nm", str(bundle.path / "firmware.elf")], capture_output=True,
                             text=True, check=True).stdout
    assert "q8_mve_conv" in symbols and "q8_mve_dw_row8" in symbols and "q8_mve_dw_row_tail" in symbols
    _, want = int8_reference(net, cal, x)
    got = bundle.runner().run_many(x)
    assert np.array_equal(got.reshape(want.shape), want), np.abs(got.reshape(want.shape) - want).max()
    assert len(np.unique(want)) > 50  # the outputs are not all clamped to one value
