"""Inputs that fit the model (--input-range, embedding vocabularies, masks, ONNX test data) and the user's
validation samples (--validate-with): formats, the checks that name the input, and the rates validation reports."""

import numpy as np
import pytest

from edgecc.compiler.inputs import (
    InputRange,
    embedding_ranges_onnx,
    embedding_ranges_torch,
    fit_inputs,
    onnx_test_data,
    parse_input_range,
)
from edgecc.compiler.samples import load_samples
from edgecc.errors import ModelError, TargetError, UsageError
from edgecc.validate import PRECISION_TOLERANCE, compare_samples

X = [((1, 1, 8, 8), "float32")]


@pytest.mark.parametrize("text, want", [("0:1", InputRange("", 0.0, 1.0)), ("ids=0:30521", InputRange("ids", 0, 30521)),
                                        ("-1.5:2.5", InputRange("", -1.5, 2.5))])
def test_input_range_parses(text, want):
    assert parse_input_range(text) == want


@pytest.mark.parametrize("text", ["1:0", "a:b", "0-1", "0:1:2", "x=:1", "0:inf", "1:1"])
def test_bad_input_range_is_one_line(text):
    with pytest.raises(UsageError) as e:
        parse_input_range(text)
    assert "--input-range" in str(e.value) and "\n" not in str(e.value)


def test_generated_inputs_follow_ranges_embeddings_and_masks():
    specs = [((2, 5), "int64"), ((2, 5), "int64"), ((1, 3, 4, 4), "float32"), ((2, 5), "bool")]
    names = ["input_ids", "attention_mask", "pixels", "keep"]
    arrays, descs = fit_inputs(names, specs, [parse_input_range("pixels=0:1")], {"input_ids": (0, 99)})
    ids, mask, pixels, keep = arrays
    assert ids.min() >= 0 and ids.max() <= 99 and ids.max() > 2 and "100 rows" in descs[0]["range_from"]
    assert set(np.unique(mask)) <= {0, 1} and "mask" in descs[1]["range_from"]
    assert 0 <= pixels.min() and pixels.max() < 1 and descs[2]["range_from"] == "--input-range pixels=0:1"
    assert keep.dtype == np.bool_ and descs[3]["distribution"].startswith("boolean")
    with pytest.raises(UsageError, match="boolean mask"):
        fit_inputs(["keep"], [((2,), "bool")], [parse_input_range("0:5")], {})


def test_embedding_vocabulary_found_through_views_in_torch_and_onnx(tmp_path):
    import onnx
    import torch
    from onnx import TensorProto, helper

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(37, 4)

        def forward(self, scale, ids):
            return self.emb(ids.view(-1)) * scale

    ep = torch.export.export(Net(), (torch.ones(1), torch.zeros(1, 6, dtype=torch.long)))
    assert embedding_ranges_torch(ep) == {1: (0, 36)}

    table = helper.make_tensor("table", TensorProto.FLOAT, [50, 3], np.zeros(150, np.float32))
    g = helper.make_graph([helper.make_node("Cast", ["tok"], ["tok64"], to=TensorProto.INT64),
                           helper.make_node("Gather", ["table", "tok64"], ["y"], axis=0)], "g",
                          [helper.make_tensor_value_info("tok", TensorProto.INT32, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3])], [table])
    assert embedding_ranges_onnx(onnx.helper.make_model(g).graph) == {"tok": (0, 49)}


def test_onnx_test_data_used_only_when_it_matches(tmp_path):
    from onnx import numpy_helper

    (tmp_path / "test_data_set_0").mkdir()
    shape = np.array([2, 3], np.int64)
    (tmp_path / "test_data_set_0" / "input_0.pb").write_bytes(numpy_helper.from_array(shape).SerializeToString())
    got = onnx_test_data(tmp_path / "model.onnx", ["shape"], [((2,), np.int64)])
    assert got is not None and got[0][0].tolist() == [2, 3]
    assert onnx_test_data(tmp_path / "model.onnx", ["shape"], [((3,), np.int64)]) is None  # other shape: ignored
    assert onnx_test_data(tmp_path / "model.onnx", ["a", "b"], [((2,), np.int64)] * 2) is None


