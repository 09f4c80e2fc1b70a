"""The IREE backend's text rewrites of the imported module (compiler/backends/iree/passes/), on module text alone:
no toolchain. tests/integration/test_iree_passes.py compiles the rewritten modules for real."""

from edgecc.compiler.backends.iree.passes import (
    few_channel_conv_count,
    few_channel_im2col_text,
    hint_conv_data_tiling_text,
    hint_matmul_data_tiling_text,
    matmul_tile_configs,
    max_pool_slices_text,
    plain_matmul_count,
    rewrite_text,
    space_to_depth_text,
    spatial_conv_share,
    widen_conv_tiles_text,
    widen_matmul_tiles_text,
)

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


STEM = ("    %2 = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<2> : vector<2xi64>} "
        "ins(%padded, %cst_104 : tensor<1x3x230x230xf32>, tensor<64x3x7x7xf32>) outs(%1 : tensor<1x64x112x112xf32>) "
        "-> tensor<1x64x112x112xf32>")


def _conv(x: str, w: str, y: str = "1x64x112x112") -> str:
    """STEM with other input, filter and output shapes."""
    return STEM.replace("1x3x230x230", x).replace("64x3x7x7", w).replace("1x64x112x112", y)


def test_space_to_depth_text_shapes():
    text, n = space_to_depth_text(STEM + "\n")
    assert n == 1
    # kernel 7 padded to 8, folded to 4x4 over 3*2*2 = 12 phase channels; the result keeps its name and type
    assert "high[0, 0, 1, 1]" in text
    assert ("%2 = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>} "
            "ins(") in text
    assert "tensor<1x12x115x115xf32>, tensor<64x12x4x4xf32>) outs(%1 : tensor<1x64x112x112xf32>)" in text
    # many input channels (s*s*C > 16), stride 1, or dilation: left alone
    for other in (STEM.replace("1x3x230x230", "1x8x230x230").replace("64x3x7x7", "64x8x7x7"),
                  STEM.replace("strides = dense<2>", "strides = dense<1>"),
                  STEM.replace("dilations = dense<1>", "dilations = dense<2>")):
        assert space_to_depth_text(other + "\n") == (other + "\n", 0)


def test_one_channel_conv_becomes_im2col_and_matmul():
    # DS-CNN's stem: 1 channel, 10x4 kernel, stride 2 over the padded 49x10 spectrogram -> 25x5 x 64
    ds = _conv("1x1x58x12", "64x1x10x4", "1x64x25x5")
    text, n = few_channel_im2col_text(ds + "\n")
    assert n == 1
    assert "affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d3, d1 * 2 + d4, d2 * 2 + d5)>" in text
    assert "tensor<1x25x5x1x10x4xf32> into tensor<125x40xf32>" in text  # the patches, one row per output pixel
    assert ("linalg.matmul ins(%edgecc_i2c0_pc, %edgecc_i2c0_wt : tensor<125x40xf32>, tensor<40x64xf32>) "
            "outs(%edgecc_i2c0_oc : tensor<125x64xf32>)") in text  # accumulating into the conv's own init (%1)
    assert "linalg.transpose ins(%1 : tensor<1x64x25x5xf32>)" in text
    assert "%2 = linalg.transpose ins(%edgecc_i2c0_me : tensor<1x25x5x64xf32>)" in text  # same name and type
    # three channels (an RGB stem), a 1x1 kernel or another element type: left alone
    for other in (STEM, ds.replace("64x1x10x4", "64x1x1x1"), ds.replace("xf32", "xf16")):
        assert few_channel_im2col_text(other + "\n") == (other + "\n", 0)


def test_strided_1x1_becomes_slice_and_stride_1():
    down = _conv("1x256x56x56", "512x256x1x1", "1x512x28x28")
    text, n = rewrite_text(down + "\n")
    assert n == 1
    assert "tensor.extract_slice %padded[0, 0, 0, 0] [1, 256, 28, 28] [1, 1, 2, 2]" in text
    assert ("%2 = linalg.conv_2d_nchw_fchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : "
            "vector<2xi64>} ins(%edgecc_sub0, %cst_104 : tensor<1x256x28x28xf32>, tensor<512x256x1x1xf32>)") in text
    stride1 = down.replace("strides = dense<2>", "strides = dense<1>")
    assert rewrite_text(stride1 + "\n") == (stride1 + "\n", 0)


