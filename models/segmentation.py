"""Segmentation: a small U-Net (Ronneberger et al. 2015's shape at edge widths: three 2x2 max-pool downsamplings,
2x2 up-convolutions, skip connections concatenated, a 1x1 head giving per-pixel class logits)."""

from __future__ import annotations

import torch
from torch import nn

from edgecc.models.vision import conv_bn
from edgecc.models.zoo import register_model


def double_conv(cin, cout):
    return nn.Sequential(conv_bn(cin, cout, 3), conv_bn(cout, cout, 3))


class UNet(nn.Module):
    def __init__(self, in_channels=3, num_classes=2, widths=(8, 16, 32, 64)):
        super().__init__()
        self.down = nn.ModuleList()
        c = in_channels
        for w in widths[:-1]:
            self.down.append(double_conv(c, w))
            c = w
        self.bottom = double_conv(c, widths[-1])
        self.up, self.merge = nn.ModuleList(), nn.ModuleList()
        c = widths[-1]
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            self.merge.append(double_conv(2 * w, w))
            c = w
        self.head = nn.Conv2d(c, num_classes, 1)

    def forward(self, x):
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = nn.functional.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)


@register_model("unet-small", [(1, 3, 64, 64)], "small segmentation U-Net (widths 8/16/32/64, 64x64, 2 classes)",
                task="segmentation", tags=("tiny",))
def unet_small():
    return UNet()
