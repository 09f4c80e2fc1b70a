"""Layer kinds beyond plain CNNs on the Cortex-M path (issue #18), each compiled for cortex-m4, run in
qemu-system-arm and compared with PyTorch (or ONNX Runtime) by edgecc.compile's validation.

Several ops share one tiny model so the file runs in a few minutes: a compile is ~5-20 s here.
"""

import numpy as np
import pytest

import edgecc
from tests.conftest import require_cortex_m_tools

torch = pytest.importorskip("torch")
pytest.importorskip("tvm")
require_cortex_m_tools()

nn, F = torch.nn, torch.nn.functional


def compile_m4(net, inputs, tmp_path, name):
    b = edgecc.compile(net.eval(), inputs, target="cortex-m4", backend="micro", name=name, output=tmp_path / name)
    v = b.manifest["validation"]
    assert v["status"] == "passed" and v["ran_on"] == "qemu-system-arm -M mps2-an386", v
    assert v["max_abs_error"] < 1e-4, v
    return b


class NonFinite(nn.Module):
    """Padded max-pool, a one-sided clamp and softmax: TVM's C writes -inf/+inf constants for each."""

    def forward(self, x):
        y = F.max_pool2d(x, 3, 2, padding=1)  # pads with -inf
        return F.softmax(y.clamp(min=-0.5).flatten(1), -1), y.clamp(max=0.25)


def test_infinity_constants_compile_for_arm_gcc(tmp_path):
    torch.manual_seed(0)
    b = compile_m4(NonFinite(), (torch.randn(1, 2, 6, 6),), tmp_path, "nonfinite")
    kernels_c = (b.path / "kernels.c").read_text()
    assert "INFINITY" in kernels_c and "inff" not in kernels_c


