import torch


def build():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 6 * 6, 5))
    return net, (torch.randn(1, 1, 8, 8),)


def broken():
    raise RuntimeError("weights file not found: /nowhere/weights.bin")


def not_a_pair():
    return torch.nn.Linear(2, 2)


class _TwoHeads(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.a(x), self.b(x)


def two_outputs():
    torch.manual_seed(0)
    return _TwoHeads(), (torch.randn(1, 4),)
