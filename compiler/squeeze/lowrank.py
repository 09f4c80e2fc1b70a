"""Low-rank factorization (truncated SVD) of convolutions and linear layers, rank chosen by kept energy.

A k x k conv with weight W (O, I, k, k) is the matrix W2 (O, I*k*k). Its SVD W2 = U S V^T truncated to rank r
becomes two convs: a k x k conv I -> r with weight V_r^T (same stride, padding, dilation, no bias) and a 1x1 conv
r -> O with weight U_r S_r and the original bias. A linear layer (O, I) becomes Linear(I, r) then Linear(r, O).
r is the smallest rank whose singular values keep `energy` of sum(s^2). MACs go from O*I*k*k to r*(I*k*k + O) per
output pixel, so a layer is factorized only when r*(I*k*k + O) < O*I*k*k; grouped (depthwise) convs are left as they
are (they are already rank-limited per channel). The result is plain Conv2d / Linear modules: every backend and the
int8 stage take it.

    >>> net, info = factorize_lowrank(net, energy=0.9)                               # doctest: +SKIP
    >>> info["layers"]["fc"]                                                         # doctest: +SKIP
    {'rank': 6, 'full_rank': 10, 'macs_fraction': 0.52}
"""

from __future__ import annotations

import copy

import numpy as np


def factorizable(m):
    """The (O, I*k*k) weight matrix of a conv (groups 1) or linear layer, as numpy; None for any other module."""
    from torch import nn

    if isinstance(m, nn.Linear):
        return m.weight.detach().numpy().astype(np.float64)
    if isinstance(m, nn.Conv2d) and m.groups == 1 and m.padding_mode == "zeros":
        return m.weight.detach().numpy().reshape(m.out_channels, -1).astype(np.float64)
    return None


def rank_for_energy(w2d: np.ndarray, energy: float) -> int:
    """Smallest rank r whose top-r singular values keep `energy` (0..1) of the sum of squared singular values."""
    s = np.linalg.svd(w2d, compute_uv=False)
    total = float(np.sum(s ** 2))
    if total == 0.0:
        return 1
    kept = np.cumsum(s ** 2) / total
    return int(min(len(s), np.searchsorted(kept, energy - 1e-12) + 1))


def _factor(m, w2d: np.ndarray, r: int):
    """The two-layer nn.Sequential replacing `m` with its rank-r SVD."""
    import torch
    from torch import nn

    u, s, vt = np.linalg.svd(w2d, full_matrices=False)
    first = vt[:r]  # (r, I*k*k)
    second = u[:, :r] * s[:r]  # (O, r)
    bias = m.bias is not None
    if isinstance(m, nn.Linear):
        a, b = nn.Linear(m.in_features, r, bias=False), nn.Linear(r, m.out_features, bias=bias)
        a.weight.data = torch.from_numpy(first.astype(np.float32))
        b.weight.data = torch.from_numpy(second.astype(np.float32))
    else:
        a = nn.Conv2d(m.in_channels, r, m.kernel_size, m.stride, m.padding, m.dilation, bias=False)
        b = nn.Conv2d(r, m.out_channels, 1, bias=bias)
        a.weight.data = torch.from_numpy(first.reshape(r, *m.weight.shape[1:]).astype(np.float32))
        b.weight.data = torch.from_numpy(second.reshape(m.out_channels, r, 1, 1).astype(np.float32))
    if bias:
        b.bias.data = m.bias.detach().clone()
    return nn.Sequential(a, b)


def _set_module(root, name: str, new) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


def factorize_lowrank(module, energy: float = 0.9):
    """(a factorized copy of `module`, what was done): every conv/linear whose truncated SVD keeping `energy` of
    the spectrum lowers its MACs becomes two layers; the others are kept (and listed with the reason)."""
    net = copy.deepcopy(module).eval()
    done, kept = {}, {}
    for name, m in list(net.named_modules()):
        w2d = factorizable(m)
        if w2d is None or not name:
            continue
        r = rank_for_energy(w2d, energy)
        o, k = w2d.shape
        if r * (o + k) >= o * k:
            kept[name] = f"rank {r} of {min(o, k)} keeps {energy:g} of the energy but would not lower MACs"
            continue
        _set_module(net, name, _factor(m, w2d, r))
        done[name] = {"rank": r, "full_rank": int(min(o, k)), "macs_fraction": round(r * (o + k) / (o * k), 3)}
    return net, {"method": "truncated SVD", "energy": energy, "layers": done, "kept": kept}
