"""TensorRT op-support tables (data) and build plans: what is refused, with which message."""

import pytest

from edgecc.compiler.backends.tensorrt import check_onnx_ops, load_op_table, make_plan, trtexec_build_flags
from edgecc.errors import ModelError, TargetError, UnsupportedOpError
from edgecc.targets import get_target

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

IO = {"inputs": [{"name": "input_0", "shape": [1, 3, 224, 224], "dtype": "float32"}],
      "outputs": [{"name": "output_0", "shape": [1, 1000], "dtype": "float32"}]}


def _model(op_types, opset=13):
    nodes, prev = [], "x"
    for i, op in enumerate(op_types):
        nodes.append(helper.make_node(op, [prev, "x"] if op in ("Mod", "Add") else [prev], [f"t{i}"]))
        prev = f"t{i}"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, 4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("version, opset", [("8.2", 13), ("10.3", 20)])
def test_op_tables_are_consistent_data(version, opset):
    t = load_op_table(version)
    assert t["tensorrt"] == version and t["max_opset"] == opset and "onnx-tensorrt" in t["source"]
    sup, uns, unv = set(t["supported"]), set(t["unsupported"]), set(t["unverified"])
    assert not (sup & uns) and not (sup & unv) and not (uns & unv)
    assert {"Conv", "Relu", "Clip", "Add", "Gemm", "GlobalAveragePool", "Flatten", "MaxPool"} <= sup
    assert len(sup) > 100


def test_tables_differ_where_tensorrt_grew():
    t82, t103 = load_op_table("8.2"), load_op_table("10.3")
    assert "Mod" in t82["unsupported"] and "Mod" in t103["supported"]  # Mod arrived in TensorRT 8.5
    assert "Round" in t82["supported"]  # added in 8.2 EA (onnx-tensorrt changelog)
    assert "Xor" in t82["unsupported"] and "Xor" in t103["supported"]  # added in 8.4
    assert "STFT" in t103["unsupported"]  # added in 10.5, after the Orin's 10.3


def test_unsupported_op_names_op_and_version():
    with pytest.raises(UnsupportedOpError) as e:
        check_onnx_ops(_model(["Relu", "Mod"]), load_op_table("8.2"))
    assert e.value.op == "Mod" and "TensorRT 8.2" in str(e.value) and "marked unsupported" in str(e.value)
    with pytest.raises(UnsupportedOpError, match="op LayerNormalization .*TensorRT 8.2: not listed"):
        check_onnx_ops(_model(["LayerNormalization"], opset=13), load_op_table("8.2"))
    ok = check_onnx_ops(_model(["Relu", "Mod", "Relu"], opset=17), load_op_table("10.3"))
    assert ok["ops"] == {"Mod": 1, "Relu": 2} and ok["opset"] == 17


def test_opset_newer_than_tensorrt_reads_is_refused():
    with pytest.raises(ModelError, match="opset 17; TensorRT 8.2 reads opset <= 13"):
        check_onnx_ops(_model(["Relu"], opset=17), load_op_table("8.2"))


def test_unverified_op_is_accepted_with_a_note():
    r = check_onnx_ops(_model(["Dropout"]), load_op_table("8.2"))
    assert r["notes"] == ["Dropout: support in TensorRT 8.2 unverified (onnx-tensorrt tables disagree)"]


def test_unknown_tensorrt_version_names_the_file_to_add():
    with pytest.raises(TargetError, match="no ONNX op-support table for TensorRT 7.1 .*ops-7.1.toml"):
        load_op_table("7.1")


def _plan(target, **user):
    t = get_target(target)
    return make_plan(t, t.backend("tensorrt"), user, IO, _model(["Relu"]))


def test_plan_defaults_come_from_the_target():
    orin, nano = _plan("jetson-orin"), _plan("jetson-nano")
    assert orin["tensorrt"] == "10.3" and orin["precision"] == "fp32" and orin["workspace_mb"] == 1024
    assert orin["trtexec_build_flags"] == ["--memPoolSize=workspace:1024"]
    assert nano["tensorrt"] == "8.2" and nano["trtexec_build_flags"] == ["--workspace=512"]  # 8.2 has no memPoolSize
    assert nano["shapes"] == {"input_0": {"min": [1, 3, 224, 224], "opt": [1, 3, 224, 224], "max": [1, 3, 224, 224]}}
    assert orin["dla_core"] is None and orin["trtexec_run_flags"] == []


def test_plan_dla_fp16_and_dynamic_batch():
    p = _plan("jetson-orin", precision="fp16", dla_core="1", max_batch="4", workspace_mb="2048")
    assert p["trtexec_build_flags"] == ["--fp16", "--memPoolSize=workspace:2048", "--useDLACore=1",
                                        "--allowGPUFallback", "--minShapes=input_0:1x3x224x224",
                                        "--optShapes=input_0:1x3x224x224", "--maxShapes=input_0:4x3x224x224"]
    assert p["trtexec_run_flags"] == ["--useDLACore=1"] and p["shapes"]["input_0"]["max"][0] == 4


@pytest.mark.parametrize("target, user, message", [
    ("jetson-nano", {"dla_core": "0"}, "target 'jetson-nano' has no DLA"),
    ("cuda-sm80", {"dla_core": "0", "precision": "fp16"}, "target 'cuda-sm80' has no DLA"),
    ("jetson-orin", {"dla_core": "2", "precision": "fp16"}, "has DLA cores 0..1"),
    ("jetson-orin", {"dla_core": "0"}, "DLA runs fp16 or int8 only"),
    ("jetson-orin", {"precision": "fp64"}, "'fp64' is not one of fp32, fp16, int8"),
    ("jetson-orin", {"precision": "int8"}, "needs explicit Q/DQ"),
    ("jetson-orin", {"workspace_mb": "lots"}, "workspace_mb='lots' is not an integer"),
    ("jetson-orin", {"max_batch": "0"}, "max_batch=0 must be >= 1"),
    ("jetson-orin", {"batch": "2"}, "unknown tensorrt option.*allowed: precision, workspace_mb, dla_core, max_batch"),
])
def test_bad_options_are_refused(target, user, message):
    with pytest.raises(TargetError, match=message):
        _plan(target, **user)


def test_int8_accepted_with_qdq_nodes():
    t = get_target("jetson-orin")
    model = _model(["QuantizeLinear"])
    p = make_plan(t, t.backend("tensorrt"), {"precision": "int8"}, IO, model)
    assert p["trtexec_build_flags"][:2] == ["--int8", "--fp16"] and "Q/DQ" in p["int8_source"]


def test_workspace_flag_follows_the_tensorrt_version():
    assert trtexec_build_flags("8.2", "fp32", 64, None, {}, False) == ["--workspace=64"]
    assert trtexec_build_flags("8.4", "fp32", 64, None, {}, False) == ["--memPoolSize=workspace:64"]
