"""When: the channels-last graph rewrite ran, the target has `matmul_data_tiling_flags` and convolution data
tiling is off.
What: each attribute-free 2-D linalg.matmul with a long reduction gets an `iree.opt.data_tiling` hint (few-row ones
are left to widen_matmul_tiles.py when `matmul_vector_n` is on)."""

from __future__ import annotations

import re
from pathlib import Path

from ._mlir import _MATMUL, _apply, _apply_file
from .widen_matmul_tiles import FEW_ROWS

# After the channels-last graph rewrite (channels_last_graph.py), 1x1 convolutions are linalg.matmul. IREE's
# default CPU tiling does the long-K, few-row ones badly (MobileNetV2's 49x160x960 projection: 52 GFLOP/s, one thread,
# Zen 5) and data tiling (packed operands + ukernels) does them well (0.28 -> 0.10 ms), but data-tiling every matmul
# packs the big early layers' activations too, which costs more than it saves (112x112x16->96: 0.20 -> 0.55 ms).
# IREE honours a per-op `iree.opt.data_tiling` hint, so only matmuls with K >= MATMUL_DATA_TILING_MIN_K get it,
# and with matmul_vector_n on, not the few-row ones that a wide vector tile does better (FEW_ROWS below).
MATMUL_DATA_TILING_MIN_K = 512


def hint_matmul_data_tiling_text(text: str, min_k: int = MATMUL_DATA_TILING_MIN_K, wide_n: int = 0) -> tuple[str, int]:
    """(text, count): `iree.opt.data_tiling` on each 2-D linalg.matmul whose reduction is at least `min_k` long.
    With `wide_n`, few-row matmuls with N a multiple of it are left to widen_matmul_tiles_text (see FEW_ROWS)."""
    def hint(m: re.Match, _n: int) -> list[str] | None:
        if int(m["k"]) < min_k or (wide_n and int(m["m"]) <= FEW_ROWS and int(m["n"]) % wide_n == 0):
            return None
        return [m.string.replace(f"{m['head']} ins(", f"{m['head']} {{iree.opt.data_tiling}} ins(", 1)]

    return _apply(text, [("linalg.matmul ins(", _MATMUL, hint)])


def hint_matmul_data_tiling_file(path: Path, min_k: int = MATMUL_DATA_TILING_MIN_K, wide_n: int = 0) -> int:
    return _apply_file(path, lambda text: hint_matmul_data_tiling_text(text, min_k, wide_n))
