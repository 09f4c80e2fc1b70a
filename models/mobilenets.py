"""MobileNets for the edge: MobileNetV3-small (torchvision's layer structure, written here so nothing is
downloaded) and MLPerf Tiny's visual wake words MobileNetV1 (alpha 0.25, 96x96, person / no person)."""

from __future__ import annotations

import torch
from torch import nn

from edgecc.models.vision import conv_bn
from edgecc.models.zoo import register_model


def make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding: to a multiple of `divisor`, never more than 10% below `v`."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        squeeze = make_divisible(channels // 4)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x):
        s = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * nn.functional.hardsigmoid(self.fc2(torch.relu(self.fc1(s))))


class InvertedResidualV3(nn.Module):
    def __init__(self, cin, k, expanded, cout, se, act, stride):
        super().__init__()
        layers = [] if expanded == cin else [conv_bn(cin, expanded, 1, act=act)]
        layers.append(conv_bn(expanded, expanded, k, stride, groups=expanded, act=act))
        if se:
            layers.append(SqueezeExcite(expanded))
        layers.append(conv_bn(expanded, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV3Small(nn.Module):
    """torchvision's mobilenet_v3_small (width 1.0): 2,542,856 parameters for 1000 classes."""

    RE, HS = nn.ReLU, nn.Hardswish
    # (input channels, kernel, expanded channels, output channels, squeeze-excite, activation, stride)
    SETTINGS = [(16, 3, 16, 16, True, RE, 2), (16, 3, 72, 24, False, RE, 2), (24, 3, 88, 24, False, RE, 1),
                (24, 5, 96, 40, True, HS, 2), (40, 5, 240, 40, True, HS, 1), (40, 5, 240, 40, True, HS, 1),
                (40, 5, 120, 48, True, HS, 1), (48, 5, 144, 48, True, HS, 1), (48, 5, 288, 96, True, HS, 2),
                (96, 5, 576, 96, True, HS, 1), (96, 5, 576, 96, True, HS, 1)]

    def __init__(self, num_classes=1000, last_channel=1024):
        super().__init__()
        layers = [conv_bn(3, 16, 3, 2, act=nn.Hardswish)]
        layers += [InvertedResidualV3(*s) for s in self.SETTINGS]
        layers.append(conv_bn(96, 576, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(576, last_channel), nn.Hardswish(), nn.Dropout(0.2),
                                        nn.Linear(last_channel, num_classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


@register_model("mobilenetv3-small", [(1, 3, 224, 224)],
                "MobileNetV3-small 1.0 (torchvision architecture, 224x224, hardswish + squeeze-excite)",
                tags=("large",))
def mobilenetv3_small():
    return MobileNetV3Small()


@register_model("mobilenetv3-small-96", [(1, 3, 96, 96)],
                "MobileNetV3-small 1.0 at 96x96 with 10 classes (an edge-sized input)", tags=("tiny",))
def mobilenetv3_small_96():
    return MobileNetV3Small(num_classes=10)


class MobileNetV1(nn.Module):
    """MLPerf Tiny's visual wake words model: MobileNetV1 at width alpha, Keras-style layers (every conv has a
    bias and is followed by BatchNorm and ReLU), global average pool, dense to 2 classes."""

    PLAN = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]

    def __init__(self, alpha=0.25, num_classes=2):
        super().__init__()
        c = int(32 * alpha)
        layers = [nn.Conv2d(3, c, 3, 2, 1), nn.BatchNorm2d(c), nn.ReLU()]
        for width, stride in self.PLAN:
            out = int(width * alpha)
            layers += [nn.Conv2d(c, c, 3, stride, 1, groups=c), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.Conv2d(c, out, 1), nn.BatchNorm2d(out), nn.ReLU()]
            c = out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


@register_model("vww-mobilenetv1", [(1, 3, 96, 96)],
                "MLPerf Tiny visual wake words MobileNetV1 0.25 (96x96, person / no person)",
                tags=("tiny", "mlperf-tiny"))
def vww_mobilenetv1():
    return MobileNetV1()
