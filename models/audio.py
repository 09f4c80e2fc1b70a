"""Audio: keyword spotting (MLPerf Tiny's DS-CNN; GRU and LSTM spotters over the same 49x10 MFCC frames) and
MLPerf Tiny's ToyADMOS anomaly-detection autoencoder."""

from __future__ import annotations

from itertools import pairwise

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


class RecurrentKWS(nn.Module):
    """A recurrent keyword spotter ("Hello Edge", Zhang et al. 2017): a GRU or LSTM over the 49 MFCC frames, the
    last frame's hidden state into a dense layer. The input is (1, 49, 10): batch, frames, coefficients."""

    def __init__(self, cell=nn.GRU, hidden=64, layers=1, num_classes=12, features=10):
        super().__init__()
        self.rnn = cell(features, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


@register_model("gru-kws", [(1, 49, 10)], "GRU keyword spotter (49x10 MFCC frames, 1x64 GRU, 12 classes)",
                tags=("tiny",))
def gru_kws():
    return RecurrentKWS(nn.GRU)


@register_model("lstm-kws", [(1, 49, 10)], "LSTM keyword spotter (49x10 MFCC frames, 1x64 LSTM, 12 classes)",
                tags=("tiny",))
def lstm_kws():
    return RecurrentKWS(nn.LSTM)


def dense_bn_relu(cin, cout):
    return [nn.Linear(cin, cout), nn.BatchNorm1d(cout), nn.ReLU()]


class ToyAdmosAutoencoder(nn.Module):
    """MLPerf Tiny anomaly detection reference (DCASE 2020 task 2 baseline): 5 frames x 128 log-mel bins = 640
    inputs, four dense 128 + BatchNorm + ReLU, an 8-wide bottleneck, four more 128s, a linear 640 reconstruction
    (the anomaly score is its error). 267,928 trainable parameters, 269,992 with the BatchNorm statistics."""

    def __init__(self, features=640, width=128, bottleneck=8):
        super().__init__()
        dims = [features] + [width] * 4 + [bottleneck] + [width] * 4
        layers = []
        for cin, cout in pairwise(dims):
            layers += dense_bn_relu(cin, cout)
        self.body = nn.Sequential(*layers, nn.Linear(width, features))

    def forward(self, x):
        return self.body(x)


@register_model("toyadmos-ae", [(1, 640)], "MLPerf Tiny anomaly detection autoencoder (ToyADMOS, 640 -> 8 -> 640)",
                task="anomaly-detection", tags=("tiny", "mlperf-tiny"))
def toyadmos_ae():
    return ToyAdmosAutoencoder()
