"""The int8 micro path's plan below the tensor level: which residual adds fuse into a conv, which outputs take an
input's buffer, and ResNet-8's arena (no toolchain: the C kernels are checked bit-exact in
tests/integration/test_int8_kernels.py on the host and test_int8_kernels_qemu.py on Cortex-M)."""

import pytest
import torch

from edgecc.compiler.micro.int8 import plan_int8
from edgecc.compiler.micro.int8_backend import inplace_option
from edgecc.compiler.micro.int8_fusion import residual_fusions
from edgecc.compiler.micro.plan import check_plan, plan_arena
from edgecc.compiler.squeeze.quant import calibrate, capture_graph, quantize_graph
from edgecc.errors import TargetError


def _quantized(net, shape):
    torch.manual_seed(0)
    net = net.eval()
    g = capture_graph(net, torch.randn(1, *shape))
    quantize_graph(g, calibrate(g, torch.randn(8, *shape, generator=torch.Generator().manual_seed(1)).numpy()))
    return g


class Blocks(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.e = (torch.nn.Conv2d(4, 4, 3, 1, 1) for _ in range(3))
        self.dw = torch.nn.Conv2d(4, 4, 3, 1, 1, groups=4)
        self.c = torch.nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = torch.relu(self.a(x) + x)  # fuses into a; x is a's input too, so the sum may not overwrite it
        y2 = self.b(torch.relu(self.e(y))) + y  # fuses into b, written over y (y dies there; b reads e's output)
        y3 = self.dw(y2) + y2  # a depthwise conv does not fuse: edgecc_q8_add, written over a dying input
        w = self.c(y3)
        return w + w + (w + y3)  # w has three readers, and w + w is one tensor twice: neither fuses into c


def test_residual_adds_fuse_into_the_conv_that_computes_their_later_operand():
    g = _quantized(Blocks(), (4, 6, 6))
    fused = residual_fusions(g)
    assert [(g.ops[i].kind, g.ops[j].kind) for i, j in fused.items()] == [("conv", "add")] * 2
    assert [g.ops[i].inputs[0] for i in fused] == [g.input, g.ops[2].output]  # a (on x) and b (on e's output)
    prog = plan_int8(g, "blocks")
    calls = [s.kernel.split("(")[0] for s in prog.steps]
    assert calls.count("edgecc_q8_conv_add") == 2 and calls.count("edgecc_q8_add") == 4
    assert "edgecc_q8_depthwise_conv" in calls and calls.count("edgecc_q8_conv") == 2  # e and c
    first, second = (s for s in prog.steps if s.kernel.startswith("edgecc_q8_conv_add"))
    assert first.inplace == () and first.args[-1] not in prog.inplace  # x: still read by conv a itself
    assert prog.inplace[second.args[-1]] == prog.root(second.args[1])  # the residual y's buffer
    # each edgecc_q8_add takes a dying input's buffer, except w + w: w is read again by w + y3
    adds = [s for s in prog.steps if s.kernel.startswith("edgecc_q8_add")]
    assert [s.args[-1] in prog.inplace for s in adds] == [True, False, True, True]
    assert prog.inplace[adds[2].args[-1]] == adds[2].args[0] == adds[1].args[0]  # w + y3 over w, at w's last read
    plan = plan_arena(prog.buffers())
    check_plan(plan)
    assert plan.size < plan_arena(plan_int8(g, "blocks", inplace=False).buffers()).size


def test_resnet8_int8_arena_is_at_most_three_quarters_of_the_tensor_level_plan():
    from edgecc.models import get_model

    spec = get_model("resnet8")
    g = _quantized(spec.builder(), spec.input_shapes[0][1:])
    fused, tensor_level = plan_int8(g, "resnet8"), plan_int8(g, "resnet8", inplace=False)
    plans = [plan_arena(p.buffers()) for p in (fused, tensor_level)]
    for p in plans:
        check_plan(p)
    assert [s.kernel.split("(")[0] for s in fused.steps].count("edgecc_q8_conv_add") == 3  # every block's add
    assert len(fused.inplace) == 3  # each sum written over its shortcut
    assert plans[1].size == 49_728  # x, conv1(x), conv2(..) of the first block and the conv scratch
    assert plans[0].size == plans[0].lower_bound <= 36 * 1024 and plans[0].size <= 0.75 * plans[1].size
    assert plans[0].size == 33_920  # block 2's conv2: x (16 KB), its input and the sum (8 KB each)


def test_the_inplace_option_takes_1_or_0_and_refuses_anything_else():
    assert inplace_option({}) is True and inplace_option({"inplace": "0"}) is False
    assert inplace_option({"inplace": True}) is True and inplace_option({"inplace": "off"}) is False
    with pytest.raises(TargetError, match=r"^--option inplace=maybe: expected 1/0 \(true/false\)$"):
        inplace_option({"inplace": "maybe"})
    # the patch stage replaces whole-tensor steps: it takes the tensor-level plan, and says so when asked for both
    assert inplace_option({"patch_stages": 4}) is False
    with pytest.raises(TargetError, match="does not combine with patch_stages yet"):
        inplace_option({"patch_stages": 4, "inplace": "1"})
