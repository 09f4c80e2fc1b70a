"""Models with ops one backend cannot lower (checked against torch-mlir 20261001 and TVM 0.27)."""

import torch


class Fmod(torch.nn.Module):  # torch-mlir has no linalg lowering of aten.fmod.Scalar; TVM converts it
    def forward(self, x):
        return torch.fmod(x, 0.3) + 1.0


class LogCumSumExp(torch.nn.Module):  # TVM's Relax frontend has no logcumsumexp; torch-mlir lowers it
    def forward(self, x):
        return torch.logcumsumexp(x, 1)


def fmod():
    return Fmod(), (torch.randn(1, 16),)


def logcumsumexp():
    return LogCumSumExp(), (torch.randn(1, 16),)
