"""When: convolution data tiling is on (or `max_pool_slices=1`) and `nhwc_rewrite` made the NHWC pools.
What: each float NHWC max pool becomes an elementwise max of its window's strided slices, into the pool's init."""

from __future__ import annotations

import re
from pathlib import Path

from ._mlir import _apply, _apply_file, _dims

# IREE's convolution data tiling takes pooling ops too: a max pool's input gets an encoding with no tiles, which is
# a copy of the whole input done by one workgroup (ResNet-18's 114x114x64 pool input: 0.22 ms single thread on the
# 2-core Zen 5 host, and no faster on two). Written as an elementwise max over the kh*kw strided slices of its
# input (into the same init, so the result is the pool's), it is one parallel dispatch and the copy is gone.
_MAXPOOL = re.compile(
    r"^(?P<ind>\s*)(?P<res>%[\w.]+) = linalg\.pooling_nhwc_max \{dilations = dense<1> : vector<2xi64>, "
    r"strides = dense<(?P<s>\d+)> : vector<2xi64>\} ins\((?P<x>%[\w.]+), %[\w.]+ : "
    r"tensor<(?P<xs>[0-9x]+)x(?P<et>\w+)>, tensor<(?P<ws>\d+x\d+)x(?P=et)>\) outs\((?P<o>%[\w.]+) : "
    r"tensor<(?P<os>[0-9x]+)x(?P=et)>\) -> tensor<(?P=os)x(?P=et)>\s*$")


_PARALLEL = '"parallel"'


def _max_pool_slices(m: re.Match, n: int) -> list[str] | None:
    ind, et, s = m["ind"], m["et"], int(m["s"])
    if et not in ("f32", "f16", "bf16"):  # arith.maximumf: floats only
        return None
    kh, kw = _dims(m, "ws")
    bn, oh, ow, c = _dims(m, "os")
    k, out = f"%edgecc_mps{n}", f"tensor<{m['os']}x{et}>"
    taps = [(i, j) for i in range(kh) for j in range(kw)]
    lines = [f"{ind}{k}_{i}_{j} = tensor.extract_slice {m['x']}[0, {i}, {j}, 0] [{bn}, {oh}, {ow}, {c}] "
             f"[1, {s}, {s}, 1] : tensor<{m['xs']}x{et}> to {out}" for i, j in taps]
    ident = "affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>"
    args = [f"{k}_a{t}: {et}" for t in range(len(taps) + 1)]
    lines += [f"{ind}{m['res']} = linalg.generic {{indexing_maps = [{', '.join([ident] * (len(taps) + 1))}], "
              f"iterator_types = [{', '.join([_PARALLEL] * 4)}]}} "
              f"ins({', '.join(f'{k}_{i}_{j}' for i, j in taps)} : {', '.join([out] * len(taps))}) "
              f"outs({m['o']} : {out}) {{",
              f"{ind}^bb0({', '.join(args)}):"]
    acc = f"{k}_a{len(taps)}"  # the init (the pool's -inf fill), then every tap
    for t in range(len(taps)):
        lines.append(f"{ind}  {k}_m{t} = arith.maximumf {acc}, {k}_a{t} : {et}")
        acc = f"{k}_m{t}"
    lines += [f"{ind}  linalg.yield {acc} : {et}", f"{ind}}} -> {out}"]
    return lines


def max_pool_slices_text(text: str) -> tuple[str, int]:
    """(module text with NHWC max pools as an elementwise max of strided slices, number rewritten); run after
    rewrite_text, which makes the NHWC pools."""
    return _apply(text, [("linalg.pooling_nhwc_max", _MAXPOOL, _max_pool_slices)])


def max_pool_slices_file(path: Path) -> int:
    return _apply_file(path, max_pool_slices_text)
