"""Models for the squeeze tests: one Torch-Pruning cannot trace correctly (a channel split it does not follow)."""

import torch
from torch import nn


class _Split(nn.Module):
    """conv's 16 channels are split in two halves that are multiplied together: the halves are coupled channel by
    channel, which Torch-Pruning's dependency graph does not see through torch.chunk."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3, padding=1)
        self.mix = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 64, 10)

    def forward(self, x):
        a, b = torch.chunk(self.conv(x), 2, dim=1)
        return self.fc(torch.flatten(self.mix(a) * b, 1))


def split_channels():
    torch.manual_seed(0)
    return _Split(), (torch.randn(1, 1, 8, 8),)
