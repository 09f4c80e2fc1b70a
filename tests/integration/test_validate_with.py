"""Issue 27: validation on the user's samples (--validate-with, rates over N samples), inputs that fit the model
(ONNX test data, embedding vocabularies, --input-range) and --precision fp16/bf16, all through the real compilers and
runners (host IREE/TVM, Mesa lavapipe, qemu-aarch64)."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA, assert_clean_failure, edgecc_cli

TINY = f"{DATA / 'tiny_factory.py'}:build"


def onnx_test_model(suite: str, name: str) -> Path:
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data" / suite / f"test_{name}" / "model.onnx"


def manifest(path) -> dict:
    return json.loads((Path(path) / "manifest.json").read_text())


@pytest.mark.parametrize("name, backend", [
    ("operator_sqrt", "tvm"), ("operator_pow", "iree"),
    pytest.param("operator_sqrt", "iree", marks=pytest.mark.slow),
    pytest.param("operator_pow", "tvm", marks=pytest.mark.slow)])
def test_onnx_sqrt_and_pow_validate_with_in_range_inputs(tmp_path, name, backend):
    """Their test_data_set_0 holds negative values (the expected outputs are NaN there): edgecc validates on
    positive inputs instead, or on the user's --input-range."""
    p = edgecc_cli("compile", onnx_test_model("pytorch-operator", name), "-b", backend, "-o", tmp_path / "b")
    assert p.returncode == 0, p.stderr
    m = manifest(tmp_path / "b")
    assert m["validation"]["status"] == "passed" and m["validation"]["max_abs_error"] < 1e-5
    assert all(i["values"]["range_from"] == "the test data gave non-finite outputs" for i in m["io"]["inputs"])
    assert np.isfinite(np.load(tmp_path / "b" / "reference_output_0.npy")).all()
    if backend == "tvm":
        p = edgecc_cli("compile", onnx_test_model("pytorch-operator", name), "-b", backend, "--input-range", "0:4",
                       "-o", tmp_path / "r")
        assert p.returncode == 0, p.stderr
        x = np.load(tmp_path / "r" / "input_0.npy")
        assert 0 <= x.min() and x.max() < 4 and x.max() > 1


def test_an_expand_whose_shape_is_an_input_validates_with_its_test_data(tmp_path):
    """simple/expand_shape_model1 takes the target shape as an input: random integers are no shape; its own
    test_data_set_0 is."""
    p = edgecc_cli("compile", onnx_test_model("simple", "expand_shape_model1"), "-b", "iree", "-o", tmp_path / "b")
    assert p.returncode == 0, p.stderr
    shape_input = manifest(tmp_path / "b")["io"]["inputs"][1]
    assert shape_input["values"]["source"] == "test_data_set_0/input_1.pb beside the model"


def test_a_bert_encoder_pt2_validates_with_token_ids_from_its_vocabulary(tmp_path):
    import torch

    from edgecc.compiler.frontends import load_model

    torch.export.save(load_model("bert-tiny").exported_program(), tmp_path / "bert.pt2")
    p = edgecc_cli("compile", tmp_path / "bert.pt2", "-b", "tvm", "-o", tmp_path / "b")
    assert p.returncode == 0, p.stderr
    m = manifest(tmp_path / "b")
    ids, mask = m["io"]["inputs"]
    assert ids["dtype"] == "int64" and ids["values"]["range"] == [0, 4095], ids
    assert "embedding table of 4096 rows" in ids["values"]["range_from"]
    tokens = np.load(tmp_path / "b" / "input_0.npy")
    assert tokens.min() >= 0 and tokens.max() <= 4095 and len(np.unique(tokens)) > 3
    assert m["validation"]["status"] == "passed"


