"""When: `conv_vector_n` is set; on IREE's tile configurations (`--compile-to=executable-configurations`), from
which the build then goes on with `--compile-from=executable-configurations` when anything was widened.
What: the vector tile of each direct (ConvTileAndDecomposeExpert) convolution and its fused consumers becomes
`conv_vector_n` output channels wide."""

from __future__ import annotations

import re
from pathlib import Path

from ._mlir import _apply_file

# IREE's direct (not data-tiled) f32 convolution config on AVX-512 is one output row, 7-8 output columns and one
# 16-wide register of output channels per vector tile. Two registers (32 channels) keep twice the accumulators per
# input broadcast: the 7x7 stride-2 stem 1.61 -> 1.02 ms, 56x56x64 3x3 1.40 -> 0.98 ms (one thread, in ResNet-18).
# The config is only visible after IREE rebuilds the op in codegen (a compilation_info on the input op is dropped
# with the unit batch dimension), so this rewrites the output of `--compile-to=executable-configurations`, which is
# then compiled `--compile-from=executable-configurations`.
_DIRECT_CONV_CONFIG = re.compile(
    r"distribution = \[0, (?P<dh>\d+), (?P<dw>\d+), (?P<dc>\d+), 0, 0, 0\], "
    r"vector_common_parallel = \[1, 1, (?P<vw>\d+), (?P<vc>\d+), 0, 0, 0\]")


def widen_conv_tiles_text(config_text: str, vector_n: int) -> tuple[str, int]:
    """(text, count): in each executable whose convolution uses IREE's ConvTileAndDecomposeExpert pipeline with a
    vector tile narrower than `vector_n` output channels and a distribution tile that is a multiple of it, that
    vector tile (and its fused consumers') becomes `vector_n` channels wide."""
    parts = re.split(r"(?=^\s*hal\.executable private @)", config_text, flags=re.M)
    n = 0
    for i, part in enumerate(parts):
        m = _DIRECT_CONV_CONFIG.search(part)
        if "ConvTileAndDecomposeExpert" not in part or not m or len(_DIRECT_CONV_CONFIG.findall(part)) != 1:
            continue
        vw, vc, dc = int(m["vw"]), int(m["vc"]), int(m["dc"])
        if vc >= vector_n or dc % vector_n:
            continue
        part = part.replace(m[0], m[0].replace(f"[1, 1, {vw}, {vc}, 0, 0, 0]", f"[1, 1, {vw}, {vector_n}, 0, 0, 0]"))
        parts[i] = part.replace(f"lowering_config<vector_common_parallel = [1, 1, {vw}, {vc}]>",
                                f"lowering_config<vector_common_parallel = [1, 1, {vw}, {vector_n}]>")
        n += 1
    return "".join(parts), n


def widen_conv_tiles_file(path: Path, vector_n: int) -> int:
    return _apply_file(path, lambda text: widen_conv_tiles_text(text, vector_n))