def test_spatial_conv_share():
    dense = _conv("1x64x114x114", "64x64x3x3")
    assert spatial_conv_share(dense + "\n") == 1.0
    pointwise = dense.replace("64x64x3x3", "64x64x1x1")
    assert spatial_conv_share(pointwise + "\n") == 0.0
    assert spatial_conv_share(DW + "\n") == 0.0
    assert spatial_conv_share(dense + "\n" + pointwise + "\n") == 0.9  # 9 taps against 1
    # the channels-last graph's 1x1 convolutions are matmuls (112*112 x 64 x 64: the same MACs as `pointwise`)
    assert spatial_conv_share(dense + "\n" + MATMUL.replace("49x960", "12544x64").replace("960x160", "64x64")
                              .replace("49x160", "12544x64") + "\n") == 0.9
    assert spatial_conv_share("") == 0.0


POOL = ("    %edgecc_nhwc0_r = linalg.pooling_nhwc_max {dilations = dense<1> : vector<2xi64>, strides = dense<2> : "
        "vector<2xi64>} ins(%edgecc_nhwc0_x, %7 : tensor<1x114x114x64xf32>, tensor<3x3xf32>) "
        "outs(%edgecc_nhwc0_o : tensor<1x56x56x64xf32>) -> tensor<1x56x56x64xf32>")


def test_max_pool_slices_text():
    text, n = max_pool_slices_text(POOL + "\n")
    assert n == 1
    lines = text.splitlines()
    slices = [ln for ln in lines if "tensor.extract_slice" in ln]
    assert len(slices) == 9
    assert ("%edgecc_mps0_2_1 = tensor.extract_slice %edgecc_nhwc0_x[0, 2, 1, 0] [1, 56, 56, 64] [1, 2, 2, 1] : "
            "tensor<1x114x114x64xf32> to tensor<1x56x56x64xf32>") in text
    # into the pool's own init (its -inf fill): the max starts from it, then takes every tap
    assert "outs(%edgecc_nhwc0_o : tensor<1x56x56x64xf32>) {" in text
    assert "%edgecc_mps0_m0 = arith.maximumf %edgecc_mps0_a9, %edgecc_mps0_a0 : f32" in text
    assert "linalg.yield %edgecc_mps0_m8 : f32" in text and lines[-1].strip() == "} -> tensor<1x56x56x64xf32>"
    # integer pools (arith.maximumf is for floats) and dilated ones are left alone
    for other in (POOL.replace("xf32>", "xi8>"), POOL.replace("dilations = dense<1>", "dilations = dense<2>")):
        assert max_pool_slices_text(other + "\n") == (other + "\n", 0)


MATMUL = ("    %196 = linalg.matmul ins(%collapsed_231, %cst_19 : tensor<49x960xf32>, tensor<960x160xf32>) "
          "outs(%181 : tensor<49x160xf32>) -> tensor<49x160xf32>")


def test_matmul_data_tiling_hint_only_on_long_reductions():
    text, n = hint_matmul_data_tiling_text(MATMUL + "\n")
    assert n == 1 and text == MATMUL.replace("linalg.matmul ins(", "linalg.matmul {iree.opt.data_tiling} ins(") + "\n"
    short = MATMUL.replace("49x960", "3136x144").replace("960x160", "144x24").replace("49x160", "3136x24")
    assert hint_matmul_data_tiling_text(short + "\n") == (short + "\n", 0)
    assert hint_matmul_data_tiling_text(MATMUL + "\n", min_k=1024)[1] == 0
    # few rows and N a multiple of the wide vector tile: left to widen_matmul_tiles_text; N = 160 is, 40 is not
    assert hint_matmul_data_tiling_text(MATMUL + "\n", wide_n=32)[1] == 0
    assert hint_matmul_data_tiling_text(MATMUL.replace("x160x", "x40x").replace("x160xf32", "x40xf32") + "\n",
                                        wide_n=32)[1] == 1
    assert hint_matmul_data_tiling_text(MATMUL.replace("49x", "196x") + "\n", wide_n=32)[1] == 1


