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


# Every new kind on every cell that can validate here (docs/zoo.md's table); `make test-all` runs it.
NEW_KINDS = ["vit-tiny", "bert-tiny", "gru-kws", "lstm-kws", "mobilenetv3-small-96", "unet-small",
             "vww-mobilenetv1", "toyadmos-ae"]
CELLS = [("host", "iree"), ("host", "tvm"), ("orangepi5-cpu", "iree"), ("cortex-m4", "micro")]


@pytest.mark.slow
@pytest.mark.parametrize(("target", "backend"), CELLS)
@pytest.mark.parametrize("model", NEW_KINDS)
def test_every_new_kind_on_every_cell(model, target, backend, tmp_path):
    from edgecc.errors import BudgetError

    pytest.importorskip("transformers")
    try:
        bundle = edgecc.compile(model, target=target, backend=backend, output=tmp_path / "b")
    except BudgetError as e:  # an honest "does not fit": MobileNetV3-small's 6 MB of fp32 weights on a 4 MB board
        assert model == "mobilenetv3-small-96" and "flash" in str(e), e
        return
    v = bundle.manifest["validation"]
    assert v["status"] == "passed" and v["max_abs_error"] < 1e-3, v
