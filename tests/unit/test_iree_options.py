"""The IREE backend's options (compiler/backends/iree/options.py): the user's over the target's, checked once."""

import pytest

from edgecc.compiler.backends.iree import IreeBackend, IreeOptions
from edgecc.errors import TargetError


def test_user_over_target_and_defaults():
    target = {"nhwc_rewrite": True, "matmul_vector_n": 32, "conv_data_tiling": "auto",
              "conv_data_tiling_min_channels": 8, "matmul_data_tiling_flags": ["--iree-opt-data-tiling"]}
    o = IreeOptions.parse({"nhwc_rewrite": "0", "conv_vector_n": "16", "conv_data_tiling": "ON"}, target)
    assert (o.nhwc_rewrite, o.nhwc_graph, o.matmul_vector_n, o.conv_vector_n) == (False, False, 32, 16)
    assert o.conv_data_tiling == "on" and o.conv_data_tiling_min_channels == 8
    assert o.space_to_depth is None and o.max_pool_slices is None  # decided with data tiling
    assert o.matmul_data_tiling_flags == ("--iree-opt-data-tiling",)
    assert IreeOptions.parse({}, {}).conv_data_tiling is None
    # space_to_depth and max_pool_slices are the user's only
    assert IreeOptions.parse({}, {"space_to_depth": True}).space_to_depth is None


@pytest.mark.parametrize("bad, message", [
    ("nhwc_rewrite=maybe", "--option nhwc_rewrite=maybe: expected 1/0 (true/false)"),
    ("conv_data_tiling=sometimes", "--option conv_data_tiling=sometimes: expected 1/0 (true/false) or auto"),
    ("space_to_depth=2", "--option space_to_depth=2: expected 1/0 (true/false)"),
    ("matmul_vector_n=12", "--option matmul_vector_n=12: expected 0 (off) or a power of two from 8 to 64"),
    ("conv_vector_n=48", "--option conv_vector_n=48: expected 0 (off) or a power of two from 8 to 64"),
    ("conv_data_tiling_min_channels=-1",
     "--option conv_data_tiling_min_channels=-1: expected a whole number of channels, 0 or more"),
])
def test_bad_values_one_line(bad, message):
    key, value = bad.split("=")
    with pytest.raises(TargetError) as e:
        IreeOptions.parse({key: value}, {})
    assert str(e.value) == message


def test_unknown_key_lists_the_valid_ones():
    with pytest.raises(TargetError, match=r"unknown iree option\(s\) tile; valid iree options: conv_data_tiling, "):
        IreeOptions.parse({"tile": "1"}, {})


def test_backend_options_are_the_dataclass_user_keys():
    assert list(IreeBackend.OPTIONS) == ["nhwc_rewrite", "nhwc_graph", "conv_data_tiling",
                                         "conv_data_tiling_min_channels", "space_to_depth", "max_pool_slices",
                                         "few_channel_im2col", "matmul_vector_n", "conv_vector_n", "executor"]
    assert all(IreeBackend.OPTIONS.values())


def test_executor_option_user_over_target_and_checked():
    from edgecc.runtime.iree_task import task_flags

    host = {"executor": "auto", "executor_sync_below_macs_per_layer": 2000000}
    assert IreeOptions.parse({}, host).executor == "auto"
    assert IreeOptions.parse({"executor": "Local-Sync"}, host).executor == "local-sync"
    assert IreeOptions.parse({}, host).executor_sync_below_macs_per_layer == 2000000
    assert IreeOptions.parse({}, {}).executor == ""  # a target without the choice keeps its driver
    with pytest.raises(TargetError) as e:
        IreeOptions.parse({"executor": "fast"}, host)
    assert str(e.value) == "--option executor=fast: expected one of auto, local-task, local-sync"
    with pytest.raises(TargetError, match="this target has no CPU executor to choose"):
        IreeOptions.parse({"executor": "local-sync"}, {})
    # unpinned workers where the manifest says so (threads, else every CPU); bundles from before: IREE's pinned form
    assert task_flags({"workers": "unpinned"}, 2, 16) == ["--task_topology_group_count=2"]
    assert task_flags({"workers": "unpinned"}, 0, 16) == ["--task_topology_group_count=16"]
    assert task_flags(None, 2, 16) == ["--task_topology_max_group_count=2"] and task_flags(None, 0, 16) == []