class MobileBlock(nn.Module):
    """MobileNetV3 / transformer-head pieces: hardswish, squeeze-excite (avg-pool, ReLU, hardsigmoid, scale),
    sigmoid and tanh gates, then LayerNorm, GELU (erf and tanh forms) and softmax."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, stride=2)
        self.se_down, self.se_up = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        y = F.hardswish(self.conv(x))
        s = F.hardsigmoid(self.se_up(F.relu(self.se_down(F.adaptive_avg_pool2d(y, 1)))))
        y = y * s
        y = torch.sigmoid(y) * torch.tanh(y) + y
        t = self.norm(y.flatten(2).transpose(1, 2))  # (1, 16, 8) tokens
        t = F.gelu(t) + F.gelu(t, approximate="tanh")
        return F.softmax(self.fc(t.mean(1)), -1)


def test_activations_layernorm_and_squeeze_excite(tmp_path):
    torch.manual_seed(0)
    compile_m4(MobileBlock(), (torch.randn(1, 3, 8, 8),), tmp_path, "mobile-block")


class Attention(nn.Module):
    """nn.MultiheadAttention, then the same by hand: reshape to heads, transpose, batched matmul, softmax."""

    def __init__(self, dim=8, heads=2):
        super().__init__()
        self.mha = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.qkv, self.heads = nn.Linear(dim, 3 * dim), heads

    def forward(self, x):
        x = x + self.mha(x, x, x, need_weights=False)[0]
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5, -1)
        return (att @ v).transpose(1, 2).reshape(b, n, d)


def test_attention_batched_matmul_transpose_reshape(tmp_path):
    torch.manual_seed(0)
    compile_m4(Attention(), (torch.randn(1, 4, 8),), tmp_path, "attention")


class ConcatSplitUpsample(nn.Module):
    """split + concat, nearest and bilinear upsampling, a 1-D convolution over the flattened rows."""

    def __init__(self):
        super().__init__()
        self.conv1d = nn.Conv1d(4, 6, 3, padding=1)

    def forward(self, x):
        a, b = torch.split(x, [1, 3], 1)
        y = torch.cat([b, a], 1)
        up = torch.cat([F.interpolate(y, scale_factor=2, mode="nearest"),
                        F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)], 1)
        return self.conv1d(y.flatten(2)), up


def test_concat_split_upsampling_and_conv1d(tmp_path):
    torch.manual_seed(0)
    b = compile_m4(ConcatSplitUpsample(), (torch.randn(1, 4, 4, 4),), tmp_path, "cat-split-up")
    assert [o["shape"] for o in b.manifest["artifact"]["info"]["io"]["outputs"]] == [[1, 6, 16], [1, 8, 8, 8]]


class KeywordSpotter(nn.Module):
    """An RNN over MFCC frames; the class head reads the last step (`y[:, -1]`) and the final state is returned
    too (a second output)."""

    def __init__(self, cell):
        super().__init__()
        self.rnn = getattr(nn, cell)(10, 16, batch_first=True)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        y, state = self.rnn(x)
        h = state[0] if isinstance(state, tuple) else state
        return self.fc(y[:, -1]), h


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_rnn_keyword_spotter_on_cortex_m4(cell, tmp_path):
    torch.manual_seed(0)
    net = KeywordSpotter(cell)
    b = compile_m4(net, (torch.randn(1, 6, 10),), tmp_path, f"kws-{cell.lower()}")
    info = b.manifest["artifact"]["info"]
    assert len(info["io"]["outputs"]) == 2
    # each weight is in flash once, not once per unrolled time step (6 here)
    param_bytes = 4 * sum(p.numel() for p in net.parameters())
    assert info["memory"]["weights_bytes"] < 2 * param_bytes, (info["memory"]["weights_bytes"], param_bytes)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_rnn_keyword_spotter_on_host_tvm(cell, tmp_path):
    # TVM's frontend turned y[:, -1] into an out-of-bounds take: max abs error 1e14 before the fix
    torch.manual_seed(0)
    b = edgecc.compile(KeywordSpotter(cell).eval(), (torch.randn(1, 6, 10),), target="host", backend="tvm",
                       output=tmp_path / "b")
    v = b.manifest["validation"]
    assert v["status"] == "passed" and v["max_abs_error"] < 1e-5, v


class NegativeIndices(nn.Module):
    """Indexing from the end: select (`x[:, -1]`, `x[..., -2]`) and a constant index list (`x[:, [-1, 0]]`)."""

    def forward(self, x):
        return x[:, -1] * 2, x[..., -2] + 1, x[:, [-1, 0]] * 3


@pytest.mark.parametrize("target,backend", [("host", "tvm"), ("cortex-m4", "micro")])
def test_negative_indices(target, backend, tmp_path):
    b = edgecc.compile(NegativeIndices(), (torch.randn(2, 5, 3),), target=target, backend=backend,
                       output=tmp_path / "b")
    v = b.manifest["validation"]
    assert v["status"] == "passed" and v["max_abs_error"] == 0.0, v


class Passthrough(nn.Module):
    """Outputs no kernel writes: the input itself, a weight, and the same tensor twice (once as a view)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.bias = nn.Parameter(torch.arange(3.0))

    def forward(self, x):
        y = self.conv(x)
        return y, x, self.bias, y.flatten(1)


def test_outputs_that_are_inputs_weights_or_repeats(tmp_path):
    torch.manual_seed(0)
    b = compile_m4(Passthrough(), (torch.randn(1, 2, 3, 3),), tmp_path, "passthrough")
    x = np.random.default_rng(1).standard_normal((1, 2, 3, 3)).astype(np.float32)
    outs = b.runner().run([x])
    np.testing.assert_array_equal(outs[1], x)
    np.testing.assert_array_equal(outs[2], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(outs[3], outs[0].reshape(1, -1))


@pytest.mark.parametrize("dynamo", [False, True])
def test_onnx_cnn_compiles_and_validates_in_qemu(dynamo, tmp_path):
    from tests.integration.test_micro import small_cnn

    net, inputs = small_cnn()
    path = tmp_path / "cnn.onnx"
    torch.onnx.export(net, inputs, str(path), dynamo=dynamo, input_names=["x"], output_names=["y"])
    b = edgecc.compile(str(path), target="cortex-m4", backend="micro", output=tmp_path / "b")
    v = b.manifest["validation"]
    assert v["status"] == "passed" and v["reference"] == "onnxruntime" and v["max_abs_error"] < 1e-4, v
    assert "by the ONNX frontend" in (b.path / "model.c").read_text()


class AbsSoftsign(nn.Module):
    """abs (TIR's fabs, which TVM's C codegen leaves unresolved), softsign and softplus."""

    def forward(self, x):
        return F.softsign(x) + F.softplus(x).abs(), x.abs()


def test_abs_softsign_softplus(tmp_path):
    compile_m4(AbsSoftsign(), (torch.randn(1, 4, 8),), tmp_path, "abs-softsign")