def test_samples_from_every_format(tmp_path):
    rng = np.random.default_rng(0)
    stack = rng.standard_normal((5, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "stack.npy", stack)
    np.save(tmp_path / "nobatch.npy", stack[:, 0])  # N x C x H x W without the batch-1 axis
    assert len(load_samples(str(tmp_path / "stack.npy"), ["x"], X, 8).inputs) == 5
    s = load_samples(str(tmp_path / "stack.npy"), ["x"], X, 3)
    assert len(s.inputs) == 3 and s.inputs[2][0].shape == (1, 1, 8, 8) and np.array_equal(s.inputs[2][0], stack[2:3])
    folder = tmp_path / "one_per_file"
    folder.mkdir()
    for i in range(4):
        np.save(folder / f"{i}.npy", stack[i:i + 1].astype(np.float64))  # float64: cast to the model's float32
    s = load_samples(str(folder), ["x"], X, 8)
    assert len(s.inputs) == 4 and s.inputs[0][0].dtype == np.float32
    two = [((1, 3), "float32"), ((1, 3), "int64")]
    np.savez(tmp_path / "two.npz", a=np.ones((6, 3), np.float32), input_1=np.arange(18).reshape(6, 3))
    s = load_samples(str(tmp_path / "two.npz"), ["a", "b"], two, 8)
    assert len(s.inputs) == 6 and s.inputs[1][1].dtype == np.int64 and s.inputs[1][1].tolist() == [[3, 4, 5]]
    d = load_samples("digits", ["x"], X, 8)
    assert len(d.inputs) == 8 and d.labels is not None and len(d.labels) == 8 and d.description["labelled"]


def test_samples_from_onnx_test_data_sets(tmp_path):
    from onnx import numpy_helper

    for k in range(3):
        (tmp_path / f"test_data_set_{k}").mkdir()
        a = np.full((1, 1, 8, 8), k, np.float32)
        (tmp_path / f"test_data_set_{k}" / "input_0.pb").write_bytes(numpy_helper.from_array(a).SerializeToString())
    s = load_samples(str(tmp_path), ["x"], X, 8)
    assert [float(x[0].mean()) for x in s.inputs] == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("make, message", [
    (lambda p: np.save(p / "s.npy", np.zeros((4, 1, 9, 9), np.float32)), "input 'x' have shape [4, 1, 9, 9]"),
    (lambda p: np.save(p / "s.npy", np.zeros((4, 1, 8, 8), np.int32)), "input 'x' are int32; the model takes float32"),
    (lambda p: None, "holds no .npy, .npz or test_data_set_* samples"),
])
def test_bad_samples_name_the_input(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(ModelError) as e:
        load_samples(str(tmp_path), ["x"], X, 8)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_npz_without_an_input_and_zero_samples_are_refused(tmp_path):
    np.savez(tmp_path / "s.npz", other=np.zeros((2, 3), np.float32))
    with pytest.raises(ModelError, match="no array for input 'a'"):
        load_samples(str(tmp_path / "s.npz"), ["a"], [((1, 3), "float32")], 8)
    with pytest.raises(UsageError, match="1 or more"):
        load_samples("digits", ["x"], X, 0)


def test_rates_over_samples():
    ref = [[np.array([[0.1, 0.9]], np.float32)], [np.array([[0.8, 0.2]], np.float32)],
           [np.array([[0.3, 0.7]], np.float32)]]
    out = [[r[0] + 1e-5] for r in ref[:2]] + [[np.array([[0.71, 0.69]], np.float32)]]  # last: flipped, off by 0.4
    r = compare_samples(out, ref, "pytorch", True, PRECISION_TOLERANCE["fp16"], labels=np.array([1, 0, 0]))
    assert r["samples"] == 3 and r["within_tolerance"] == pytest.approx(2 / 3) and not r["passed"]
    assert r["top1_agreement"] == pytest.approx(2 / 3) and r["max_abs_error"] == pytest.approx(0.41, abs=1e-6)
    assert r["accuracy"] == {"labels": 3, "reference_top1": pytest.approx(2 / 3), "artifact_top1": 1.0}
    ok = compare_samples(out[:2], ref[:2], "pytorch", True)
    assert ok["passed"] and ok["within_tolerance"] == 1.0 and ok["mean_abs_error"] == pytest.approx(1e-5, rel=0.1)


def test_targets_refuse_precisions_they_cannot_do():
    from edgecc.targets import get_target

    get_target("orangepi5-mali").check_precision("fp16")
    with pytest.raises(TargetError, match="Cortex-M4 FPU is single precision"):
        get_target("cortex-m4").check_precision("fp16")
    with pytest.raises(TargetError, match="no BF16 instructions"):
        get_target("orangepi5-cpu").check_precision("bf16")
    with pytest.raises(TargetError, match="unknown precision 'fp8'"):
        get_target("host").check_precision("fp8")


def test_tied_reference_rows_name_no_top1():
    ref = [[np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]], np.float32)]]
    out = [[np.array([[0.9, 1.0, 0.0], [0.0, 2.0, 1.0]], np.float32)]]  # row 0: a tie in the reference
    r = compare_samples(out, ref, "onnxruntime", True, {"atol": 0.2, "rtol": 0.0})
    assert r["passed"] and r["top1_agreement"] == 1.0 and r["top1_undecided_rows"] == 1
    ref = [[np.array([[0.0, 2.0, 1.5]], np.float32)]]  # margin 0.5 > tolerance 0.3: a decided top-1
    flipped = [[np.array([[0.0, 1.75, 1.76]], np.float32)]]  # within tolerance everywhere, top-1 swapped
    r = compare_samples(flipped, ref, "onnxruntime", True, {"atol": 0.3, "rtol": 0.0})
    assert not r["passed"] and r["within_tolerance"] == 1.0 and r["top1_agreement"] == 0.0
