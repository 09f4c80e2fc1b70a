"""A small net with every op edgecc's NHWC rewrite touches: depthwise conv (strides 1 and 2), max and
average pooling, between regular convolutions."""
import torch


def build():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.nn.ReLU(),          # depthwise, stride 1
        torch.nn.MaxPool2d(3, stride=2, padding=1),
        torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8),                 # depthwise, stride 2
        torch.nn.Conv2d(8, 16, 1), torch.nn.ReLU(),
        torch.nn.AvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(16 * 2 * 2, 10))
    return net.eval(), (torch.randn(1, 3, 16, 16),)
