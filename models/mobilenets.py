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


class InvertedResidualV2(nn.Module):
    """MobileNetV2's block (1x1 expand, 3x3 depthwise, 1x1 linear projection, identity shortcut at stride 1)."""

    def __init__(self, cin, cout, stride, expand, act=nn.ReLU):
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [conv_bn(cin, hidden, 1, act=act)]
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act=act), conv_bn(hidden, cout, 1, act=None)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2Mcu(nn.Module):
    """MobileNetV2 at width `alpha` for microcontrollers, as MCUNet / MCUNetV2 benchmark it: torchvision's block
    settings, channels rounded to multiples of 8, ReLU instead of ReLU6 (int8 quantization here fuses ReLU, and
    a calibrated int8 ReLU6 is a clamp of the same kind). `blocks` truncates the network (tests)."""

    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, alpha=0.35, num_classes=10, blocks=None, last_channel=1280):
        super().__init__()
        widths = [make_divisible(32 * alpha)]
        layers = [conv_bn(3, widths[0], 3, 2)]
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                widths.append(make_divisible(c * alpha))
                layers.append(InvertedResidualV2(widths[-2], widths[-1], s if i == 0 else 1, t))
        if blocks is None:
            layers.append(conv_bn(widths[-1], last_channel, 1))
            widths.append(last_channel)
        else:
            layers, widths = layers[:1 + blocks], widths[:1 + blocks]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


@register_model("mobilenetv2-mcu", [(1, 3, 144, 144)],
                "MobileNetV2 0.35 at 144x144, 10 classes (MCUNet's MCU-sized MobileNetV2; ReLU for int8)",
                tags=("tiny",))
def mobilenetv2_mcu():
    return MobileNetV2Mcu()
