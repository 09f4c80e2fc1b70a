"""schedule_for_mcu's fp32 register blocks: which block a layer gets, and that a conv and a dense kernel come out
blocked (unrolled block loops under the reduction) while staying the same computation (every micro compile
checks the numbers against PyTorch in QEMU: tests/integration/test_micro.py)."""

import pytest

from edgecc.compiler.micro.schedule import ACCUMULATORS, _block_shape


@pytest.mark.parametrize(("channels", "columns", "want"), [
    (16, 32, (1, 8)),  # resnet8's first stage: 8 columns share each weight
    (64, 5, (8, 1)),  # ds-cnn's 5 columns do not split: 8 channels share each input
    (6, 12, (2, 4)),
    (3, 3, (1, 1)),  # nothing divides: left as it was
])
def test_block_shape_prefers_columns_and_stays_within_the_registers(channels, columns, want):
    bc, bw = _block_shape(channels, columns)
    assert (bc, bw) == want and bc * bw <= ACCUMULATORS
    assert channels % bc == 0 and columns % bw == 0


def test_conv_and_dense_kernels_are_register_blocked():
    torch = pytest.importorskip("torch")
    pytest.importorskip("tvm")
    from edgecc.compiler.backends.tvm.importer import import_relax
    from edgecc.compiler.frontends import load_model
    from edgecc.compiler.micro.lower import lower_to_tir

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 8 * 8, 16)).eval()
    mod, _ = import_relax(load_model(net, (torch.randn(1, 3, 8, 8),)))
    lowered = lower_to_tir(mod, "blocked")
    scripts = {gv.name_hint: lowered.kernels[gv].script() for gv in lowered.kernels.functions}
    conv = next(s for n, s in scripts.items() if "conv2d" in n)
    dense = next(s for n, s in scripts.items() if "matmul" in n)
    # 1 channel x 8 columns (the accumulators are initialised over the same unrolled block)
    assert "in T.unroll(T.int64(1))" in conv and "in T.unroll(T.int64(8))" in conv
    assert "in T.unroll(T.int64(8))" in dense
