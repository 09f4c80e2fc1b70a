"""An inverted-residual tail like MobileNetV2's last stage (7x7, 960 channels): its projection is a matmul with a
960-long reduction, which the host target data-tiles (iree/passes/matmul_data_tiling_hints.py)."""
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(16, 960, 1, bias=False), nn.BatchNorm2d(960), nn.ReLU6(),
        nn.Conv2d(960, 960, 3, padding=1, groups=960, bias=False), nn.BatchNorm2d(960), nn.ReLU6(),
        nn.Conv2d(960, 40, 1, bias=False), nn.BatchNorm2d(40),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(40, 10))
    for m in net:
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
    return net.eval(), (torch.randn(1, 16, 7, 7),)
