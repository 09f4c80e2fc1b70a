"""Real architectures from Hugging Face `transformers`, built from small configs with random init (seeded,
nothing downloaded), at input sizes that suit the edge: a coverage suite of models edgecc did not write.

    from edgecc.models.hf_suite import hf_suite
    for name, factory in hf_suite():
        module, inputs = factory()          # module(*inputs) returns one plain tensor

Each module is wrapped so its forward takes tensors positionally and returns one tensor (the logits or the last
hidden state), and every config asks for eager attention, so `torch.export.export(module, inputs)` works.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from edgecc.models.zoo import _calibrate_batchnorm

SEQ_LEN = 32  # tokens per text input
EDGE_VOCAB = 4096  # a text vocabulary that fits a microcontroller's flash (BERT's own is 30,522)


class OutputOf(nn.Module):
    """Calls a `transformers` model with keyword inputs and returns one field of its output as a tensor."""

    def __init__(self, model: nn.Module, field: str, input_names: tuple[str, ...]):
        super().__init__()
        self.model, self.field, self.input_names = model, field, input_names

    def forward(self, *inputs):
        return getattr(self.model(**dict(zip(self.input_names, inputs, strict=True))), self.field)


def _transformers():
    import logging

    from edgecc.errors import require

    # transformers imports torchao when it is installed (executorch, in edgecc[full], brings it); on a CPU-only torch
    # torchao warns about each CUDA extension it cannot load, and re-registers enums torch now treats natively:
    # lines on every command's stderr that say nothing about the user's model
    for noisy in ("torchao", "torch.utils._pytree"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    return require("transformers", "transformers", "the transformers models")


def text_inputs(vocab: int, seq_len: int = SEQ_LEN, mask: bool = True) -> tuple[torch.Tensor, ...]:
    """Seeded int64 token ids (1, seq_len) and, with `mask`, an all-ones attention mask."""
    ids = torch.randint(0, vocab, (1, seq_len), generator=torch.Generator().manual_seed(1))
    return (ids, torch.ones_like(ids)) if mask else (ids,)


def bert_tiny_config(vocab_size: int = EDGE_VOCAB, num_labels: int = 2):
    """BERT-tiny's shape (Turc et al. 2019, google/bert_uncased_L-2_H-128_A-2): 2 layers, hidden 128, 2 heads,
    FFN 512; 512 positions."""
    return _transformers().BertConfig(vocab_size=vocab_size, hidden_size=128, num_hidden_layers=2,
                                      num_attention_heads=2, intermediate_size=512, num_labels=num_labels,
                                      attn_implementation="eager")


def bert_tiny(classifier: bool = False, vocab_size: int = EDGE_VOCAB):
    tf = _transformers()
    torch.manual_seed(0)
    config = bert_tiny_config(vocab_size)
    if classifier:
        model, field = tf.BertForSequenceClassification(config), "logits"
    else:
        model, field = tf.BertModel(config, add_pooling_layer=False), "last_hidden_state"
    return OutputOf(model.eval(), field, ("input_ids", "attention_mask")).eval(), text_inputs(vocab_size)


def distilbert_small():
    """DistilBERT's architecture at BERT-tiny's size: 2 layers, dim 128, 2 heads, FFN 512."""
    tf = _transformers()
    torch.manual_seed(0)
    config = tf.DistilBertConfig(vocab_size=EDGE_VOCAB, dim=128, n_layers=2, n_heads=2, hidden_dim=512,
                                 attn_implementation="eager")
    model = tf.DistilBertModel(config).eval()
    return OutputOf(model, "last_hidden_state", ("input_ids", "attention_mask")).eval(), text_inputs(EDGE_VOCAB)


def vit_tiny_config(num_labels: int = 10):
    """A ViT for 32x32 images: patch 4 (64 patches + CLS), hidden 64, 4 layers, 4 heads, MLP 128."""
    return _transformers().ViTConfig(image_size=32, patch_size=4, num_channels=3, hidden_size=64,
                                     num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
                                     num_labels=num_labels, attn_implementation="eager")


def vit_tiny(classifier: bool = True):
    tf = _transformers()
    torch.manual_seed(0)
    config = vit_tiny_config()
    if classifier:
        model, field = tf.ViTForImageClassification(config), "logits"
    else:
        model, field = tf.ViTModel(config, add_pooling_layer=False), "last_hidden_state"
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return OutputOf(model.eval(), field, ("pixel_values",)).eval(), (x,)


def vit_tiny_encoder():
    """ViTModel (no classifier head) at vit_tiny's config: the last hidden state."""
    return vit_tiny(classifier=False)


def mobilevit_xxs():
    """MobileViT-XXS's widths (Mehta & Rastegari 2022) at 64x64 input, 10 classes."""
    tf = _transformers()
    torch.manual_seed(0)
    config = tf.MobileViTConfig(image_size=64, num_labels=10, hidden_sizes=[64, 80, 96],
                                neck_hidden_sizes=[16, 16, 24, 48, 64, 80, 320], expand_ratio=2.0,
                                attn_implementation="eager")
    model = tf.MobileViTForImageClassification(config)
    # with transformers' init (std 0.02 everywhere) the logits shrink to ~1e-42 through the convolutions, and
    # numerical checks mean nothing: PyTorch's default init for convs and dense layers, and BatchNorm statistics
    # calibrated as the zoo does for its CNNs, keep them well scaled
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.reset_parameters()
    _calibrate_batchnorm(model, [(1, 3, 64, 64)])
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    return OutputOf(model.eval(), "logits", ("pixel_values",)).eval(), (x,)


def whisper_tiny_encoder(frames: int = 200):
    """Whisper-tiny's encoder (4 layers, d_model 384, 6 heads, 80 mel bins) on `frames` 10 ms frames (2 s by
    default instead of Whisper's 30 s): positions are cut to match, as the encoder requires."""
    tf = _transformers()
    torch.manual_seed(0)
    config = tf.WhisperConfig(d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536,
                              decoder_layers=4, decoder_attention_heads=6, decoder_ffn_dim=1536, num_mel_bins=80,
                              max_source_positions=frames // 2, attn_implementation="eager")
    encoder = tf.WhisperModel(config).get_encoder().eval()
    x = torch.randn(1, 80, frames, generator=torch.Generator().manual_seed(1))
    return OutputOf(encoder, "last_hidden_state", ("input_features",)).eval(), (x,)


def hf_suite() -> list[tuple[str, Callable[[], tuple[nn.Module, tuple[torch.Tensor, ...]]]]]:
    """(name, factory) for each architecture; factory() -> (module in eval mode, example inputs)."""
    return [
        ("hf-bert-tiny", bert_tiny),
        ("hf-distilbert", distilbert_small),
        ("hf-vit", vit_tiny_encoder),
        ("hf-mobilevit-xxs", mobilevit_xxs),
        ("hf-whisper-tiny-encoder", whisper_tiny_encoder),
    ]