def _configured(name: str, m: int, n: int, k: int, tiles: str, extra: str = "") -> str:
    """One dispatch of `iree-compile --compile-to=executable-configurations` output with a matmul in it."""
    maps = ("affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, "
            "affine_map<(d0, d1, d2) -> (d0, d1)>")
    return (f"        func.func @{name}() attributes {{translation_info = #iree_codegen.translation_info<>}} {{\n"
            f"          %7 = linalg.generic {{indexing_maps = [{maps}], iterator_types = [\"parallel\", \"parallel\", "
            f"\"reduction\"]}} ins(%3, %4 : tensor<{m}x{k}xf32>, tensor<{k}x{n}xf32>) outs(%6 : tensor<{m}x{n}xf32>) "
            f"attrs =  {{lowering_config = #iree_cpu.lowering_config<{tiles}>}} {{\n{extra}          return\n")


def test_matmul_tile_configs_and_widening():
    wide_ok = "distribution = [49, 64, 0], vector_common_parallel = [7, 16, 0], vector_reduction = [0, 0, 16]"
    configs = matmul_tile_configs(
        _configured("d0_matmul_like_49x960x160_f32", 49, 960, 160, wide_ok)
        + _configured("d1_matmul_like_196x96x384_f32", 196, 96, 384, wide_ok.replace("[49, 64, 0]", "[28, 48, 0]"))
        + _configured("d2_matmul_like_1x64x512_f32", 1, 64, 512, wide_ok.replace("[7, 16, 0]", "[1, 16, 0]"))
        # fused with the packing of its output for a data-tiled consumer: not recorded
        + _configured("d3_matmul_like_784x128x64_f32", 784, 128, 64, wide_ok,
                      "          %9 = iree_linalg_ext.map_store %7 into %8 {\n"))
    assert configs == {(49, 960, 160): (49, 64, 7, 16, 16), (196, 96, 384): (28, 48, 7, 16, 16),
                       (1, 64, 512): (49, 64, 1, 16, 16)}

    def mm(m, n, k, attrs=""):
        return (f"    %1 = linalg.matmul {attrs}ins(%a, %b : tensor<{m}x{k}xf32>, tensor<{k}x{n}xf32>) "
                f"outs(%f : tensor<{m}x{n}xf32>) -> tensor<{m}x{n}xf32>")
    lines = [mm(49, 960, 160), mm(196, 96, 384), mm(1, 64, 512), mm(784, 128, 64),
             mm(49, 960, 160, "{iree.opt.data_tiling} ")]
    text = "\n".join(lines) + "\n"
    assert plain_matmul_count(text) == 3  # not the one-row matmul, not the hinted one
    out, n = widen_matmul_tiles_text(text, configs, 32)
    assert n == 1
    got = out.splitlines()
    assert got[0] == mm(49, 960, 160, (
        "{compilation_info = #iree_codegen.compilation_info<lowering_config = #iree_cpu.lowering_config<"
        "distribution = [49, 32, 0], vector_common_parallel = [7, 32, 0], vector_reduction = [0, 0, 16]>, "
        "translation_info = #iree_codegen.translation_info<pipeline = #iree_cpu.pipeline<DoubleTilingExpert>>>} "))
    # 48-wide distribution tile, one-row vector tile, no config, a data-tiling hint: left as they were
    assert got[1:] == lines[1:]
    assert widen_matmul_tiles_text(text, configs, 16) == (text, 0)  # already that wide
    assert widen_matmul_tiles_text(text, configs, 128)[1] == 0  # 64 is not a multiple of 128


