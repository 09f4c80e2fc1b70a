"""fold_batchnorm: conv2d / linear (with or without a bias) followed by an inference BatchNorm become one layer
with folded constants, and the built module computes the same as the unfolded one."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tvm = pytest.importorskip("tvm")


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.b1 = torch.nn.BatchNorm2d(6)
        self.c2 = torch.nn.Conv2d(6, 6, 3, padding=1, groups=6)  # depthwise, with a bias
        self.b2 = torch.nn.BatchNorm2d(6)
        self.fc = torch.nn.Linear(6 * 5 * 5, 10)
        self.b3 = torch.nn.BatchNorm1d(10)

    def forward(self, x):
        y = torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))))
        return self.b3(self.fc(y.flatten(1)))


def test_fold_batchnorm_removes_every_batchnorm_and_keeps_the_numbers():
    from tvm import relax

    from edgecc.compiler.backends.tvm.fold_batchnorm import fold_batchnorm
    from edgecc.compiler.backends.tvm.importer import import_relax
    from edgecc.compiler.frontends import load_model

    torch.manual_seed(0)
    net = Net()
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.2, 3)
            m.weight.data.uniform_(0.5, 2)
    x = torch.randn(1, 3, 5, 5)
    mod, _ = import_relax(load_model(net.eval(), (x,)))
    folded = fold_batchnorm(mod)
    assert mod["main"].script(show_meta=False).count("batch_norm") == 3
    assert "batch_norm" not in folded["main"].script(show_meta=False)
    vm = relax.VirtualMachine(tvm.compile(folded, target="llvm"), tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(x.numpy()))[0].numpy()
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
