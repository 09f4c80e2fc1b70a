"""Shared helpers of the text rewrites: they work on the printed linalg module, one op a line as torch-mlir
prints them; an op in another form is left as it was (correct, just slower)."""

from __future__ import annotations

import re
from pathlib import Path

_CONV = re.compile(
    r"^(?P<ind>\s*)(?P<res>%[\w.]+) = linalg\.conv_2d_nchw_fchw \{dilations = dense<1> : vector<2xi64>, "
    r"strides = dense<(?P<s>\d+)> : vector<2xi64>\} ins\((?P<x>%[\w.]+), (?P<w>%[\w.]+) : "
    r"tensor<(?P<xs>[0-9x]+)x(?P<et>\w+)>, tensor<(?P<ws>[0-9x]+)x(?P=et)>\) outs\((?P<o>%[\w.]+) : "
    r"tensor<(?P<os>[0-9x]+)x(?P=et)>\) -> tensor<(?P=os)x(?P=et)>\s*$")



def _dims(m: re.Match, key: str) -> list[int]:
    return [int(v) for v in m[key].split("x")]


def _apply(text: str, rules) -> tuple[str, int]:
    """Rewrite each line the first matching rule (needle, pattern, rewrite) turns into lines; (text, count)."""
    out, n = [], 0
    for line in text.splitlines():
        for needle, pattern, rewrite in rules:
            m = pattern.match(line) if needle in line else None
            lines = rewrite(m, n) if m else None
            if lines:
                out.extend(lines)
                n += 1
                break
        else:
            out.append(line)
    return "\n".join(out) + "\n", n


def _apply_file(path: Path, rewrite_text_fn) -> int:
    text, n = rewrite_text_fn(path.read_text())
    if n:
        path.write_text(text)
    return n


# a 2-D linalg.matmul without attributes (so without a data-tiling hint or a compilation_info yet)
_MATMUL = re.compile(r"^(?P<head>.*= linalg\.matmul) ins\(%[\w.]+, %[\w.]+ : "
                     r"tensor<(?P<m>\d+)x(?P<k>\d+)x(?P<lhs>\w+)>, tensor<\d+x(?P<n>\d+)x(?P<rhs>\w+)>\)")



def _f32(m: re.Match) -> bool:
    return m["lhs"] == m["rhs"] == "f32"
