"""The IREE backend's rewrites of the imported module, one module each (its docstring says when it applies and
what it does); pipeline.py runs them. channels_last_graph (the ATen-level rewrite) is not re-exported here: it
needs torch, which importing the backend does not."""

from .conv_data_tiling_hints import few_channel_conv_count, hint_conv_data_tiling_file, hint_conv_data_tiling_text
from .conv_mac_share import spatial_conv_share
from .few_channel_im2col import IM2COL_MAX_CHANNELS, few_channel_im2col_file, few_channel_im2col_text
from .iree_opt_channels_last import channels_last_first
from .matmul_data_tiling_hints import (
    MATMUL_DATA_TILING_MIN_K,
    hint_matmul_data_tiling_file,
    hint_matmul_data_tiling_text,
)
from .max_pool_slices import max_pool_slices_file, max_pool_slices_text
from .nhwc_convs import rewrite_file, rewrite_text
from .space_to_depth import S2D_MAX_CHANNELS, space_to_depth_file, space_to_depth_text
from .widen_conv_tiles import widen_conv_tiles_file, widen_conv_tiles_text
from .widen_matmul_tiles import (
    FEW_ROWS,
    matmul_tile_configs,
    plain_matmul_count,
    widen_matmul_tiles_file,
    widen_matmul_tiles_text,
)

__all__ = [
    "FEW_ROWS", "IM2COL_MAX_CHANNELS", "MATMUL_DATA_TILING_MIN_K", "S2D_MAX_CHANNELS", "channels_last_first",
    "few_channel_conv_count", "few_channel_im2col_file", "few_channel_im2col_text",
    "hint_conv_data_tiling_file", "hint_conv_data_tiling_text", "hint_matmul_data_tiling_file",
    "hint_matmul_data_tiling_text", "matmul_tile_configs", "max_pool_slices_file", "max_pool_slices_text",
    "plain_matmul_count", "rewrite_file", "rewrite_text", "space_to_depth_file", "space_to_depth_text",
    "spatial_conv_share", "widen_conv_tiles_file", "widen_conv_tiles_text", "widen_matmul_tiles_file",
    "widen_matmul_tiles_text",
]
