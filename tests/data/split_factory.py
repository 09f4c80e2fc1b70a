"""A small CNN whose cut tensor shrinks stage by stage (8 KB, 2 KB, 1 KB): where `edgecc split --at auto` cuts
depends on the link, which is what the split tests check."""

import torch


class Shrinking(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = torch.nn.Conv2d(8, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        y = torch.nn.functional.max_pool2d(torch.relu(self.c1(x)), 2)
        return self.fc(torch.relu(self.c2(y)).flatten(1))


def build():
    torch.manual_seed(0)
    return Shrinking().eval(), (torch.randn(1, 1, 16, 16),)


class Residual(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x) + x * 2


def residual():
    """Every node but the last has two tensors crossing after it (x and relu(x)): nothing to cut."""
    return Residual(), (torch.randn(1, 4),)
