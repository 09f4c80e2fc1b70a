"""The whole-graph channels-last rewrite (compiler/backends/iree/passes/channels_last_graph.py), checked in PyTorch
on exported graphs."""

import torch
from torch import nn

from edgecc.compiler.backends.iree.passes.channels_last_graph import channels_last

aten = torch.ops.aten


class Residual(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


def _bn(c):
    bn = nn.BatchNorm2d(c)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.5, 0.5)
    return bn


def _net():
    torch.manual_seed(0)
    negative = nn.Conv2d(8, 8, 1)
    negative.bias.data.fill_(-10.0)  # every value < 0: a max-pool padded with 0 instead of -inf would be wrong
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1, bias=False), _bn(8), nn.ReLU6(),                       # stem, NCHW input
        nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False), _bn(8), nn.ReLU6(),             # depthwise
        Residual(nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), _bn(16), nn.ReLU6(),     # inverted residual
                               nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False), _bn(16), nn.ReLU6(),
                               nn.Conv2d(16, 8, 1, bias=False), _bn(8))),
        negative, nn.MaxPool2d(3, 2, 1),
        nn.Conv2d(8, 12, 1, stride=2),                                                   # strided 1x1
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 5)).eval()


def _ops(ep):
    return [n.target for n in ep.graph.nodes if n.op == "call_function"]


def _rewrite(net, x):
    ep = torch.export.export(net, (x,))
    ep2, stats = channels_last(ep, (x,))
    with torch.no_grad():
        ref, got = net(x), ep2.module()(x)
    return ep2, stats, ref, got


def test_mobilenet_like_block_is_nhwc_end_to_end():
    x = torch.randn(1, 3, 20, 20)
    ep2, stats, ref, got = _rewrite(_net(), x)
    assert stats == {"matmuls": 4, "convs": 3, "pools": 1, "folded_batchnorms": 5, "nchw_fallbacks": 0}
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    ops = _ops(ep2)
    assert aten.batch_norm.default not in ops and aten.linear.default not in ops
    assert ops.count(aten.addmm.default) == 5  # four 1x1 convolutions and the classifier
    # permutes only where a layout really changes: after the stem (NCHW input), around the depthwise convs and the
    # max-pool; none around the elementwise ops, the residual add or the global pool
    assert ops.count(aten.permute.default) == 7
    assert ops.count(aten.constant_pad_nd.default) == 3  # depthwise (zeros) and max-pool (-inf) padded in NHWC


def test_unknown_ops_get_nchw_inputs_and_stay_correct():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 1), nn.Linear(4 * 6 * 6, 3)

        def forward(self, x):
            y = torch.flip(torch.relu(self.conv(x)), [3])  # flip of W: wrong if run on NHWC
            return self.fc(torch.flatten(y, 1)), y          # flatten of H, W > 1 and a 4-D output: NCHW

    torch.manual_seed(0)
    x = torch.randn(1, 3, 6, 6)
    _, stats, ref, got = _rewrite(Odd().eval(), x)
    assert stats["matmuls"] == 1 and stats["nchw_fallbacks"] >= 1
    for r, g in zip(ref, got, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)


def test_models_without_convolutions_are_left_alone():
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU()).eval()
    x = torch.randn(2, 4)
    ep = torch.export.export(net, (x,))
    ep2, stats = channels_last(ep, (x,))
    assert ep2 is ep and stats == {"skipped": "no convolutions to rewrite"}


def test_training_mode_batchnorm_is_not_folded():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)).train()
    x = torch.randn(2, 3, 5, 5)
    _, stats, _, _ = _rewrite(net, x)
    assert stats.get("folded_batchnorms", 0) == 0


def test_pointwise_next_to_a_dense_conv_stays_a_conv():
    """A ResNet-50 bottleneck: both 1x1 convolutions touch the 3x3 one (through BatchNorm/ReLU), so neither
    becomes a matmul; the 1x1 shortcut that only meets the residual add does."""
    class Bottleneck(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(8, 4, 1, bias=False), _bn(4), nn.ReLU(),
                                      nn.Conv2d(4, 4, 3, padding=1, bias=False), _bn(4), nn.ReLU(),
                                      nn.Conv2d(4, 16, 1, bias=False), _bn(16))
            self.shortcut = nn.Conv2d(8, 16, 1)

        def forward(self, x):
            return torch.relu(self.body(x) + self.shortcut(x))

    torch.manual_seed(0)
    x = torch.randn(1, 8, 6, 6)
    _, stats, ref, got = _rewrite(Bottleneck().eval(), x)
    assert stats["matmuls"] == 1 and stats["convs"] == 3 and stats["folded_batchnorms"] == 3
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
