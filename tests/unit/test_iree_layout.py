"""The NHWC rewrite of depthwise convolutions and pooling (compiler/backends/iree_layout.py): the rewritten
module must compile with the real iree-compile and give PyTorch's numbers."""

import json

from edgecc.compiler.backends.iree_layout import rewrite_text
from tests.conftest import DATA, edgecc_cli

DW = ("    %13 = linalg.depthwise_conv_2d_nchw_chw {dilations = dense<1> : vector<2xi64>, strides = dense<2> : "
      "vector<2xi64>} ins(%padded_3, %collapsed : tensor<1x96x114x114xf32>, tensor<96x3x3xf32>) "
      "outs(%12 : tensor<1x96x56x56xf32>) -> tensor<1x96x56x56xf32>")


def test_rewrite_text_shapes_and_untouched_lines():
    text, n = rewrite_text(f"  %a = arith.constant 0.0 : f32\n{DW}\n")
    assert n == 1
    assert "  %a = arith.constant 0.0 : f32" in text
    assert "linalg.depthwise_conv_2d_nhwc_hwc {dilations = dense<1> : vector<2xi64>, strides = dense<2>" in text
    assert "tensor<1x114x114x96xf32>, tensor<3x3x96xf32>) outs(" in text
    assert "%13 = linalg.transpose ins(" in text and "permutation = [0, 3, 1, 2]" in text
    # a form the rewrite does not know (another result arity, an attribute it does not parse) stays as it was
    odd = DW.replace("-> tensor<1x96x56x56xf32>", "")
    assert rewrite_text(odd + "\n") == (odd + "\n", 0)


def test_rewritten_module_compiles_and_matches_pytorch(tmp_path):
    for flag, expected in (("1", 4), ("0", None)):
        out = tmp_path / f"layout-{flag}"
        p = edgecc_cli("compile", f"{DATA / 'layout_factory.py'}:build", "--target", "host", "--backend", "iree",
                       "--option", f"nhwc_rewrite={flag}", "-o", out)
        assert p.returncode == 0, p.stderr
        m = json.loads((out / "manifest.json").read_text())
        assert m["artifact"]["info"].get("nhwc_rewrites") == expected  # 2 depthwise, max pool, avg pool
        assert m["validation"]["passed"] and m["validation"]["max_abs_error"] < 1e-4


def test_bad_option_value(tmp_path):
    p = edgecc_cli("compile", f"{DATA / 'layout_factory.py'}:build", "--target", "host", "--backend", "iree",
                   "--option", "nhwc_rewrite=maybe", "-o", tmp_path / "x")
    assert p.returncode != 0 and "nhwc_rewrite=maybe" in p.stderr and not (tmp_path / "x").exists()
