"""TVM's default CPU schedules (compiler/backends/tvm/cpu_schedule.py) with real TVM: the register-tiled rule
schedules a fused NHWC convolution into parallel, vectorized loops that compute what the unscheduled function
computes, declines what it cannot vectorize, and a small CNN built with it matches PyTorch."""

import numpy as np
import pytest
import torch

import edgecc

tvm = pytest.importorskip("tvm")

from tvm import tirx  # noqa: E402

from edgecc.compiler.backends.tvm import tuning  # noqa: E402
from edgecc.compiler.backends.tvm.channels_last import channels_last  # noqa: E402
from edgecc.compiler.backends.tvm.cpu_schedule import RegisterTiledReduction, Tile, choose_tile  # noqa: E402
from edgecc.compiler.backends.tvm.importer import import_relax  # noqa: E402
from edgecc.compiler.frontends import load_model  # noqa: E402

AVX2 = tvm.target.Target({"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "haswell"})


def _small_cnn():
    """Dense strided conv + BatchNorm, depthwise conv, 1x1 conv, max pool, global mean, dense: every kind the
    rule tiles, on odd sizes (15x15 maps: row tiles of 5 and 3) and 10 classes (a 10-lane vector)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1, groups=16), torch.nn.BatchNorm2d(16), torch.nn.ReLU6(),
        torch.nn.Conv2d(16, 32, 1), torch.nn.ReLU(), torch.nn.MaxPool2d(3, stride=2, padding=1),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10))
    for m in net.modules():  # calibrated-looking statistics, so the folded BatchNorm does something
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval(), (torch.randn(1, 3, 30, 30),)


def _fused_conv(net, inputs, target=AVX2):
    mod, _ = import_relax(load_model(net, inputs))
    with target:
        fused = tuning.fuse(channels_last(mod), target)
    name = next(gv.name_hint for gv, _ in fused.functions_items() if gv.name_hint.startswith("fused_conv2d"))
    return fused[name]


def _tiled(net, inputs):
    """The fused conv function of `net`, the rule's schedule of it for AVX2, and the schedule's TVMScript."""
    func = _fused_conv(net, inputs)
    sch = RegisterTiledReduction().apply(func, AVX2, False)
    assert sch is not None
    return func, sch, sch.mod["main"].script()


def _run(func, target, seed=0):
    rng = np.random.default_rng(seed)
    lib = tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), target=target)
    shapes = [[int(d) for d in p.shape] for p in func.params]  # TVM 0.27: a PrimFunc's params are its buffers
    args = [tvm.runtime.tensor(rng.standard_normal(s).astype("float32")) for s in shapes]
    lib["main"](*args)
    return args[-1].numpy()


def test_rule_tiles_an_nhwc_conv_into_parallel_vector_loops():
    # 32x32x32 outputs x 16x3x3: 4.7 M MACs, over the 1 M from which a function goes parallel
    net = torch.nn.Sequential(torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU()).eval()
    func, sch, text = _tiled(net, (torch.randn(1, 16, 32, 32),))
    # AVX2: 8 lanes; 32 channels = 4 vectors, budget 8 accumulators: 2 vectors x 4 columns, unrolled
    assert "T.parallel(" in text and "T.vectorized(T.int64(8))" in text and text.count("T.unroll(") >= 2
    # the ReLU runs on each tile inside the parallel loop, not in a loop nest of its own after it
    parallel_at = text.index("T.parallel(")
    assert text.index('T.sblock("compute")') > parallel_at
    assert text.count("T.parallel(") == 1 and 'T.sblock("conv2d_nhwc_init")' in text
    assert '_global")' not in text  # 18 KB of weights stay in cache: no packed copy
    assert text.index('T.sblock("pad_temp")') < parallel_at  # a dense conv's tiles share its padded input
    np.testing.assert_allclose(_run(sch.mod["main"], AVX2), _run(func, AVX2), rtol=1e-5, atol=1e-5)


def test_a_depthwise_tile_pads_its_own_window():
    # MobileNetV2's stride-2 depthwise, smaller: each tile (AVX2: 4 vectors x 2 columns) pads the 3 x 5 x 32 window
    # it reads inside the tile loop, instead of a padded copy of the whole map before it
    net = torch.nn.Sequential(torch.nn.Conv2d(96, 96, 3, stride=2, padding=1, groups=96), torch.nn.ReLU6()).eval()
    func, sch, text = _tiled(net, (torch.randn(1, 96, 28, 28),))
    tile_loop = text.index("for nn_yy_xx_0_ff_0_fused in")
    assert tile_loop < text.index('T.sblock("pad_temp")') < text.index('T.sblock("group_conv2d_nhwc_update")')
    assert "for ax0, ax1, ax2_0 in T.grid(T.int64(3), T.int64(5), T.int64(4)):" in text
    np.testing.assert_allclose(_run(sch.mod["main"], AVX2), _run(func, AVX2), rtol=1e-5, atol=1e-5)


def test_a_conv_with_large_weights_runs_one_packed_channel_tile_at_a_time():
    # 3x3 256 -> 256 on 7x7 (ResNet layer4's shape, halved): 2.4 MB of weights, 7 rows of 7-column tiles
    net = torch.nn.Sequential(torch.nn.Conv2d(256, 256, 3, padding=1), torch.nn.ReLU()).eval()
    func, sch, text = _tiled(net, (torch.randn(1, 256, 7, 7),))
    # the 32 channel tiles (8 lanes) are the parallel loop; each copies its weight slice, then runs every pixel
    parallel_at = text.index("T.parallel(T.int64(32))")
    pack_at = text.index('T.sblock("param_0_global")')
    assert parallel_at < pack_at < text.index('T.sblock("conv2d_nhwc_update")')
    # lowered, the copy is one tile's slice (3x3x256x8, contiguous), not a second copy of all the weights
    mod = sch.mod
    for name in ("LowerInitBlock", "PlanAndUpdateBufferAllocationLocation", "ConvertBlocksToOpaque",
                 "CompactBufferAllocation"):
        mod = getattr(tvm.s_tir.transform, name)()(mod)
    assert "param_0_global = T.sblock_alloc_buffer((T.int64(3), T.int64(3), T.int64(256), T.int64(8)))" in \
        mod["main"].script()
    np.testing.assert_allclose(_run(sch.mod["main"], AVX2), _run(func, AVX2), rtol=1e-4, atol=1e-4)


def test_a_constant_weight_is_packed_once_at_build_time_not_per_run():
    # the same layer4-like conv, its weight a constant of the Relax graph (AttachAttrLayoutFreeBuffers marks it):
    # the channel-tile layout [OC / 8, 3, 3, IC, 8] is a preprocess block the build splits out and folds into the
    # constant, so no tile copies its slice at run time (ResNet-50's 3x3 512 on 7x7: 1263 -> 1082 us)
    from tvm import relax

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(256, 256, 3, padding=1), torch.nn.ReLU()).eval()
    x = torch.randn(1, 256, 7, 7)
    mod, _ = import_relax(load_model(net, (x,)))
    with AVX2:
        fused = relax.transform.AttachAttrLayoutFreeBuffers()(tuning.fuse(channels_last(mod), AVX2))
        [conv] = [gv for gv, _ in fused.functions_items() if gv.name_hint.startswith("fused_conv2d")]
        text = RegisterTiledReduction().apply(fused[conv], AVX2, False).mod["main"].script()
        assert "meta_schedule.layout_rewrite_preproc" in text
        assert text.index('T.sblock("param_0_global")') < text.index("T.parallel(T.int64(32))")  # before the tiles
        scheduled = tuning.default_cpu_schedule()(fused)
        folded = relax.transform.FoldConstant()(relax.transform.SplitLayoutRewritePreproc()(scheduled))
    texts = [f.script() for _, f in folded.functions_items() if isinstance(f, tirx.PrimFunc)]
    assert not any("layout_rewrite_preproc" in t for t in texts)  # the preprocess ran at build time
    [packed] = [c.value for c in _constants(folded["main"]) if len(getattr(c.value, "shape", ())) == 5]
    assert tuple(packed.shape) == (32, 3, 3, 256, 8)
    w = net[0].weight.detach().numpy()  # OIHW -> [O / 8, H, W, I, 8]
    np.testing.assert_array_equal(packed.numpy(), w.reshape(32, 8, 256, 3, 3).transpose(0, 3, 4, 2, 1))
    # and the built module computes the conv
    ex, _ = tuning.build(mod, {"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "haswell"}, None)
    vm = relax.VirtualMachine(ex, tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(x.numpy()))
    out = (out[0] if not hasattr(out, "numpy") else out).numpy()
    np.testing.assert_allclose(out, net(x).detach().numpy(), rtol=1e-4, atol=1e-4)


def _constants(func):
    from tvm import relax

    found = []
    relax.analysis.post_order_visit(func, lambda e: found.append(e) if isinstance(e, tvm.ir.expr.Constant) else None)
    return found


def test_rule_declines_a_strided_nchw_conv():
    # NCHW: the only contiguous output axis is the row, which a stride-2 convolution reads with gathers
    net = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, stride=2)).eval()
    mod, _ = import_relax(load_model(net, (torch.randn(1, 8, 17, 17),)))
    with AVX2:
        fused = tuning.fuse(mod, AVX2)
    [func] = [f for gv, f in fused.functions_items() if isinstance(f, tirx.PrimFunc)]
    assert RegisterTiledReduction().apply(func, AVX2, False) is None


@pytest.mark.parametrize("args, tile", [
    ((64, 16, 16, 12), Tile(16, 2, 4)),   # AVX-512: 8 accumulators, 6 loads a step
    ((32, 24, 8, 8), Tile(8, 2, 4)),      # AVX2
    ((10, 1, 8, 8), Tile(5, 2, 1)),       # 10 classes after a 1-row matmul: no 8-wide vector divides 10
    ((64, 7, 4, 12), Tile(4, 1, 7)),      # NEON, a 7-wide row: 7 divides only itself
    ((1000, 1, 16, 12), Tile(10, 10, 1)),  # a 1000-class matrix-vector product: 10 vectors, not 4
])
def test_choose_tile(args, tile):
    assert choose_tile(*args) == tile


def test_channels_last_transposes_only_at_the_edges():
    # BatchNorm folded, ReLU6 as max/min (ConvertLayout has no rule for clip and would wrap it in transposes)
    mod, _ = import_relax(load_model(*_small_cnn()))
    text = channels_last(mod)["main"].script()
    assert "R.nn.batch_norm" not in text and "R.clip" not in text
    assert text.count('data_layout="NHWC", kernel_layout="HWIO"') == 3
    # weights are transposed too, constants FoldConstant folds at build; of the activations only the input to
    # NHWC and the pooled features back
    assert text.count("R.permute_dims(") - text.count("R.permute_dims(metadata") == 2, text


def test_small_cnn_built_with_the_default_schedules_matches_pytorch(tmp_path):
    bundle = edgecc.compile(*_small_cnn(), target="host", backend="tvm", output=tmp_path / "b")
    info, v = bundle.manifest["artifact"]["info"], bundle.manifest["validation"]
    assert v["status"] == "passed" and v["reference"] == "pytorch", v
    assert info["graph_layout"].startswith("NHWC") and "schedule_rule_fallbacks" not in info, info
    # three convolutions, the pool, the mean and the dense layer are register-tiled
    assert info["default_schedule_functions"]["RegisterTiledReduction"] >= 5, info


@pytest.mark.parametrize("target, bits, accumulators", [
    ({"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "haswell"}, 256, 8),   # TVM's own query says 512
    ({"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "znver5"}, 512, 16),
    ({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a76"}, 128, 12),
])
def test_vector_width_comes_from_the_cpu_features(target, bits, accumulators):
    from edgecc.compiler.backends.tvm.cpu_schedule import accumulator_budget, vector_bits

    assert vector_bits(tvm.target.Target(target)) == bits
    assert accumulator_budget(tvm.target.Target(target)) == accumulators


def test_shipped_database_is_used_only_where_it_covers_every_convolution():
    # host's database was tuned on ResNet-18: its 56x56x64 block is covered, a 24-filter conv after it is not
    from edgecc.models.vision import BasicBlock

    target = tvm.target.Target({"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "host"})
    db = tuning.open_database(tuning.database_dir("host"))
    torch.manual_seed(0)
    block = BasicBlock(64, 64, 1).eval()
    x = (torch.randn(1, 64, 56, 56),)
    covered, _ = import_relax(load_model(block, x))
    partly, _ = import_relax(load_model(torch.nn.Sequential(block, torch.nn.Conv2d(64, 24, 3, padding=1)).eval(), x))
    assert tuning.graph_for_schedules(covered, target, db, partial=False)[1].startswith("as imported")
    layout = tuning.graph_for_schedules(partly, target, db, partial=False)[1]
    assert layout.startswith("NHWC") and "covers 1 of 2 convolution/matmul functions, not all: not used" in layout
    # the user's own database (--option tuning_db=) is applied as far as it goes, and says how far
    layout = tuning.graph_for_schedules(partly, target, db, partial=True)[1]
    assert layout.startswith("as imported") and "covers 1 of 2" in layout


def test_rule_tiles_a_conv_whose_epilogue_reads_it_twice():
    # hardswish, x * relu6(x + 3) / 6, reads the biased conv output twice: an epilogue graph, not a chain
    net = torch.nn.Sequential(torch.nn.Conv2d(16, 32, 1), torch.nn.Hardswish()).eval()
    func, sch, text = _tiled(net, (torch.randn(1, 16, 14, 14),))
    assert "T.vectorized(T.int64(8))" in text
    np.testing.assert_allclose(_run(sch.mod["main"], AVX2), _run(func, AVX2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("features, parallel", [(1024, True), (64, False)])
def test_a_matrix_vector_product_goes_parallel_on_its_weight_bytes(features, parallel):
    # 1 x 1024 @ 1024 x 1000: 1 M MACs, under the work threshold, but 4 MB of weights to stream
    net = torch.nn.Linear(features, 1000).eval()
    mod, _ = import_relax(load_model(net, (torch.randn(1, features),)))
    with AVX2:
        fused = tuning.fuse(channels_last(mod), AVX2)
    [func] = [f for gv, f in fused.functions_items() if gv.name_hint.startswith("fused_matmul")]
    sch = RegisterTiledReduction().apply(func, AVX2, False)
    assert sch is not None and ("T.parallel(" in sch.mod["main"].script()) == parallel
    assert '_global")' not in sch.mod["main"].script()  # each weight is read once: packing would not pay
    np.testing.assert_allclose(_run(sch.mod["main"], AVX2), _run(func, AVX2), rtol=1e-5, atol=1e-5)


def test_a_database_tuned_on_another_cpu_is_named(tmp_path):
    import json

    rec = lambda mcpu: json.dumps([0, [[[], []], [1e-6], {"kind": "llvm", "mcpu": mcpu}, []]])  # noqa: E731
    (tmp_path / tuning.RECORDS).write_text("\n".join([rec("znver5"), rec("znver5")]) + "\n")
    assert tuning.tuned_elsewhere(tmp_path, {"kind": "llvm", "mcpu": "znver4"}) == "znver5"
    assert tuning.tuned_elsewhere(tmp_path, {"kind": "llvm", "mcpu": "znver5"}) == ""
    # the shipped host database names the CPU it was measured on
    assert tuning.tuned_elsewhere(tuning.database_dir("host"), {"mcpu": "cortex-a76"}) == "znver5"


def test_the_shipped_database_is_not_applied_for_another_cpu():
    from edgecc.models.vision import BasicBlock

    torch.manual_seed(0)
    mod, _ = import_relax(load_model(BasicBlock(64, 64, 1).eval(), (torch.randn(1, 64, 56, 56),)))
    _, facts = tuning.build(mod, {"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "skylake-avx512"},
                            tuning.database_dir("host"), partial=False)
    assert facts["graph_layout"].startswith("NHWC") and "tuned for znver5" in facts["graph_layout"], facts
    assert "tuned_functions" not in facts
