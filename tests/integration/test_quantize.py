"""--quantize int8 end to end with the real compilers and QEMU: digits-cnn (trained on real data) keeps its
accuracy on the 360 held-out images on host IREE, host TVM and a Cortex-M4 in qemu-system-arm; IREE runs integer
convolutions; int8 resnet8 / ds-cnn on the M4 are >= 3x smaller and run fewer instructions than fp32."""

import json
import re
import shutil

import numpy as np
import pytest

import edgecc
from edgecc.tools import run_tool
from tests.conftest import edgecc_cli, has_avx512_vnni

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

CASES = [("host", "iree", "host"), ("host", "tvm", "host"), ("cortex-m4", "micro", "qemu-system-arm -M mps2-an386")]


@pytest.fixture(scope="module")
def digits_int8(tmp_path_factory):
    root = tmp_path_factory.mktemp("q8")
    out = {}
    for target, backend, _ in CASES:
        if backend == "micro" and not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")):
            continue
        out[backend] = edgecc.compile("digits-cnn", target=target, backend=backend, output=root / backend,
                                      quantize="int8", calibration="digits")
    return out


@pytest.mark.parametrize("target,backend,where", CASES)
def test_digits_int8_loses_at_most_one_point_of_accuracy(digits_int8, target, backend, where):
    if backend not in digits_int8:
        pytest.skip("needs gcc-arm-none-eabi and qemu-system-arm")
    m = digits_int8[backend].manifest
    assert m["validation"]["status"] == "passed"
    if backend == "micro" or (backend == "tvm" and has_avx512_vnni()):
        # integer kernels (micro's C, TVM's VNNI kernels): bit for bit against the TFLite-arithmetic reference
        assert m["validation"]["reference"] == "numpy int8 reference (TFLite arithmetic)"
        assert q_steps_integer(m) == 0
        assert m["validation"]["max_abs_error"] == 0 and m["validation"]["tolerance"]["int8_steps"] == 0
    else:
        assert m["validation"]["reference"] == "pytorch int8 QDQ reference"
    q = m["quantization"]
    acc = q["accuracy"]
    assert acc["samples"] == 360 and acc["int8_artifact_ran_on"] == where
    assert acc["fp32_pytorch"] >= 0.95
    assert acc["int8_artifact"] >= acc["fp32_pytorch"] - 0.01, acc
    assert q["max_error_steps_vs_int8_reference"] <= 4
    assert q["weights_bytes"]["int8"] * 3 < q["weights_bytes"]["fp32"]
    assert (digits_int8[backend].path / "model.int8.onnx").is_file()


def q_steps_integer(manifest) -> float:
    return manifest["quantization"]["max_error_steps_vs_integer_reference"]


def test_tvm_int8_qdq_option_keeps_the_float_qdq_graph(digits_int8, tmp_path):
    b = edgecc.compile("digits-cnn", target="host", backend="tvm", output=tmp_path / "qdq", quantize="int8",
                       calibration="digits", options={"int8": "qdq"})
    m = b.manifest
    assert m["validation"]["status"] == "passed" and m["validation"]["reference"] == "pytorch int8 QDQ reference"
    assert m["artifact"]["info"]["int8"].startswith("QDQ graph, float arithmetic")
    assert m["quantization"]["accuracy"]["int8_artifact"] >= m["quantization"]["accuracy"]["fp32_pytorch"] - 0.01
    if has_avx512_vnni():
        info = digits_int8["tvm"].manifest["artifact"]["info"]["int8"]
        assert info.startswith("integer kernels") and "vpdpbusd" in info


def test_micro_int8_kernels_are_bit_exact_with_tflite_arithmetic(digits_int8):
    if "micro" not in digits_int8:
        pytest.skip("needs gcc-arm-none-eabi and qemu-system-arm")
    m = digits_int8["micro"].manifest
    # the M4 firmware (SMLAD kernels) on all 360 held-out images == the numpy TFLite-arithmetic reference
    assert m["quantization"]["max_error_steps_vs_integer_reference"] == 0
    assert m["artifact"]["info"]["memory"]["weights_bytes"] < 20_000
    assert "edgecc_q8_conv" in (digits_int8["micro"].path / "model.c").read_text()


