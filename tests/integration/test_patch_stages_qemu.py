"""--option patch_stages=N (MCUNetV2's patch-based inference of a network's first ops) on a Cortex-M4 in
qemu-system-arm: bit-exact with the numpy TFLite-arithmetic reference (run_int8) on every output, the peak RAM cut
read from the real arena plans, and a one-line error for every bad value.

The MobileNetV2-style net is MobileNetV2 0.35's first four blocks at 48x48 (a stride-2 stem, a t=1 block, two
stride-2 inverted residuals and one with its residual add); the bit-exact test compiles its feature extractor
(the output is a 16x6x6 feature map), the error tests the classifier (global pool and dense after the blocks).
ResNet-8's first two blocks add a 1x1 stride-2 shortcut that reads a larger patch of its input than it needs
(a negative padding in patch coordinates).
"""

import json
import re

import numpy as np
import pytest
import torch

import edgecc
from edgecc.compiler.micro.int8 import plan_int8
from edgecc.compiler.micro.plan import plan_arena
from edgecc.errors import TargetError
from edgecc.models.mobilenets import MobileNetV2Mcu
from tests.conftest import assert_clean_failure, calibration_folder, edgecc_cli, int8_reference, require_cortex_m_tools

require_cortex_m_tools()

RES = 48


def small_mbv2():
    torch.manual_seed(0)
    return MobileNetV2Mcu(alpha=0.35, blocks=4).eval()


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    gen = torch.Generator().manual_seed(1)
    cal, x = torch.randn(16, 3, RES, RES, generator=gen).numpy(), torch.randn(6, 3, RES, RES, generator=gen).numpy()
    folder = tmp_path_factory.mktemp("cal")
    calibration_folder(folder, cal)
    return folder, cal, x


def _check_arena(bundle, g) -> dict:
    """The manifest's patch report against the firmware's own plan and an unpatched plan made here."""
    patch = bundle.manifest["artifact"]["info"]["memory"]["patch"]
    plan = json.loads((bundle.path / "memory_plan.json").read_text())
    declared = int(re.search(r"static uint8_t arena\[(\d+)\]", (bundle.path / "model.c").read_text()).group(1))
    assert patch["arena_bytes"] == plan["arena_bytes"] == declared
    plain = plan_arena(plan_int8(g, "plain", inplace=False).buffers())  # patching uses the tensor-level plan
    assert patch["arena_bytes_unpatched"] == plain.size
    assert patch["tensor_level_lower_bound_bytes"] == plain.lower_bound
    assert patch["recomputed_macs"] == patch["stage_macs_patched"] - patch["stage_macs"] > 0
    return patch


@pytest.mark.parametrize("grid", ["6x1", "3x4"])  # full-width bands (stored in place) / a grid (window stores)
def test_patched_mobilenetv2_is_bit_exact_and_needs_half_the_ram(grid, samples, tmp_path):
    folder, cal, x = samples
    net = small_mbv2().features  # its output is a feature map: every pixel is compared, none pooled away
    bundle = edgecc.compile(net, (torch.from_numpy(x[:1]),), target="cortex-m4", backend="micro",
                            output=tmp_path / "b", quantize="int8", calibration=str(folder),
                            options={"patch_stages": "10", "patch_grid": grid})
    model_c = (bundle.path / "model.c").read_text()
    assert "patch_stage(" in model_c and "edgecc_q8_add_windowed(" in model_c
    assert ("edgecc_q8_store_window(" in model_c) == (grid != "6x1")
    g, want = int8_reference(net, cal, x)
    got = bundle.runner().run_many(x).reshape(want.shape)
    assert np.array_equal(got, want), np.abs(got - want).max()
    assert len(np.unique(want)) > 100  # not all outputs clamped to one value
    patch = _check_arena(bundle, g)
    assert patch["tiles"] == int(grid[0]) * int(grid[-1])
    assert patch["arena_bytes_unpatched"] / patch["arena_bytes"] >= 2.0, patch


def test_patched_resnet8_with_a_strided_shortcut_is_bit_exact(samples, tmp_path):
    from edgecc.models import get_model

    net, (x0,) = get_model("resnet8").factory()
    gen = torch.Generator().manual_seed(4)
    cal, x = torch.randn(16, 3, 32, 32, generator=gen).numpy(), torch.randn(3, 3, 32, 32, generator=gen).numpy()
    folder = calibration_folder(tmp_path / "cal", cal)
    bundle = edgecc.compile(net, (torch.from_numpy(x[:1]),), target="cortex-m4", backend="micro",
                            output=tmp_path / "b", quantize="int8", calibration=folder,
                            options={"patch_stages": 8})  # the grid with the smallest arena
    g, want = int8_reference(net, cal, x)
    got = bundle.runner().run_many(x).reshape(want.shape)
    assert np.array_equal(got, want), np.abs(got - want).max()
    patch = _check_arena(bundle, g)
    assert patch["arena_bytes"] < patch["arena_bytes_unpatched"]


BAD = [
    ({"patch_stages": 0}, "patch_stages=0: expected 1 to 16"),
    ({"patch_stages": 17}, "patch_stages=17: expected 1 to 16"),
    ({"patch_stages": "two"}, "patch_stages=two: expected a whole number"),
    ({"patch_stages": 2.5}, "patch_stages=2.5: expected a whole number"),
    ({"patch_stages": 7}, "cuts through a skip connection (t5 is read after op 7); valid values for this model: "
                          "1-6, 10-13"),
    ({"patch_stages": 14}, "op 14 (t13) cannot be tiled: avgpool is not a spatial op"),
    ({"patch_stages": 10, "patch_grid": "0"}, "patch_grid=0: expected R or RxC"),
    ({"patch_stages": 10, "patch_grid": "13x1"}, "op 10's output is 12x12 pixels"),
    ({"patch_grid": "2"}, "patch_grid=2 needs --option patch_stages=N"),
]


@pytest.mark.parametrize("options,message", BAD)
def test_bad_patch_values_are_one_line_errors(options, message, samples, tmp_path):
    folder, _, x = samples
    with pytest.raises(TargetError) as e:
        edgecc.compile(small_mbv2(), (torch.from_numpy(x[:1]),), target="cortex-m4", backend="micro",
                       output=tmp_path / "b", quantize="int8", calibration=str(folder), options=options)
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert not (tmp_path / "b").exists()


def test_patch_stages_needs_int8(samples, tmp_path):
    _, _, x = samples
    with pytest.raises(TargetError, match="patch_stages runs edgecc's int8 kernels patch by patch: add --quantize"):
        edgecc.compile(small_mbv2(), (torch.from_numpy(x[:1]),), target="cortex-m4", backend="micro",
                       output=tmp_path / "b", options={"patch_stages": 6})
    assert not (tmp_path / "b").exists()


def test_patch_stages_on_the_cli(samples, tmp_path):
    folder, _, _ = samples
    factory = tmp_path / "net.py"
    factory.write_text("import torch\nfrom edgecc.models.mobilenets import MobileNetV2Mcu\n\n\ndef build():\n"
                       "    torch.manual_seed(0)\n"
                       f"    return MobileNetV2Mcu(blocks=4).eval(), (torch.randn(1, 3, {RES}, {RES}),)\n")
    out = tmp_path / "out" / "b"
    r = edgecc_cli("compile", f"{factory}:build", "-t", "cortex-m4", "-o", out, "--quantize", "int8",
                   "--calibration", folder, "--option", "patch_stages=8")
    assert_clean_failure(r, 3, "patch_stages=8 cuts through a skip connection", "valid values", out_dir=out)
