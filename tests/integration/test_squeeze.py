"""--squeeze end to end with the real compilers and QEMU. digits-cnn pruned by Torch-Pruning, distilled and
quantized by the existing int8 stage runs on a Cortex-M4 in qemu-system-arm (its accuracy measured there on the 360
held-out images), its per-kernel instruction counts add up to the whole inference's; pruned / factorized models
compile and validate on host TVM, IREE and the TensorRT ONNX artifact; bad pipelines fail in one line and write
nothing. The full Done-when numbers (30 epochs, host IREE and the M4) are the slow test at the end."""

import json

import numpy as np
import pytest

import edgecc
from edgecc.compiler.cli.main import main
from tests.conftest import DATA, edgecc_cli, require_cortex_m_tools

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
pytest.importorskip("sklearn")


def _fails(capsys, argv, code, *needles):
    """main() (the real CLI in this process) exits with `code` and one `edgecc: error:` line holding needles."""
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == code and len(err) == 1, (rc, err)
    assert err[0].startswith("edgecc: error: ") and all(n in err[0] for n in needles), err[0]


@pytest.mark.parametrize("extra,code,needles", [
    (["--squeeze", "prune=1.5"], 2, ["prune ratio=1.5 is out of range"]),
    (["--squeeze", "prune=0.5,shrink"], 2, ["unknown squeeze stage 'shrink'", "prune, lowrank, distill, int8"]),
    (["--squeeze", "int8,prune=0.5", "--squeeze-data", "digits"], 2, ["int8 must be the last squeeze stage"]),
    (["--squeeze", "distill,int8", "--squeeze-data", "digits"], 2, ["put it after prune or lowrank"]),
    (["--squeeze", "prune=0.5,distill"], 4, ["distill needs data", "--squeeze-data"]),
    (["--squeeze", "prune=0.5,int8", "--quantize", "int8"], 2, ["--quantize and --squeeze together"]),
    (["--squeeze-data", "digits"], 2, ["--squeeze-data is only used with --squeeze"]),
    (["--squeeze", "prune=0.5,distill", "--squeeze-data", "/nowhere/data"], 4, ["/nowhere/data does not exist"]),
])
def test_bad_pipelines_fail_in_one_line_and_write_nothing(capsys, tmp_path, extra, code, needles):
    out = tmp_path / "out" / "b"
    _fails(capsys, ["compile", "digits-cnn", "-o", str(out), *extra], code, *needles)
    assert not out.parent.exists()


def test_model_torch_pruning_cannot_trace_is_named(capsys, tmp_path):
    out = tmp_path / "out" / "b"
    _fails(capsys, ["compile", f"{DATA / 'squeeze_factory.py'}:split_channels", "--squeeze", "prune=0.5",
                    "-o", str(out)], 4, "Torch-Pruning did not trace", "in layer mix")
    assert not out.parent.exists()


def test_onnx_model_cannot_be_squeezed(capsys, tmp_path):
    out = tmp_path / "out" / "b"
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    onnx_file = tmp_path / "m.onnx"
    w = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(onnx_file))
    _fails(capsys, ["compile", str(onnx_file), "--squeeze", "prune=0.5", "-o", str(out)], 4,
           "--squeeze needs a PyTorch nn.Module")
    assert not out.parent.exists()


@pytest.fixture(scope="module")
def m4_bundle(tmp_path_factory):
    require_cortex_m_tools()
    out = tmp_path_factory.mktemp("sq") / "m4"
    r = edgecc_cli("compile", "digits-cnn", "-t", "cortex-m4", "--squeeze", "prune=0.5,distill:epochs=4,int8",
                   "--squeeze-data", "digits", "-o", out, "--profile")
    assert r.returncode == 0, r.stderr
    return out, r.stdout


def test_pruned_distilled_int8_digits_on_the_m4(m4_bundle):
    out, stdout = m4_bundle
    m = json.loads((out / "manifest.json").read_text())
    sq = m["squeeze"]
    assert [s["stage"] for s in sq["stages"]] == ["original", "prune", "distill", "int8"]
    orig, pruned, dist, q = sq["stages"]
    assert pruned["macs"] * 2 <= orig["macs"] and q["weight_bytes"] * 6 <= orig["weight_bytes"]
    assert pruned["arena_bytes"] < orig["arena_bytes"]
    art = sq["artifact"]
    assert art["ran_on"] == "qemu-system-arm -M mps2-an386" and art["samples"] == 360
    assert art["top1"] > 0.9 and art["top1"] > pruned["top1"]  # distilled back from the pruned model's accuracy
    assert m["quantization"]["accuracy"]["int8_artifact"] == art["top1"]
    assert m["validation"]["status"] == "passed"
    assert "| distill |" in stdout and "x fewer MACs" in stdout


