"""The torch.export rewrites applied before TVM's Relax import (torch only, no TVM)."""

import pytest

from edgecc.compiler.backends.tvm.torch_rewrites import prepare_for_relax

torch = pytest.importorskip("torch")


class FromTheEnd(torch.nn.Module):
    def forward(self, x):
        return x[:, -1] * 2, x.select(-1, -2) + 1, x[:, [-1, 0]] * 3


def test_negative_indices_become_positive_and_mean_the_same():
    x = torch.randn(2, 5, 3)
    ep = torch.export.export(FromTheEnd(), (x,))
    prepare_for_relax(ep)
    selects = [n.args[2] for n in ep.graph.nodes if n.target is torch.ops.aten.select.int]
    assert selects == [4, 1]
    assert [c.tolist() for c in ep.constants.values()] == [[4, 0]]
    for got, want in zip(ep.module()(x), FromTheEnd()(x), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_programs_without_negative_indices_are_left_alone():
    class Plain(torch.nn.Module):
        def forward(self, x):
            return x[:, 1] + x[:, [0, 2]].sum(1)

    ep = torch.export.export(Plain(), (torch.randn(2, 5, 3),))
    before = ep.graph_module.code
    prepare_for_relax(ep)
    assert ep.graph_module.code == before and [c.tolist() for c in ep.constants.values()] == [[0, 2]]
