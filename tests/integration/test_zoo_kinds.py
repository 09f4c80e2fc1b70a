"""The zoo's newer model kinds through the real host compilers: a transformers ViT (attention, LayerNorm, GELU,
softmax), the MLPerf Tiny anomaly-detection autoencoder (dense + BatchNorm1d, a regression output) and, on IREE,
transformers' BERT (int64 token ids, an attention mask, non-persistent buffers)."""

import numpy as np
import pytest

import edgecc

pytest.importorskip("torch")


@pytest.mark.parametrize(("model", "backend"), [("vit-tiny", "iree"), ("vit-tiny", "tvm"), ("toyadmos-ae", "iree"),
                                               ("toyadmos-ae", "tvm"), ("bert-tiny", "iree")])
def test_new_zoo_kind_compiles_and_validates_on_host(model, backend, tmp_path):
    if model in ("vit-tiny", "bert-tiny"):
        pytest.importorskip("transformers")
    bundle = edgecc.compile(model, target="host", backend=backend, output=tmp_path / "b")
    v = bundle.manifest["validation"]
    assert v["status"] == "passed" and v["reference"] == "pytorch" and v["max_rel_error"] < 1e-3
    assert v["top1_agreement"] == (None if model == "toyadmos-ae" else 1.0)
    out = bundle.runner().run(bundle.reference_inputs())
    np.testing.assert_allclose(out[0], bundle.reference_outputs()[0], rtol=1e-3, atol=1e-4)
