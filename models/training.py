"""Seeded, single-threaded training of small classifiers on a dataset split, and a cache of the trained weights as
plain .npz (no pickle) under ~/.cache/edgecc, keyed by what produced them.

The same code, seed and torch give the same weights on every machine: one thread fixes the summation order, the
shuffling comes from a seeded generator. Used by the digits cascade pair (digits_pair.py) and `edgecc search`.

    >>> net = train_classifier(lambda: torch.nn.Linear(64, 10), x, y, epochs=5)   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np


def cache_root() -> Path:
    return Path(os.environ.get("EDGECC_CACHE", Path.home() / ".cache" / "edgecc"))


def train_classifier(make: Callable, x: np.ndarray, y: np.ndarray, epochs: int = 40, seed: int = 0,
                     lr: float = 3e-3, batch: int = 64):
    """`make()` trained with Adam and cross entropy on (x, y), deterministically; returned in eval mode."""
    import torch
    from torch import nn

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a fixed summation order: the same weights on every run
    try:
        torch.manual_seed(seed)
        net = make()
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))
        gen = torch.Generator().manual_seed(seed)
        net.train()
        for _ in range(epochs):
            for idx in torch.randperm(len(xt), generator=gen).split(batch):
                opt.zero_grad()
                nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval()


def weights_key(*parts) -> str:
    """A cache key from the files and values that determine the weights (and torch's version)."""
    import torch

    h = hashlib.sha256(torch.__version__.encode())
    for p in parts:
        h.update(Path(p).read_bytes() if isinstance(p, Path) else repr(p).encode())
    return h.hexdigest()[:16]


def cached_trained(name: str, key: str, make: Callable, train: Callable):
    """The module `make()` with the weights `train()` produces, from the cache when `key` is unchanged."""
    import torch

    path = cache_root() / f"{name}-{key}.npz"
    net = make()
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                net.load_state_dict({k: torch.from_numpy(f[k]) for k in f.files})
            return net.eval()
        except Exception:  # a damaged cache entry is retrained, not trusted
            path.unlink(missing_ok=True)
    net = train()
    save_state(net, path)
    return net.eval()


def save_state(net, path: Path) -> None:
    """The module's state dict as a plain .npz, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **{k: v.detach().numpy() for k, v in net.state_dict().items()})
    os.replace(tmp, path)
