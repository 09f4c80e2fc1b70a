"""Keyword spotting: MLPerf Tiny's DS-CNN (49x10 MFCC input, 12 classes)."""

from __future__ import annotations

from torch import nn

from edgecc.models.vision import conv_bn
from edgecc.models.zoo import register_model


class DSCNN(nn.Module):
    """MLPerf Tiny KWS reference: a 10x4 stride-2 conv, four depthwise-separable blocks of 64, avg pool, dense."""

    def __init__(self, num_classes=12, width=64):
        super().__init__()
        # Keras 'same' padding for a 10x4 kernel at stride 2 on 49x10 gives 25x5: PyTorch padding (5, 1).
        self.stem = nn.Sequential(nn.Conv2d(1, width, (10, 4), 2, (5, 1), bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[nn.Sequential(conv_bn(width, width, 3, groups=width), conv_bn(width, width, 1))
                                      for _ in range(4)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.blocks(self.stem(x))).flatten(1))


@register_model("ds-cnn", [(1, 1, 49, 10)], "MLPerf Tiny keyword spotting DS-CNN (49x10 MFCC, 12 classes)",
                tags=("tiny", "mlperf-tiny"))
def ds_cnn():
    return DSCNN()
