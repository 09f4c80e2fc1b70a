"""Strided convolutions with few input channels, the ones edgecc's space-to-depth rewrite touches: a 7x7/2 RGB
stem (kernel padded 7 -> 8), a 5x5/3 conv on one channel (9 phase channels), on odd image sizes so the input
needs padding and slicing; a strided 1x1 convolution (the NHWC rewrite subsamples its input); and a padded max
pool over negative values (with data tiling on it becomes a max of strided slices; a 0 pad would show)."""
import torch


def build():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 7, stride=2, padding=3), torch.nn.ReLU(),     # 3*2*2 = 12 channels
        torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),              # dense 3x3: not rewritten
        torch.nn.Conv2d(16, 16, 1, stride=2), torch.nn.ReLU(),               # strided 1x1: subsampled, then 1x1
        torch.nn.Conv2d(16, 1, 1),
        torch.nn.Conv2d(1, 8, 5, stride=3, padding=1),                       # 1*3*3 = 9 channels
        torch.nn.MaxPool2d(3, stride=2, padding=1),                          # 3x3 -> 2x2, border windows padded
        torch.nn.Flatten(), torch.nn.LazyLinear(10))
    x = torch.randn(1, 3, 37, 35)
    net(x)  # materialize the lazy layer
    return net.eval(), (x,)
