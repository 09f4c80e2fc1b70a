"""When: `matmul_vector_n` is set and the module has plain (attribute-free, more than one row) f32 matmuls.
What: from IREE's own tile configurations (`--compile-to=executable-configurations`), each such matmul gets a
`compilation_info` with IREE's tiles but a `matmul_vector_n`-wide vector N tile."""

from __future__ import annotations

import re
from pathlib import Path

from ._mlir import _MATMUL, _apply, _apply_file, _f32

# The matmuls left to IREE's default CPU tiling (not data-tiled: K < MATMUL_DATA_TILING_MIN_K, or no matmul data tiling)
# get a vector tile one register wide in N ([7, 16] or [8, 16] for f32 on AVX-512): 7-8 FMAs per weight load. Two
# registers wide ([7, 32]) keeps 14 accumulators in registers and does 14 FMAs per 9 loads. Measured on the 2-core
# Zen 5 host (iree-benchmark-module, matmul + bias + clamp alone, 1 thread): 49x1280x320 0.270 -> 0.235 ms,
# 196x576x96 0.156 -> 0.137, 49x960x160 0.129 -> 0.113; it loses where the distribution tile is not a multiple of 32
# (196x96x384 with IREE's 48-wide tile: 0.120 -> 0.146), so those are left alone. IREE's own choice is read from
# `iree-compile --compile-to=executable-configurations` and only the vector N tile changes, as a per-op
# `compilation_info` (the distribution tiles, hence the workgroup counts, stay IREE's).
#
# Few-row matmuls (at most FEW_ROWS rows: the 7x7 stage, 49 rows) are the exception. With this tile they do better
# than data tiling, whose 16-row packed tiles pad 49 rows to 64, so they are not hinted for it; and they get one
# distribution tile over all rows, `vector_n` columns wide, instead of IREE's. MobileNetV2, one thread, per dispatch:
# 49x320x960 0.194 -> 0.131 ms (ONNX Runtime: 0.154), 49x160x960 0.100 -> 0.076, 49x160x576 0.061 -> 0.037; the whole
# net 3.73 -> 3.47 ms of dispatches, and 2.24 -> 2.14 ms at 2 threads (interleaved, 10 rounds).
FEW_ROWS = 64
_CONFIGURED_MATMUL = re.compile(
    r"linalg\.generic \{indexing_maps = \[affine_map<\(d0, d1, d2\) -> \(d0, d2\)>, "
    r"affine_map<\(d0, d1, d2\) -> \(d2, d1\)>, affine_map<\(d0, d1, d2\) -> \(d0, d1\)>\], "
    r'iterator_types = \["parallel", "parallel", "reduction"\]\} '
    r"ins\(%[\w.]+, %[\w.]+ : tensor<(?P<m>\d+)x(?P<k>\d+)xf32>, tensor<\d+x(?P<n>\d+)xf32>\) .*"
    r"lowering_config = #iree_cpu\.lowering_config<distribution = \[(?P<dm>\d+), (?P<dn>\d+), 0\], "
    r"vector_common_parallel = \[(?P<vm>\d+), (?P<vn>\d+), 0\], vector_reduction = \[0, 0, (?P<vk>\d+)\]>")


def plain_matmul_count(text: str) -> int:
    """How many 2-D f32 linalg.matmul ops with more than one row carry no attributes (so no data-tiling hint)."""
    return sum(1 for line in text.splitlines()
               if "= linalg.matmul ins(" in line and (m := _MATMUL.match(line)) and _f32(m) and int(m["m"]) > 1)



def matmul_tile_configs(config_text: str) -> dict[tuple[int, int, int], tuple[int, int, int, int, int]]:
    """IREE's tiles for each f32 matmul shape, (M, N, K) -> (distribution M, N, vector M, N, vector K), read from
    the output of `iree-compile --compile-to=executable-configurations`. Only matmuls that are their dispatch's
    one distributed op and store their result as it is: ResNet-18's downsample matmuls, whose dispatch also packs
    their output for a data-tiled convolution (`iree_linalg_ext.map_store`), got slower with a wider tile
    (49x512x256: 0.24 -> 0.26 ms, one thread)."""
    configs = {}
    for dispatch in config_text.split("func.func @")[1:]:
        if dispatch.count("#iree_cpu.lowering_config<distribution") != 1 or "map_store" in dispatch \
                or "linalg.pack" in dispatch:
            continue
        for line in dispatch.splitlines():
            if "#iree_cpu.lowering_config<distribution" in line and (m := _CONFIGURED_MATMUL.search(line)):
                key = int(m["m"]), int(m["n"]), int(m["k"])
                configs[key] = tuple(int(m[g]) for g in ("dm", "dn", "vm", "vn", "vk"))
    return configs


def widen_matmul_tiles_text(text: str, configs: dict, vector_n: int) -> tuple[str, int]:
    """(text, count): each plain f32 linalg.matmul that IREE gave a vector N tile narrower than `vector_n` gets a
    `compilation_info` with IREE's own tiles but that vector N tile, when its distribution N tile is a multiple of
    it; with at most FEW_ROWS rows, the distribution tile becomes all rows by `vector_n` columns. Single-row matmuls
    (vector M tile 1) are left to IREE."""
    def widen(m: re.Match, _n: int) -> list[str] | None:
        rows, cols = int(m["m"]), int(m["n"])
        c = configs.get((rows, cols, int(m["k"]))) if _f32(m) else None
        if not c:
            return None
        dm, dn, vm, vn, vk = c
        if rows <= FEW_ROWS and cols % vector_n == 0:
            dm, dn = rows, vector_n
        if vm < 2 or vn >= vector_n or dn % vector_n:
            return None
        info = ("{compilation_info = #iree_codegen.compilation_info<lowering_config = #iree_cpu.lowering_config<"
                f"distribution = [{dm}, {dn}, 0], vector_common_parallel = [{vm}, {vector_n}, 0], "
                f"vector_reduction = [0, 0, {vk}]>, translation_info = #iree_codegen.translation_info<"
                "pipeline = #iree_cpu.pipeline<DoubleTilingExpert>>>}")
        return [m.string.replace(f"{m['head']} ins(", f"{m['head']} {info} ins(", 1)]

    return _apply(text, [("= linalg.matmul ins(", _MATMUL, widen)])


def widen_matmul_tiles_file(path: Path, config_path: Path, vector_n: int) -> int:
    configs = matmul_tile_configs(config_path.read_text())
    return _apply_file(path, lambda text: widen_matmul_tiles_text(text, configs, vector_n))
