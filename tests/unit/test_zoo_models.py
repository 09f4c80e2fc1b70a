"""The zoo's model definitions: published parameter counts of the canonical configurations, and every model
(and every entry of the transformers coverage suite) exports with torch.export and matches eager PyTorch."""

import pytest

torch = pytest.importorskip("torch")

from edgecc.models import get_model  # noqa: E402

NEW_ZOO = ["vit-tiny", "bert-tiny", "gru-kws", "lstm-kws", "mobilenetv3-small", "mobilenetv3-small-96",
           "unet-small", "vww-mobilenetv1", "toyadmos-ae"]


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def n_bn_statistics(module) -> int:
    return sum(b.numel() for name, b in module.named_buffers() if name.endswith(("running_mean", "running_var")))


def test_mobilenetv3_small_has_torchvisions_parameter_count():
    from edgecc.models.mobilenets import MobileNetV3Small

    assert n_params(MobileNetV3Small()) == 2_542_856  # torchvision mobilenet_v3_small, 1000 classes


def test_vww_mobilenetv1_matches_mlperf_tinys_keras_reference():
    from edgecc.models.mobilenets import MobileNetV1

    net = MobileNetV1(alpha=0.25, num_classes=2)
    conv_biases = sum(m.bias.numel() for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    bn_affine = sum(p.numel() for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters())
    assert n_params(net) - conv_biases - bn_affine == 208_114  # conv + dense weights: the published ~208K
    assert n_params(net) + n_bn_statistics(net) == 221_794  # Keras model.count_params(): biases and BN included


def test_toyadmos_autoencoder_matches_mlperf_tinys_reference():
    from edgecc.models.audio import ToyAdmosAutoencoder

    net = ToyAdmosAutoencoder()
    assert n_params(net) == 267_928
    assert n_params(net) + n_bn_statistics(net) == 269_992  # the ~270K of the Keras reference


def test_bert_tiny_config_is_bert_tinys_shape():
    pytest.importorskip("transformers")
    from transformers import BertModel

    from edgecc.models.hf_suite import bert_tiny_config

    # google/bert_uncased_L-2_H-128_A-2: 30,522-token vocabulary, 512 positions, 2 layers x 128, FFN 512
    embeddings = (30_522 + 512 + 2) * 128 + 2 * 128
    layer = 4 * (128 * 128 + 128) + (128 * 512 + 512) + (512 * 128 + 128) + 2 * 2 * 128
    assert n_params(BertModel(bert_tiny_config(vocab_size=30_522))) == embeddings + 2 * layer + 128 * 128 + 128
    assert embeddings + 2 * layer + 128 * 128 + 128 == 4_385_920


def _exports_and_matches(module, inputs):
    with torch.no_grad():
        eager = module(*inputs)
        exported = torch.export.export(module, tuple(inputs)).module()(*inputs)
    assert isinstance(eager, torch.Tensor) and eager.shape == exported.shape
    torch.testing.assert_close(exported, eager, rtol=1e-4, atol=1e-5)
    return eager


@pytest.mark.parametrize("name", NEW_ZOO)
def test_zoo_model_exports(name):
    spec = get_model(name)
    if spec.tags and "transformer" in spec.tags:
        pytest.importorskip("transformers")
    module, inputs = spec.factory()
    assert [tuple(t.shape) for t in inputs] == list(spec.input_shapes)
    out = _exports_and_matches(module, inputs)
    assert out.abs().max() > 1e-3  # the seeded random weights give non-degenerate outputs


def test_zoo_factories_are_deterministic():
    a, b = get_model("vww-mobilenetv1").factory(), get_model("vww-mobilenetv1").factory()
    with torch.no_grad():
        torch.testing.assert_close(a[0](*a[1]), b[0](*b[1]), rtol=0, atol=0)


def test_hf_suite_entries_export():
    pytest.importorskip("transformers")
    from edgecc.models.hf_suite import hf_suite

    names = [name for name, _ in hf_suite()]
    assert names == ["hf-bert-tiny", "hf-distilbert", "hf-vit", "hf-mobilevit-xxs", "hf-whisper-tiny-encoder"]
    for _, factory in hf_suite():
        _exports_and_matches(*factory())


def test_non_persistent_buffers_are_given_to_torch_mlir_as_state():
    from edgecc.compiler.backends.iree.importer import _expose_non_persistent_buffers

    class WithIds(torch.nn.Module):  # as transformers' BertEmbeddings registers position_ids
        def __init__(self):
            super().__init__()
            self.register_buffer("ids", torch.arange(4), persistent=False)

        def forward(self, x):
            return x + self.ids

    x = torch.zeros(4, dtype=torch.int64)
    ep = torch.export.export(WithIds(), (x,))
    assert "ids" not in ep.state_dict and "ids" in ep.constants
    _expose_non_persistent_buffers(ep)
    assert torch.equal(ep.state_dict["ids"], torch.arange(4)) and "ids" not in ep.constants
    assert torch.equal(ep.module()(x), torch.arange(4))