def test_profile_counts_add_up_to_the_inference(m4_bundle):
    out, stdout = m4_bundle
    bundle = edgecc.Bundle.load(out)
    whole = min(bundle.runner().time(bundle.reference_inputs(), warmup=0, iters=1)["samples"])
    r = edgecc_cli("profile", out, "--json", out.parent / "profile.json")
    assert r.returncode == 0, r.stderr
    p = json.loads((out.parent / "profile.json").read_text())
    kernels = p["measured"]["kernels"]
    assert [k["kernel"] for k in kernels][:2] == ["edgecc_q8_quantize", "edgecc_q8_conv"]
    total = sum(k["instructions"] for k in kernels)
    assert p["measured"]["unit"] == "instructions" and p["measured"]["total"] == total
    assert abs(total - whole) / whole < 0.02, (total, whole)  # the timer reads cost a few instructions a kernel
    assert p["measured_matches_layers"] is True
    convs = {r["layer"]: r for r in p["layers"] if r["kind"] == "Conv2d"}
    assert convs["features.2"]["measured_share"] > convs["features.0"]["measured_share"]  # 16x the MACs
    assert "features.2" in r.stdout and "costliest layer: features.2" in r.stdout
    assert "measured %" in stdout  # --profile on compile printed the same table


@pytest.mark.parametrize("backend,target,spec", [
    ("tvm", "host", "prune=0.5,lowrank=0.9"),
    ("iree", "host", "lowrank=0.9"),
    ("tensorrt", "jetson-orin", "prune=0.25"),
])
def test_squeezed_fp32_models_compile_on_every_backend(tmp_path, backend, target, spec):
    b = edgecc.compile("digits-cnn", target=target, backend=backend, output=tmp_path / backend, squeeze=spec)
    m = b.manifest
    assert m["validation"]["status"] == "passed", m["validation"]
    rows = m["squeeze"]["stages"]
    assert rows[-1]["macs"] < rows[0]["macs"]
    # the artifact computes the squeezed model: its held-out outputs are the squeezed model's, not the original's
    assert m["squeeze"]["artifact"]["samples"] == 360
    assert m["squeeze"]["artifact"]["max_abs_error_vs_original"] == pytest.approx(
        rows[-1]["max_abs_error_vs_original"], rel=1e-3, abs=1e-3)
    if backend == "tvm":  # TVM's per-kernel timing: every conv/linear kernel timed, paired with its layer
        from edgecc.compiler.squeeze.profile import profile_bundle

        p = profile_bundle(b)
        assert p["measured"]["unit"] == "us" and p["measured_matches_layers"] is True, p["measured"]
        assert all(k["us"] > 0 for k in p["measured"]["kernels"])
        assert sum(k["share"] for k in p["measured"]["kernels"]) == pytest.approx(1, abs=0.01)
        assert all("measured_share" in r for r in p["layers"] if r["macs"])


def test_fp32_firmware_profile_pairs_tvm_kernels_with_layers(tmp_path):
    require_cortex_m_tools()
    from edgecc.compiler.squeeze.profile import profile_bundle

    b = edgecc.compile("resnet8", target="cortex-m4", output=tmp_path / "r8", squeeze="prune=0.5")
    p = profile_bundle(b)
    assert p["measured_matches_layers"] is True
    share = {r["layer"]: r["measured_share"] for r in p["layers"] if r["macs"]}
    # TVM runs each shortcut conv before its block's second conv; paired by weight size, the 1x1 shortcut
    # (32k MACs) is cheap and the 3x3 conv (590k MACs) is not
    assert share["stages.1.shortcut.0"] < 0.05 < share["stages.1.conv2.0"]
    whole = min(b.runner().time(b.reference_inputs(), warmup=0, iters=1)["samples"])
    assert abs(p["measured"]["total"] - whole) / whole < 0.02


def test_iree_profile_times_every_dispatch_of_the_bundle(tmp_path):
    """IREE's HAL profiling in iree-benchmark-module: per-dispatch times of the bundle's own module, paired with the
    model's conv / linear layers, adding up to about one inference."""
    from edgecc.compiler.squeeze.profile import profile_bundle

    b = edgecc.compile("digits-cnn", target="host", backend="iree", output=tmp_path / "b", validate=False)
    p = profile_bundle(b)
    k = p["measured"]["kernels"]
    assert p["measured_matches_layers"] is True and abs(sum(x["share"] for x in k) - 1) < 0.01
    assert sum("conv" in x["kernel"] for x in k) == 3 and all(x["calls"] >= p["measured"]["inferences"] // 2 for x in k)
    # the dispatches' time is part of an inference's wall clock (which adds the runtime's and Python's per-call cost)
    whole = float(np.median(b.runner().time(b.reference_inputs(), warmup=20, iters=200)["samples"])) * 1e3  # us
    assert 0 < p["measured"]["total"] < 3 * whole, (p["measured"]["total"], whole)


@pytest.mark.slow
@pytest.mark.parametrize("target,backend", [("host", "iree"), ("cortex-m4", "micro")])
def test_done_when_prune_distill_int8_keeps_accuracy(tmp_path, target, backend):
    if backend == "micro":
        require_cortex_m_tools()
    b = edgecc.compile("digits-cnn", target=target, backend=backend, output=tmp_path / backend,
                       squeeze="prune=0.5,distill,int8", squeeze_data="digits")
    sq = b.manifest["squeeze"]
    orig, last, art = sq["stages"][0], sq["stages"][-1], sq["artifact"]
    assert art["samples"] == 360 and orig["top1"] - art["top1"] <= 0.01, (orig["top1"], art["top1"])
    assert orig["macs"] >= 2 * last["macs"] and orig["weight_bytes"] >= 6 * last["weight_bytes"]
    if backend == "micro":
        assert orig["weight_bytes"] >= 6 * b.manifest["artifact"]["info"]["memory"]["weights_bytes"]
    assert np.isfinite(art["max_abs_error_vs_original"])
