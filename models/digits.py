"""digits-cnn: a small CNN trained here, in seconds, on real data — scikit-learn's handwritten digits.

The dataset is 1,797 real 8x8 grayscale images of the digits 0-9 (UCI ML hand-written digits, shipped inside
scikit-learn, nothing downloaded). Split: sklearn `train_test_split(test_size=0.2, random_state=0, stratify=y)`,
1,437 training and 360 held-out images; pixels 0..16 are scaled to 0..1. Training is seeded and single-threaded
(Adam, 40 epochs, batch 64: a few seconds on one core) so the weights are the same on every machine with the same
torch; they are cached as a plain .npz (no pickle) under ~/.cache/edgecc, keyed by this file's hash.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgecc.models.zoo import register_model

TEST_FRACTION, SPLIT_SEED, TRAIN_SEED = 0.2, 0, 0


@lru_cache(maxsize=1)
def load_digits_split() -> dict[str, np.ndarray]:
    """{"x_train", "y_train", "x_test", "y_test"}: float32 (N, 1, 8, 8) images in [0, 1] and int64 labels."""
    from edgecc.errors import require

    require("sklearn", "scikit-learn", "the digits dataset")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None, :, :]
    y = d.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED,
                                                        stratify=y)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


class DigitsCNN(nn.Module):
    """3x3 convs of 16 and 32 filters, two 2x2 max pools, one dense layer: 8x8 -> 10 classes (~15k params)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


def train_digits_cnn(epochs: int = 40) -> DigitsCNN:
    """Train DigitsCNN on the training split, deterministically (seeded, one thread)."""
    data = load_digits_split()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a fixed summation order: the same weights on every run
    try:
        torch.manual_seed(TRAIN_SEED)
        net = DigitsCNN()
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        x, y = torch.from_numpy(data["x_train"]), torch.from_numpy(data["y_train"])
        gen = torch.Generator().manual_seed(TRAIN_SEED)
        net.train()
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=gen).split(64):
                opt.zero_grad()
                nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval()


def trained_digits_cnn() -> DigitsCNN:
    """The trained model: from the cache when this file and torch are unchanged, else trained now (seconds)."""
    from edgecc.models.training import cached_trained, weights_key

    return cached_trained("digits-cnn", weights_key(Path(__file__)), DigitsCNN, train_digits_cnn)


def accuracy(predict, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of `predict(batch) -> logits` on (x, y)."""
    logits = predict(x)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def _first_test_image():
    return (torch.from_numpy(load_digits_split()["x_test"][:1].copy()),)


@register_model("digits-cnn", [(1, 1, 8, 8)], "small CNN trained here on scikit-learn's real 8x8 handwritten digits",
                tags=("tiny",), dataset="digits", example_inputs=_first_test_image)
def digits_cnn():
    return trained_digits_cnn()
