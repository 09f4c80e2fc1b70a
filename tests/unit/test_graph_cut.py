"""Cutting a torch.export graph: which nodes are offered, and that front + back compute the whole model."""

import pytest

from edgecc.compiler.compose.graph_cut import block_boundaries, crossing, cut_candidates, split_program
from edgecc.compiler.frontends import load_model
from edgecc.errors import ModelError
from tests.conftest import DATA

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def resnet8():
    m = load_model("resnet8")
    return m, m.exported_program()


def test_resnet8_cuts_are_the_single_tensor_nodes(resnet8):
    _, ep = resnet8
    cuts = cut_candidates(ep)
    assert [c.node for c in cuts] == ["conv2d", "batch_norm", "relu_", "add", "relu__2", "add_1", "relu__4", "add_2",
                                      "relu__6", "adaptive_avg_pool2d", "flatten"]
    assert [c.node for c in block_boundaries(cuts)] == ["relu_", "relu__2", "relu__4", "relu__6", "flatten"]
    r4 = next(c for c in cuts if c.node == "relu__4")
    assert r4.shape == (1, 32, 16, 16) and r4.bytes == 32768 and r4.front_ops + r4.back_ops == 31
    # inside a residual block the skip connection crosses too
    assert crossing(ep, "conv2d_1") == ["relu_", "conv2d_1"]


def test_front_then_back_is_the_whole_model_at_every_cut(resnet8):
    m, ep = resnet8
    x = torch.from_numpy(m.example_inputs[0])
    ref = m.reference(m.example_inputs)[0]
    for c in cut_candidates(ep):
        front, back = split_program(ep, c.node)
        with torch.no_grad():
            mid = front(x)
            out = back(mid).numpy()
        assert tuple(mid.shape) == c.shape
        assert abs(out - ref).max() == 0.0, c.node  # the same ops on the same weights, in the same order


@pytest.mark.parametrize("node,needle", [("conv2d_99", "has no node 'conv2d_99'"),
                                         ("conv2d_1", "2 tensors cross a cut after conv2d_1 (relu_, conv2d_1)"),
                                         ("linear", "is the model's output")])
def test_refused_cuts_are_one_line_model_errors(resnet8, node, needle):
    with pytest.raises(ModelError) as e:
        split_program(resnet8[1], node)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_model_with_no_single_tensor_cut_has_no_candidates():
    m = load_model(f"{DATA / 'split_factory.py'}:residual")
    assert cut_candidates(m.exported_program()) == []