NHWC_CONV = ("    %{r} = linalg.conv_2d_nhwc_hwcf {{dilations = dense<1> : vector<2xi64>, strides = dense<{s}> : "
             "vector<2xi64>}} ins(%{x}, %w{r} : tensor<1x{h}x{h}x{c}xf32>, tensor<{k}x{k}x{c}x{f}xf32>) "
             "outs(%b{r} : tensor<1x{o}x{o}x{f}xf32>) -> tensor<1x{o}x{o}x{f}xf32>")


def test_hint_conv_data_tiling_text():
    stem = NHWC_CONV.format(r="c1", s=2, x="in", h=229, c=3, k=7, f=64, o=112)
    dense = NHWC_CONV.format(r="c2", s=1, x="c1", h=58, c=64, k=3, f=64, o=56)
    text, n = hint_conv_data_tiling_text(f"{stem}\n{dense}\n", 8)
    assert n == 1 and "linalg.conv_2d_nhwc_hwcf" not in text
    assert text.count("iree.opt.data_tiling") == 1  # the 64-channel conv only; the stem stays a direct conv
    assert ("%edgecc_cv0_x = tensor.collapse_shape %in [[0, 1], [2], [3]] : tensor<1x229x229x3xf32> into "
            "tensor<229x229x3xf32>") in text
    assert "-> (d0 * 2 + d3, d1 * 2 + d4, d5)>" in text and "-> (d0 * 1 + d3, d1 * 1 + d4, d5)>" in text
    assert "ins(%edgecc_cv1_x, %wc2 : tensor<58x58x64xf32>, tensor<3x3x64x64xf32>) outs(%edgecc_cv1_init : " \
           "tensor<56x56x64xf32>) attrs = {iree.opt.data_tiling} {" in text
    # the original init (the bias) is added to the expanded result, under the original result name
    assert "%c2 = linalg.generic" in text and "ins(%edgecc_cv1_4d, %bc2 : tensor<1x56x56x64xf32>, " in text
    # nothing to leave out of data tiling: unchanged
    assert hint_conv_data_tiling_text(dense + "\n", 8) == (dense + "\n", 0)
    assert few_channel_conv_count(STEM + "\n", 8) == 1 and few_channel_conv_count(STEM + "\n", 3) == 0


def _conv_executable(name, dist_c, vec_c, pipeline="ConvTileAndDecomposeExpert"):
    return (f"  hal.executable private @{name} {{\n"
            f"    func.func @{name}() attributes {{translation_info = #iree_codegen.translation_info<pipeline = "
            f"#iree_cpu.pipeline<{pipeline}>>}} {{\n"
            f"      %0 = linalg.fill {{lowering_config = #iree_cpu.lowering_config<vector_common_parallel = "
            f"[1, 1, 8, {vec_c}]>}}\n"
            f"      %1 = linalg.generic {{lowering_config = #iree_cpu.lowering_config<distribution = [0, 4, 56, "
            f"{dist_c}, 0, 0, 0], vector_common_parallel = [1, 1, 8, {vec_c}, 0, 0, 0], vector_reduction = "
            f"[0, 0, 0, 0, 1, 1, 8]>}}\n"
            f"      %2 = linalg.generic {{lowering_config = #iree_cpu.lowering_config<vector_common_parallel = "
            f"[1, 1, 8, {vec_c}]>}}\n    }}\n  }}\n")


def test_widen_conv_tiles_text():
    wide = _conv_executable("main_dispatch_0", 64, 16)
    cases = [_conv_executable("main_dispatch_1", 48, 16),  # distribution tile not a multiple of 32
             _conv_executable("main_dispatch_2", 64, 32),  # already that wide
             _conv_executable("main_dispatch_3", 64, 16, "Mmt4dTilingExpert")]  # data-tiled
    text, n = widen_conv_tiles_text("module {\n" + wide + "".join(cases) + "}\n", 32)
    assert n == 1
    assert text.count("vector_common_parallel = [1, 1, 8, 32, 0, 0, 0]") == 2  # dispatch 0 and 2
    assert wide.replace(", 16]>", ", 32]>").replace("8, 16, 0", "8, 32, 0") in text  # the conv and its consumers
    assert "".join(cases) in text