def test_validate_with_digits_reports_rates_over_the_samples(tmp_path):
    p = edgecc_cli("compile", "digits-cnn", "-b", "tvm", "--validate-with", "digits", "--validate-samples", "12",
                   "-o", tmp_path / "b")
    assert p.returncode == 0, p.stderr
    v = manifest(tmp_path / "b")["validation"]
    assert v["samples"] == 12 and v["within_tolerance"] == 1.0 and v["top1_agreement"] == 1.0
    assert v["mean_abs_error"] <= v["max_abs_error"] < 1e-3
    assert v["accuracy"]["labels"] == 12 and v["accuracy"]["artifact_top1"] == v["accuracy"]["reference_top1"]
    assert v["samples_source"]["source"] == "dataset digits (held-out split)"
    assert "on 12 samples (100% within tolerance)" in p.stdout


def test_validate_with_a_folder_of_samples_and_an_input_range(tmp_path):
    """The user's .npy samples (float64 as numpy saves them, cast to the model's float32), the bundle's reference
    input being the first; and --input-range for a factory's example input."""
    from edgecc.compiler.frontends import load_model
    from edgecc.compiler.inputs import parse_input_range

    rng = np.random.default_rng(3)
    (tmp_path / "s").mkdir()
    for i in range(3):
        np.save(tmp_path / "s" / f"{i}.npy", rng.uniform(0, 1, (1, 1, 8, 8)))
    p = edgecc_cli("compile", TINY, "-b", "tvm", "--validate-with", tmp_path / "s", "-o", tmp_path / "b")
    assert p.returncode == 0, p.stderr
    v = manifest(tmp_path / "b")["validation"]
    assert v["samples"] == 3 and v["samples_source"]["format"] == ".npy files"
    np.testing.assert_allclose(np.load(tmp_path / "b" / "input_0.npy"), np.load(tmp_path / "s" / "0.npy"), rtol=1e-6)

    m = load_model(TINY, input_ranges=[parse_input_range("0:1")])
    x = m.example_inputs[0]
    assert 0 <= x.min() and x.max() < 1 and m.io_spec(m.reference([x]))["inputs"][0]["values"]["range_from"] == \
        "--input-range 0:1"


@pytest.mark.parametrize("args, code, needle", [
    (["--validate-samples", "0"], 2, "--validate-samples: must be 1 or more, got 0"),
    (["--precision", "fp8"], 2, "invalid choice: 'fp8'"),
    (["--input-range", "1:0"], 2, "LOW must be below HIGH"),
    (["--input-range", "zero:one"], 2, "must be numbers"),
    (["--validate-with", "/no/such/samples"], 2, "no such file or folder, and not a dataset name"),
    (["-t", "cortex-m4", "--precision", "fp16"], 3, "Cortex-M4 FPU is single precision"),
    (["-t", "cortex-m55", "-b", "micro", "--precision", "fp16"], 3, "micro backend compiles fp32 or int8"),
    (["-b", "tvm", "--precision", "bf16"], 3, "casts to float16 only"),
    (["-t", "orangepi5-cpu", "--precision", "bf16"], 3, "no BF16 instructions"),
    (["--precision", "fp16", "--quantize", "int8", "--calibration", "digits"], 2, "both set the arithmetic"),
])
def test_bad_validation_and_precision_requests_are_one_line(tmp_path, args, code, needle):
    out = tmp_path / "out" / "b"
    assert_clean_failure(edgecc_cli("compile", "digits-cnn", *args, "-o", out), code, needle, out_dir=out)


def test_bad_samples_are_one_line_and_write_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out" / "b"
    assert_clean_failure(edgecc_cli("compile", TINY, "--validate-with", tmp_path / "empty", "-o", out), 4,
                         "holds no .npy, .npz or test_data_set_* samples", out_dir=out)
    np.save(tmp_path / "wrong.npy", np.zeros((4, 1, 9, 9), np.float32))
    assert_clean_failure(edgecc_cli("compile", TINY, "--validate-with", tmp_path / "wrong.npy", "-o", out), 4,
                         "samples for input 'input_0' have shape [4, 1, 9, 9]; the model takes [1, 1, 8, 8]",
                         out_dir=out)
    np.save(tmp_path / "ints.npy", np.zeros((4, 1, 8, 8), np.int64))
    assert_clean_failure(edgecc_cli("compile", TINY, "--validate-with", tmp_path / "ints.npy", "-o", out), 4,
                         "input 'input_0' are int64; the model takes float32", out_dir=out)


