"""The cascade policy on the device (numpy only), shipped in cascade bundles by edgecc.

    python3 cascade_policy.py decide LOGITS.npy score-margin|max-prob THRESHOLD
        exit 0: the little model's answer stands; exit 1: run the big model. Prints the score.
    python3 cascade_policy.py expected LITTLE.json BIG.json TO_BIG
        the expected latency from both models' bench.sh output (iree-benchmark-module or edgecc's TVM runner JSON).

The same score as edgecc.runtime.cascade.score and runtime/c/src/cascade.c.
"""

import json
import sys

import numpy as np


def score(logits, policy):
    z = np.asarray(logits, np.float64).reshape(-1)
    p = np.sort(np.exp(z - z.max()) / np.exp(z - z.max()).sum())
    return p[-1] - (p[-2] if len(p) > 1 else 0.0) if policy == "score-margin" else p[-1]


def median_ms(path):
    with open(path) as f:
        doc = json.load(f)
    if "samples_ms" in doc:
        return float(np.median(doc["samples_ms"]))
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    runs = [b["real_time"] * scale[b.get("time_unit", "ns")] for b in doc["benchmarks"]
            if b.get("run_type", "iteration") == "iteration"]
    return float(np.median(runs))


def main(argv):
    if len(argv) == 4 and argv[0] == "decide":
        s = score(np.load(argv[1], allow_pickle=False), argv[2])
        print(f"edgecc: {argv[2]} {s:.6f} (threshold {argv[3]})")
        return 0 if s >= float(argv[3]) else 1
    if len(argv) == 4 and argv[0] == "expected":
        little, big, to_big = median_ms(argv[1]), median_ms(argv[2]), float(argv[3])
        print(f"edgecc: little p50 {little:.4f} ms, big p50 {big:.4f} ms; cascade expected "
              f"{little + to_big * big:.4f} ms per input ({to_big:.1%} sent to big)")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
