"""The CNN family `edgecc search` explores, and the short deterministic training of one candidate.

A candidate is named w{width}-d{depth}-k{kernel}-r{resolution}:

    resolution  the input is average-pooled from 8x8 to r x r first (r = 8 keeps it): the model still takes 8x8
    depth       conv blocks; block i has width * 2**i filters, a k x k conv ('same' padding), ReLU, a 2x2 max pool
    then        flatten and one dense layer to the classes

    >>> c = Candidate.parse("w8-d2-k3-r8")                  # doctest: +SKIP
    >>> net = c.build(); net(torch.zeros(1, 1, 8, 8)).shape  # doctest: +SKIP
    torch.Size([1, 10])
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from edgecc.errors import UsageError

EPOCHS = 15
# from the cheapest to the widest: one-conv models at 4x4 and 8x8, two-conv models of growing width and kernel
SPACES = {
    "small": ("w4-d1-k3-r4", "w4-d1-k3-r8", "w8-d1-k3-r8", "w4-d2-k3-r8", "w8-d2-k3-r8", "w8-d2-k5-r8",
              "w16-d2-k3-r8", "w16-d3-k3-r8"),
    "full": tuple(f"w{w}-d{d}-k{k}-r{r}" for w in (4, 8, 16) for d in (1, 2, 3) for k in (3, 5) for r in (8, 4)
                  if r >> d >= 1),
}
_NAME = re.compile(r"w(\d+)-d(\d+)-k(\d+)-r(\d+)")


class SearchNet(nn.Module):
    """A candidate of edgecc search's CNN family (see the module docstring); input (N, 1, 8, 8)."""

    def __init__(self, width: int, depth: int, kernel: int, resolution: int, classes: int = 10, size: int = 8):
        super().__init__()
        layers = [nn.AvgPool2d(size // resolution)] if resolution < size else []
        channels, side = 1, resolution
        for i in range(depth):
            out = width * 2 ** i
            layers += [nn.Conv2d(channels, out, kernel, padding=kernel // 2), nn.ReLU(), nn.MaxPool2d(2)]
            channels, side = out, side // 2
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels * side * side, classes)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


@dataclass(frozen=True)
class Candidate:
    width: int
    depth: int
    kernel: int
    resolution: int

    @property
    def name(self) -> str:
        return f"w{self.width}-d{self.depth}-k{self.kernel}-r{self.resolution}"

    @classmethod
    def parse(cls, text: str) -> Candidate:
        m = _NAME.fullmatch(text.strip())
        if not m:
            raise UsageError(f"candidate {text!r}: write it as wWIDTH-dDEPTH-kKERNEL-rRESOLUTION, e.g. w8-d2-k3-r8")
        c = cls(*map(int, m.groups()))
        if c.width < 1 or c.kernel < 1 or c.kernel % 2 == 0 or c.resolution not in (2, 4, 8) or c.depth < 1 \
                or c.resolution >> c.depth < 1:
            raise UsageError(f"candidate {text}: width >= 1, an odd kernel, resolution 2, 4 or 8, and depth >= 1 "
                             "with one 2x2 pool per block (resolution / 2**depth >= 1)")
        return c

    def build(self) -> SearchNet:
        return SearchNet(self.width, self.depth, self.kernel, self.resolution)


def parse_space(space: str) -> list[Candidate]:
    """A named space (small, full) or a comma-separated list of candidate names."""
    names = SPACES.get(space) or tuple(s for s in space.split(",") if s.strip())
    if not names:
        raise UsageError(f"--space {space!r}: give {', '.join(SPACES)} or candidate names like w8-d2-k3-r8")
    cands = [Candidate.parse(n) for n in names]
    return list(dict.fromkeys(cands))


def train_candidate(c: Candidate, epochs: int = EPOCHS):
    """The candidate trained on digits' fit split (seeded, one thread), cached by its name and the training setup."""
    from pathlib import Path

    import edgecc.models.training as training
    from edgecc.models.digits_pair import fit_calibration_split

    s = fit_calibration_split()
    key = training.weights_key(Path(__file__), Path(training.__file__), c.name, epochs)
    return training.cached_trained(f"search-{c.name}", key, c.build,
                                   lambda: training.train_classifier(c.build, s["x_fit"], s["y_fit"], epochs))