@pytest.mark.parametrize("target, backend", [pytest.param("host", "iree", marks=pytest.mark.slow), ("host", "tvm"),
                                             ("orangepi5-mali", "iree")])
def test_fp16_builds_validate_at_the_scaled_tolerance_with_digits_accuracy(tmp_path, target, backend):
    p = edgecc_cli("compile", "digits-cnn", "-t", target, "-b", backend, "--precision", "fp16", "--validate-with",
                   "digits", "-o", tmp_path / "b")
    assert p.returncode == 0, p.stderr
    m = manifest(tmp_path / "b")
    v, prec = m["validation"], m["precision"]
    assert v["precision"] == "fp16" and v["tolerance"] == {"atol": 1e-3, "rtol": 2e-2} and v["samples"] == 8
    assert 1e-5 < v["max_abs_error"], "an fp16 build with fp32's error was not demoted"
    acc = prec["accuracy"]
    assert acc["dataset"] == "digits" and acc["samples"] >= 24
    assert acc["fp16_top1"] >= acc["fp32_top1"] - 0.03 and acc["top1_agreement"] >= 0.95
    assert "fp16: top-1 on" in p.stdout
    if target == "orangepi5-mali":
        assert "lavapipe" in v["ran_on"] and "cap:Float16" in json.dumps(m["artifact"]["info"]["check_variant"])


@pytest.mark.slow
@pytest.mark.parametrize("target, backend, precision", [("orangepi5-cpu", "iree", "fp16"), ("host", "iree", "bf16"),
                                                        ("orangepi5-cpu", "tvm", "fp16")])
def test_reduced_precision_on_qemu_and_bf16(tmp_path, target, backend, precision):
    p = edgecc_cli("compile", "digits-cnn", "-t", target, "-b", backend, "--precision", precision,
                   "--validate-with", "digits", "-o", tmp_path / "b")
    assert p.returncode == 0, p.stderr
    m = manifest(tmp_path / "b")
    assert m["validation"]["precision"] == precision and m["validation"]["max_abs_error"] > 1e-5
    acc = m["precision"]["accuracy"]
    assert acc[f"{precision}_top1"] >= acc["fp32_top1"] - 0.03


@pytest.mark.slow
def test_build_validates_every_cell_on_the_given_samples(tmp_path):
    p = edgecc_cli("build", "--models", "digits-cnn", "--targets", "host", "--backends", "tvm", "--validate-with",
                   "digits", "--validate-samples", "5", "-o", tmp_path / "m")
    assert p.returncode == 0, p.stderr
    assert manifest(tmp_path / "m" / "digits-cnn-host-tvm")["validation"]["samples"] == 5


def test_tensorrt_precision_goes_into_the_engine_plan_and_no_accuracy_is_claimed(tmp_path):
    p = edgecc_cli("compile", "digits-cnn", "-t", "jetson-orin", "-b", "tensorrt", "--precision", "fp16",
                   "-o", tmp_path / "b")
    assert p.returncode == 0, p.stderr
    m = manifest(tmp_path / "b")
    assert m["artifact"]["info"]["plan"]["precision"] == "fp16" and "--fp16" in m["artifact"]["info"]["plan"][
        "trtexec_build_flags"]
    assert m["precision"]["accuracy"].startswith("not run: the fp16 engine is built on the device")
    assert_clean_failure(edgecc_cli("compile", "digits-cnn", "-t", "jetson-orin", "-b", "tensorrt", "--precision",
                                    "fp16", "--option", "precision=fp32", "-o", tmp_path / "x" / "b"), 3,
                         "disagree", out_dir=tmp_path / "x" / "b")
