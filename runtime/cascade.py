"""The big/little cascade's policy and its host runner: the little model answers when it is confident enough,
otherwise the same input goes to the big one.

Policies (the score is computed from the little model's logits; the little answer stands when score >= threshold):

    score-margin   softmax top-1 probability minus top-2 (Park et al., CODES+ISSS 2015)
    max-prob       softmax top-1 probability

The Cortex-M firmware computes the same score in C (runtime/c/src/cascade.c) and the device-side run.sh with
cascade_policy.py; this module is what the host runner and the calibration use.

    >>> score(np.array([[2.0, 0.0, 0.0]]), "score-margin").round(3)
    array([0.638])
"""

from __future__ import annotations

import math
import time

import numpy as np

POLICIES = ("score-margin", "max-prob")
LITTLE, BIG = 0, 1  # which model answered, as the firmware reports it
WHO = ("little", "big")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (N, C) -> (N, C)."""
    z = np.asarray(logits, np.float64).reshape(len(logits), -1)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def score(logits: np.ndarray, policy: str) -> np.ndarray:
    """The little model's confidence per row: the top-1 minus top-2 softmax probability, or the top-1 probability."""
    p = np.sort(softmax(logits), axis=1)
    if policy == "score-margin":
        return p[:, -1] - (p[:, -2] if p.shape[1] > 1 else 0.0)
    if policy == "max-prob":
        return p[:, -1]
    raise ValueError(f"unknown cascade policy {policy!r}; expected one of {', '.join(POLICIES)}")


def score_one(logits: np.ndarray, policy: str) -> float:
    """score() of one row in plain Python floats: a few microseconds, where numpy's per-call overhead would cost
    more than a small model's inference on a host CPU."""
    z = [float(v) for v in np.ravel(logits)]
    top = max(z)
    e = sorted(math.exp(v - top) for v in z)
    total = math.fsum(e)
    if policy == "score-margin":
        return (e[-1] - (e[-2] if len(e) > 1 else 0.0)) / total
    return e[-1] / total


def decide(little_logits: np.ndarray, policy: str, threshold: float) -> np.ndarray:
    """Per row, which model answers: LITTLE where the score reaches the threshold, else BIG."""
    return np.where(score(little_logits, policy) >= threshold, LITTLE, BIG)


class HostCascadeRunner:
    """Runs a cascade of two bundles' runners here (host IREE / TVM): the little one, then the big one where the
    policy says so. `run_many(x)` returns (outputs, which model answered, wall-clock ms per image)."""

    def __init__(self, little_runner, big_runner, policy: str, threshold: float):
        self.little, self.big, self.policy, self.threshold = little_runner, big_runner, policy, threshold
        self.where = little_runner.where

    def run(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """(the answering model's output, LITTLE or BIG) for one sample (batch 1)."""
        out = self.little.run([x])[0]
        if score_one(out, self.policy) >= self.threshold:
            return out, LITTLE
        return self.big.run([x])[0], BIG

    def run_many(self, x: np.ndarray, repeats: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every sample through the cascade; its wall-clock ms is the fastest of `repeats` passes (a shared machine's
        scheduling noise only ever adds time)."""
        self.little.run([x[:1]])  # warm-up: the first call of a runtime pays its one-time setup
        self.big.run([x[:1]])
        outs, who, ms = [], [], np.full(len(x), np.inf)
        for rep in range(repeats):
            for i in range(len(x)):
                t0 = time.perf_counter_ns()
                o, w = self.run(x[i:i + 1])
                ms[i] = min(ms[i], (time.perf_counter_ns() - t0) / 1e6)
                if rep == 0:
                    outs.append(o)
                    who.append(w)
        return np.concatenate(outs), np.asarray(who), ms
