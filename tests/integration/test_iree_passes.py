"""The IREE backend's rewrites (compiler/backends/iree/passes/) in real builds: the rewritten module must compile
with the real iree-compile and give PyTorch's numbers; bad option values fail in one line."""

import json

import pytest

from tests.conftest import DATA, edgecc_cli


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


@pytest.mark.slow
def test_space_to_depth_compiles_and_matches_pytorch(tmp_path):
    """7x7/2 on RGB and 5x5/3 on one channel, odd image sizes (input padded and sliced), with conv data tiling on;
    a wrong phase order fails this (checked by mutating the filter permutation)."""
    for graph in ("0", "1"):  # the strided 1x1 follows a 3x3 conv, so the channels-last graph keeps it a conv
        out = tmp_path / f"stem-{graph}"
        p = edgecc_cli("compile", f"{DATA / 'stem_factory.py'}:build", "--target", "host", "--backend", "iree",
                       "--option", "conv_data_tiling=1", "--option", "space_to_depth=1", "--option",
                       f"nhwc_graph={graph}", "-o", out)
        assert p.returncode == 0, p.stderr
        m = json.loads((out / "manifest.json").read_text())
        assert m["artifact"]["info"]["conv_data_tiling"] == {"enabled": True, "why": "conv_data_tiling=1",
                                                              "space_to_depth_convs": 2, "max_pools_as_slices": 1}
        assert m["artifact"]["info"]["nhwc_rewrites"] == 2  # the strided 1x1 and the max pool
        v = m["validation"]
        assert v["passed"] and v["max_abs_error"] < 1e-5 and v["max_rel_error"] < 1e-4


def test_few_channel_im2col_compiles_and_matches_pytorch(tmp_path):
    """The 5x5/3 one-channel conv of the stem model (padded, odd sizes) as im2col + matmul with data tiling off; the
    RGB 7x7/2 stays a conv. With the option off, nothing is rewritten."""
    for flag, expected in (("1", 1), ("0", None)):
        out = tmp_path / f"i2c-{flag}"
        p = edgecc_cli("compile", f"{DATA / 'stem_factory.py'}:build", "--target", "host", "--backend", "iree",
                       "--option", "conv_data_tiling=0", "--option", f"few_channel_im2col={flag}", "-o", out)
        assert p.returncode == 0, p.stderr
        m = json.loads((out / "manifest.json").read_text())
        assert m["artifact"]["info"]["conv_data_tiling"].get("im2col_convs") == expected
        v = m["validation"]
        assert v["passed"] and v["max_abs_error"] < 1e-5 and v["max_rel_error"] < 1e-4


def test_conv_data_tiling_auto_and_bad_values(tmp_path):
    # ds-cnn is depthwise/pointwise heavy (12% dense k>1 MACs): auto leaves data tiling off
    out = tmp_path / "auto"
    p = edgecc_cli("compile", "ds-cnn", "--target", "host", "--backend", "iree", "-o", out)
    assert p.returncode == 0, p.stderr
    m = json.loads((out / "manifest.json").read_text())
    tiling = m["artifact"]["info"]["conv_data_tiling"]
    assert tiling["enabled"] is False and tiling["why"].startswith("auto: dense k>1 convolutions do ")
    # its one-channel stem, with data tiling off, goes as im2col + matmul, and still matches PyTorch
    assert tiling["im2col_convs"] == 1 and m["validation"]["passed"]
    for bad in ("conv_data_tiling=sometimes", "space_to_depth=2", "max_pool_slices=x", "conv_vector_n=48",
                "conv_data_tiling_min_channels=-1", "few_channel_im2col=2"):
        p = edgecc_cli("compile", f"{DATA / 'layout_factory.py'}:build", "--target", "host", "--backend", "iree",
                       "--option", bad, "-o", tmp_path / "x")
        assert p.returncode != 0 and bad in p.stderr and not (tmp_path / "x").exists()
        assert len(p.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_channels_last_graph_compiles_and_matches_pytorch(tmp_path):
    """MobileNetV2's last stage: 1x1 convolutions as matmuls (the 960-long one data-tiled with ukernels), BatchNorm
    folded, the depthwise conv NHWC; and the same model with the graph rewrite off."""
    for flag in ("1", "0"):
        out = tmp_path / f"graph-{flag}"
        p = edgecc_cli("compile", f"{DATA / 'pointwise_factory.py'}:build", "--target", "host", "--backend", "iree",
                       "--option", f"nhwc_graph={flag}", "-o", out)
        assert p.returncode == 0, p.stderr
        m = json.loads((out / "manifest.json").read_text())
        info = m["artifact"]["info"]
        if flag == "1":
            assert info["nhwc_graph"] == {"matmuls": 2, "convs": 1, "pools": 0, "folded_batchnorms": 3,
                                          "nchw_fallbacks": 0}
            assert info["matmul_data_tiling_hints"] == 1
            assert info["matmul_vector_tiles"] == {"vector_n": 32, "widened": 1}  # the 49x960x16 expansion
            assert "--iree-opt-data-tiling" in m["compile"]["flags"]
        else:
            assert "nhwc_graph" not in info and "matmul_data_tiling_hints" not in info
            assert "matmul_vector_tiles" not in info  # no plain matmul left but the 1-row classifier
        v = m["validation"]
        assert v["passed"] and v["max_abs_error"] < 1e-4 and v["max_rel_error"] < 1e-3


def test_matmul_vector_n_bad_value(tmp_path):
    for value in ("x", "12", "-32"):
        p = edgecc_cli("compile", f"{DATA / 'pointwise_factory.py'}:build", "--target", "host", "--backend", "iree",
                       "--option", f"matmul_vector_n={value}", "-o", tmp_path / "x")
        assert p.returncode != 0 and f"matmul_vector_n={value}" in p.stderr and not (tmp_path / "x").exists()
        assert len(p.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_direct_convs_compile_and_match_pytorch(tmp_path):
    """With data tiling on, the few-channel convolutions stay direct (hints on the others); with it off, the direct
    convolutions get the wide vector tile (resnet8's 32- and 64-channel convs), built from the rewritten tile
    configurations."""
    out = tmp_path / "stem"
    p = edgecc_cli("compile", f"{DATA / 'stem_factory.py'}:build", "--target", "host", "--backend", "iree",
                   "--option", "conv_data_tiling=1", "-o", out)
    assert p.returncode == 0, p.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["artifact"]["info"]["conv_data_tiling"]["direct_few_channel_convs"] == 2
    assert "space_to_depth_convs" not in m["artifact"]["info"]["conv_data_tiling"]
    assert m["validation"]["passed"] and m["validation"]["max_abs_error"] < 1e-5
    out = tmp_path / "r8"
    p = edgecc_cli("compile", "resnet8", "--target", "host", "--backend", "iree", "--option", "conv_data_tiling=0",
                   "-o", out)
    assert p.returncode == 0, p.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["artifact"]["info"]["conv_vector_tiles"]["widened"] >= 2
    assert any("--compile-from=executable-configurations" in c for c in m["compile"]["calls"])
    assert m["validation"]["passed"] and m["validation"]["max_abs_error"] < 1e-4
