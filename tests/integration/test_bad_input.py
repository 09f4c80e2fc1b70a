"""Every bad input: one line on stderr, a non-zero exit code, no traceback, no bundle (or temp folder) left."""

import json

import numpy as np
import pytest

from tests.conftest import DATA, assert_clean_failure, edgecc_cli


@pytest.fixture
def out(tmp_path):
    return tmp_path / "build" / "bundle"


@pytest.mark.parametrize("args, code, needles", [
    (["--target", "orangepi9"], 3, ["unknown target 'orangepi9'", "valid targets:", "host"]),
    (["--backend", "onnxruntime"], 3, ["unknown backend 'onnxruntime'", "iree, tvm"]),
    (["--backend", "micro"], 3, ["backend 'micro' does not serve target 'host'", "use one of: iree, tvm"]),
])
def test_bad_target_or_backend(args, code, needles, out):
    assert_clean_failure(edgecc_cli("compile", "resnet8", *args, "-o", out), code, *needles, out_dir=out)


def test_refused_backend_in_target_file(tmp_path, out):
    text = (DATA.parent.parent / "targets" / "host.toml").read_text()
    text = text.replace('name = "host"', 'name = "nohost"').replace(
        "[backends.tvm]", '[backends.tvm]\nrefused = "this board has no LLVM CPU backend"')
    (tmp_path / "nohost.toml").write_text(text)
    r = edgecc_cli("compile", "resnet8", "--target", tmp_path / "nohost.toml", "-b", "tvm", "-o", out)
    assert_clean_failure(r, 3, "refused for target 'nohost': this board has no LLVM CPU backend", out_dir=out)


@pytest.mark.parametrize("model, code, needles", [
    ("nosuchmodel", 4, ["unknown model 'nosuchmodel'", "resnet8", ".onnx"]),
    ("missing/model.onnx", 4, ["model file missing/model.onnx does not exist"]),
    ("missing.py:build", 4, ["model file missing.py does not exist"]),
    (f"{DATA}/tiny_factory.py:nope", 4, ["has no function 'nope'"]),
    (f"{DATA}/tiny_factory.py:broken", 4, ["factory", "raised RuntimeError: weights file not found"]),
    (f"{DATA}/tiny_factory.py:not_a_pair", 4, ["must return (module, example_inputs)"]),
    ("model.pt", 4, ["is a pickle", "does not unpickle", ".pt2", "--allow-pickle"]),
])
def test_bad_model_source(model, code, needles, out):
    assert_clean_failure(edgecc_cli("compile", model, "-o", out), code, *needles, out_dir=out)


def test_file_that_is_not_a_model(tmp_path, out):
    (tmp_path / "fake.onnx").write_text("this is not protobuf")
    (tmp_path / "fake.pt2").write_bytes(b"PK\x03\x04garbage")
    assert_clean_failure(edgecc_cli("compile", tmp_path / "fake.onnx", "-o", out), 4, "is not a valid ONNX model",
                         out_dir=out)
    assert_clean_failure(edgecc_cli("compile", tmp_path / "fake.pt2", "-o", out), 4,
                         "is not a readable .pt2 ExportedProgram", out_dir=out)
    (tmp_path / "notes.txt").write_text("hello")
    assert_clean_failure(edgecc_cli("compile", tmp_path / "notes.txt", "-o", out), 4, "not a model source")


def test_pickle_is_never_loaded_by_default(tmp_path, out):
    marker = tmp_path / "pwned"
    # A pickle whose loading would run code: it must not run.
    import pickle

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps(Evil()))
    assert_clean_failure(edgecc_cli("compile", tmp_path / "evil.pth", "-o", out), 4, "is a pickle", out_dir=out)
    assert not marker.exists()


def test_input_shape_the_model_rejects(out):
    r = edgecc_cli("compile", "cifar-cnn", "--input-shape", "1x3x20x20", "-o", out)
    assert_clean_failure(r, 4, "model cifar-cnn fails on its example inputs [[1, 3, 20, 20]]", out_dir=out)


def test_bad_input_shape_syntax(out):
    r = edgecc_cli("compile", "cifar-cnn", "--input-shape", "1xthree", "-o", out)
    assert r.returncode == 2 and "bad shape '1xthree'" in r.stderr


@pytest.mark.parametrize("backend, model, op, other", [
    ("iree", "fmod", "aten.fmod.Scalar", "try --backend tvm"),
    ("tvm", "logcumsumexp", "logcumsumexp", "try --backend iree"),
])
def test_unsupported_op_names_op_and_suggests_other_backend(backend, model, op, other, out, tmp_path):
    r = edgecc_cli("compile", f"{DATA}/unsupported_ops.py:{model}", "-b", backend, "-o", out)
    assert_clean_failure(r, 5, f"backend '{backend}' cannot lower op {op}", other, out_dir=out)
    # ... and the suggestion is true: the other backend compiles and validates the same model
    alt = "tvm" if backend == "iree" else "iree"
    ok = edgecc_cli("compile", f"{DATA}/unsupported_ops.py:{model}", "-b", alt, "-o", tmp_path / "alt")
    assert ok.returncode == 0 and "validated vs pytorch" in ok.stdout, ok.stderr


def test_wrong_input_shape_and_dtype_at_run(resnet8_bundles, tmp_path):
    b = resnet8_bundles["iree"]
    np.save(tmp_path / "wrong.npy", np.zeros((1, 3, 64, 64), np.float32))
    assert_clean_failure(edgecc_cli("run", b.path, "--input", tmp_path / "wrong.npy"), 4,
                         "input 'input_0' has shape [1, 3, 64, 64], the model was compiled for [1, 3, 32, 32]")
    np.save(tmp_path / "int.npy", np.zeros((1, 3, 32, 32), np.int32))
    assert_clean_failure(edgecc_cli("run", b.path, "--input", tmp_path / "int.npy"), 4, "dtype int32")
    assert_clean_failure(edgecc_cli("run", b.path, "--input", tmp_path / "none.npy"), 4, "does not exist")
    assert_clean_failure(edgecc_cli("run", b.path, "-i", tmp_path / "wrong.npy", "-i", tmp_path / "wrong.npy"), 4,
                         "model takes 1 input(s)")


@pytest.mark.parametrize("backend", ["iree", "tvm"])
def test_tampered_and_truncated_bundles(resnet8_bundles, backend, tmp_path):
    import shutil

    for damage, needle in [("truncate", "truncated?"), ("tamper", "does not match its sha256"),
                           ("manifest", "not valid JSON")]:
        b = tmp_path / f"{backend}-{damage}"
        shutil.copytree(resnet8_bundles[backend].path, b)
        entry = b / json.loads((b / "manifest.json").read_text())["artifact"]["entry"]
        if damage == "truncate":
            entry.write_bytes(entry.read_bytes()[:1000])
        elif damage == "tamper":
            data = bytearray(entry.read_bytes())
            data[len(data) // 2] ^= 0xFF
            entry.write_bytes(bytes(data))
        else:
            (b / "manifest.json").write_text((b / "manifest.json").read_text()[:-50])
        for cmd in ("verify", "run", "bench"):
            assert_clean_failure(edgecc_cli(cmd, b), 8, needle)


def test_missing_bundle():
    assert_clean_failure(edgecc_cli("run", "no/such/bundle"), 8, "bundle no/such/bundle does not exist")


def test_debug_shows_traceback(out):
    r = edgecc_cli("--debug", "compile", "resnet8", "--target", "nope", "-o", out)
    assert r.returncode != 0 and "Traceback" in r.stderr
