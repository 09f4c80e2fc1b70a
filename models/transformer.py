"""Transformers in the zoo, built with Hugging Face `transformers` from their config classes (random init,
nothing downloaded): a small ViT image classifier and a BERT-tiny-shaped text classifier."""

from __future__ import annotations

from edgecc.models.hf_suite import EDGE_VOCAB, SEQ_LEN, text_inputs, vit_tiny
from edgecc.models.hf_suite import bert_tiny as _bert_tiny
from edgecc.models.zoo import register_model


@register_model("vit-tiny", [(1, 3, 32, 32)],
                "ViT (transformers ViTForImageClassification): 32x32, patch 4, 4 layers x 64, 10 classes",
                tags=("tiny", "transformer"))
def vit_tiny_classifier():
    return vit_tiny(classifier=True)[0]


@register_model("bert-tiny", [(1, SEQ_LEN), (1, SEQ_LEN)],
                f"BERT-tiny (transformers BertForSequenceClassification, 2 layers x 128, 2 heads), "
                f"{EDGE_VOCAB}-token vocabulary, {SEQ_LEN} tokens + mask, 2 classes",
                tags=("tiny", "transformer"), example_inputs=lambda: text_inputs(EDGE_VOCAB))
def bert_tiny():
    return _bert_tiny(classifier=True)[0]
