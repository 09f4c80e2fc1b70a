"""The patch-based stage planner (compiler/micro/patch.py, patch_emit.py) without any toolchain: receptive-field
regions, which stage counts are accepted, the tile workspace and the memory report. Bit-exactness of the
generated tile loop is tested in QEMU (tests/integration/test_patch_stages_qemu.py)."""

from types import SimpleNamespace as NS

import numpy as np
import pytest
import torch

from edgecc.compiler.micro.int8 import plan_int8
from edgecc.compiler.micro.patch import Region, input_region, parse_grid, plan_stage, valid_stage_counts
from edgecc.compiler.micro.patch_emit import patched_int8
from edgecc.compiler.micro.plan import check_plan, plan_arena
from edgecc.compiler.squeeze.quant import calibrate, capture_graph, quantize_graph
from edgecc.errors import TargetError
from edgecc.models.mobilenets import MobileNetV2Mcu


@pytest.fixture(scope="module")
def prog():
    torch.manual_seed(0)
    net = MobileNetV2Mcu(blocks=4).eval()
    x = torch.randn(4, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    g = capture_graph(net, x[:1])
    quantize_graph(g, calibrate(g, x.numpy()))
    return plan_int8(g, "mbv2", inplace=False)  # the patch stage works on the tensor-level plan


def _conv(k, s, p):
    return NS(kind="conv", w_q=np.zeros((1, 1, k, k)), attrs={"stride": (s, s), "padding": (p, p), "groups": 1})


def test_input_region_is_the_receptive_field_clipped_to_the_image():
    # 3x3 stride 2 pad 1 on 48 -> 24: output rows 0..5 read input rows -1..11 (row -1 is padding)
    assert input_region(_conv(3, 2, 1), Region(0, 6, 6, 12), (48, 48)) == Region(0, 12, 11, 24)
    # the last rows: 18..23 read 35..47 (row 48 is padding)
    assert input_region(_conv(3, 2, 1), Region(18, 24, 0, 24), (48, 48)) == Region(35, 48, 0, 48)
    assert input_region(_conv(1, 2, 0), Region(2, 4, 0, 1), (8, 8)) == Region(4, 7, 0, 1)


def test_stage_counts_end_at_block_boundaries(prog):
    # stem (1), block 1 (2-3), block 2 (4-6), block 3 with its residual add (7-10), block 4 (11-13); 14 is the pool
    assert valid_stage_counts(prog.graph) == [1, 2, 3, 4, 5, 6, 10, 11, 12, 13]
    with pytest.raises(TargetError, match=r"patch_stages=9 cuts through a skip connection \(t5 is read after op 9\)"):
        plan_stage(prog.graph, 9, (2, 2), prog.chw)


def test_one_tile_recomputes_nothing_and_sees_whole_maps(prog):
    stage = plan_stage(prog.graph, 10, (1, 1), prog.chw)
    for t in stage.tensors:
        _, h, w = prog.chw[t]
        assert stage.regions[0][t] == Region(0, h, 0, w)
    plain, tiled = stage.macs()
    assert plain == tiled > 0


def test_tiles_cover_the_stage_output_once_and_halos_grow_backwards(prog):
    stage = plan_stage(prog.graph, 10, (3, 4), prog.chw)
    _, h, w = prog.chw[stage.output]
    covered = np.zeros((h, w), int)
    for tile in stage.tiles:
        covered[tile.y0:tile.y1, tile.x0:tile.x1] += 1
    assert (covered == 1).all()
    inner = stage.regions[5]  # an interior tile (row 1, column 1): its input patch is larger than 4x scaled
    tile = stage.tiles[5]
    assert inner[stage.input].h > 4 * tile.h and inner[stage.input].w > 4 * tile.w
    plain, tiled = stage.macs()
    assert tiled > plain


def test_patched_program_plans_a_smaller_arena(prog):
    patched, report = patched_int8(prog, 10, (3, 4))
    plan = plan_arena(patched.buffers())
    check_plan(plan)
    assert report["arena_bytes"] == plan.size < report["arena_bytes_unpatched"] == plan_arena(prog.buffers()).size
    assert report["tiles"] == 12 and report["recomputed_macs"] > 0
    assert patched.steps[0].kernel.startswith("patch_stage(") and "static void patch_stage(" in patched.functions[0]
    assert not any(c[1] == "p0" for c in patched.consts)  # whole-map params of patched convs are gone


def test_the_automatic_grid_is_the_smallest_arena(prog):
    _, auto = patched_int8(prog, 10)
    for grid in [(1, 1), (2, 2), (3, 4), (6, 1), (8, 8)]:
        assert auto["arena_bytes"] <= patched_int8(prog, 10, grid)[1]["arena_bytes"]


@pytest.mark.parametrize("value,message", [("0", "expected R or RxC"), ("2x3x4", "expected R or RxC"),
                                           ("a", "expected R or RxC"), ("-1", "expected R or RxC")])
def test_bad_grids(value, message):
    with pytest.raises(TargetError, match=message):
        parse_grid(value)