def test_iree_lowers_the_qdq_graph_to_integer_convolutions(digits_int8, tmp_path):
    bundle = digits_int8["iree"]
    run_tool(["iree-import-onnx", str(bundle.path / "model.int8.onnx"), "-o", str(tmp_path / "q.mlir")])
    run_tool(["iree-compile", str(tmp_path / "q.mlir"), "--iree-hal-target-backends=llvm-cpu",
              "--compile-to=global-optimization", "-o", str(tmp_path / "q.opt.mlir")])
    ir = (tmp_path / "q.opt.mlir").read_text()
    # the conv/matmul bodies multiply sign-extended int8 operands and accumulate in i32
    assert len(re.findall(r"arith\.extsi %\w+ : i8 to i32", ir)) >= 8
    assert ir.count("arith.muli") >= 4 and "tensor<16x8x8xi32>" in ir


def test_cli_int8_compile_prints_accuracy(tmp_path):
    r = edgecc_cli("compile", "digits-cnn", "--target", "host", "--backend", "iree", "--quantize", "int8",
                   "--calibration", "digits", "-o", tmp_path / "b")
    assert r.returncode == 0, r.stderr
    assert "int8: top-1 on 360 held-out digits images" in r.stdout
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["quantization"]["accuracy"]["samples"] == 360


@pytest.mark.parametrize("args,message", [
    (["--quantize", "int8"], "--quantize int8 needs calibration samples"),
    (["--quantize", "int8", "--calibration", "imagenet"], "unknown dataset 'imagenet'"),
    (["--calibration", "digits"], "--calibration is only used with --quantize int8"),
])
def test_bad_quantization_input_is_one_line(tmp_path, args, message):
    r = edgecc_cli("compile", "digits-cnn", "--target", "host", "-o", tmp_path / "b", *args)
    assert r.returncode == 4
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "b").exists()


def test_calibration_folder_with_wrong_shapes_is_refused(tmp_path):
    (tmp_path / "cal").mkdir()
    np.save(tmp_path / "cal" / "x.npy", np.zeros((4, 3, 8, 8), np.float32))
    r = edgecc_cli("compile", "digits-cnn", "--target", "host", "-o", tmp_path / "b", "--quantize", "int8",
                   "--calibration", tmp_path / "cal")
    assert r.returncode == 4 and "samples of shape [3, 8, 8]; the model takes [1, 8, 8]" in r.stderr, r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("model", ["resnet8", "ds-cnn"])
def test_int8_on_cortex_m4_is_3x_smaller_and_runs_fewer_instructions(model, tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("needs gcc-arm-none-eabi and qemu-system-arm")
    from edgecc.models import get_model

    spec = get_model(model)
    (tmp_path / "cal").mkdir()
    gen = torch.Generator().manual_seed(3)
    np.save(tmp_path / "cal" / "samples.npy", torch.randn(64, *spec.input_shapes[0][1:], generator=gen).numpy())
    b = {}
    for q in ("fp32", "int8"):
        kw = {"quantize": "int8", "calibration": str(tmp_path / "cal")} if q == "int8" else {}
        b[q] = edgecc.compile(model, target="cortex-m4", backend="micro", output=tmp_path / q, **kw)
    mem = {q: b[q].manifest["artifact"]["info"]["memory"] for q in b}
    instr = {q: min(b[q].runner().time(b[q].reference_inputs(), warmup=0, iters=1)["samples"]) for q in b}
    assert mem["int8"]["weights_bytes"] * 3 <= mem["fp32"]["weights_bytes"], mem
    assert mem["int8"]["arena_bytes"] * 3 <= mem["fp32"]["arena_bytes"], mem
    assert instr["int8"] < instr["fp32"], instr


@pytest.mark.slow
def test_a_deep_int8_network_on_cortex_m_is_bit_exact_with_the_integer_reference(tmp_path):
    """vww-mobilenetv1's 27 requantizations: the float QDQ model drifts 9 output steps from integer arithmetic, the
    firmware does not drift from run_int8 at all."""
    import numpy as np

    rng = np.random.default_rng(0)
    (tmp_path / "cal").mkdir()
    np.save(tmp_path / "cal" / "s.npy", rng.standard_normal((16, 3, 96, 96)).astype(np.float32))
    b = edgecc.compile("vww-mobilenetv1", target="cortex-m4", output=tmp_path / "b", quantize="int8",
                       calibration=str(tmp_path / "cal"))
    v = b.manifest["validation"]
    assert v["status"] == "passed" and v["max_abs_error"] == 0 and v["tolerance"]["int8_steps"] == 0
