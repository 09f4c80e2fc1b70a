"""Structured channel pruning with Torch-Pruning (DepGraph): coupled channels are removed together, for real.

Torch-Pruning traces the model, groups every layer whose channels are coupled (a conv's output channels with the
BatchNorm after it, the next conv's input channels, the residual adds that tie several convs), ranks each group by
an importance and removes the lowest-ranked channels from every member. The result is a smaller plain nn.Module
(fewer Conv2d / Linear channels, not masks), so its MACs and its arena drop on every backend.

    ratio        fraction of each layer's output channels removed (0 < ratio < 1), Torch-Pruning's pruning_ratio
    layers       per-layer ratios over it: {"features.0": 0.25}; 0 keeps a layer's output channels
    round_to     keep each pruned layer's channel count a multiple of this (8, 16: the target's SIMD width)
    importance   "magnitude" (L2 norm of the weights) or "taylor" (|w * dL/dw| on the squeeze data: cross entropy
                 with the labels, or with the original model's own top-1 when the data has none)

The layer that produces the model's output keeps its channels (they are the model's outputs).

    >>> net, info = prune_channels(net, torch.randn(1, 1, 8, 8), ratio=0.5)          # doctest: +SKIP
    >>> info["channels"]["features.0"]                                               # doctest: +SKIP
    [16, 8]
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import numpy as np

from edgecc.errors import ModelError, first_line, require

IMPORTANCES = ("magnitude", "taylor")
TAYLOR_SAMPLES = 256


def _prunable(module) -> dict:
    from torch import nn

    return {n: m for n, m in module.named_modules() if n and isinstance(m, (nn.Conv2d, nn.Conv1d, nn.Linear))}


@contextmanager
def _layer_tracker(module):
    """Yields a list of the leaf layers a forward pass entered, in order; a name gets a trailing "/" once the layer
    returned (so the last entry says where a failing pass stopped: in that layer, or after it)."""
    entered: list[str] = []
    leaves = [(n, m) for n, m in module.named_modules() if n and not list(m.children())]
    hooks = [m.register_forward_pre_hook(lambda _m, _a, n=n: entered.append(n)) for n, m in leaves]
    hooks += [m.register_forward_hook(lambda _m, _a, _o, n=n: entered.append(n + "/")) for n, m in leaves]
    try:
        yield entered
    finally:
        for h in hooks:
            h.remove()


def _where(entered: list[str]) -> str:
    if not entered:
        return ""
    last = entered[-1]
    return f" after layer {last[:-1]}" if last.endswith("/") else f" in layer {last}"


def output_layer(module, example) -> str | None:
    """The last conv/linear layer a forward pass runs: it produces the output, whose channels must stay."""
    import torch

    layers = _prunable(module)
    with _layer_tracker(module) as entered, torch.no_grad():
        module(example)
    return next((n for n in reversed(entered) if n in layers), None)  # names with "/" are exits


def _channels(module) -> dict[str, list[int]]:
    return {n: [int(getattr(m, "out_channels", getattr(m, "out_features", 0)))] for n, m in _prunable(module).items()}


def _importance(kind: str):
    tp = require("torch_pruning", "torch-pruning==1.6.*", "structured pruning (--squeeze prune)")
    if kind == "magnitude":
        return tp.importance.MagnitudeImportance(p=2)
    return tp.importance.TaylorImportance()


def _taylor_gradients(net, teacher, data, labels) -> None:
    """Fill .grad of every weight with dL/dw on the squeeze data (what TaylorImportance reads)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(data[:TAYLOR_SAMPLES]))
    with torch.no_grad():
        y = torch.from_numpy(labels[:TAYLOR_SAMPLES]) if labels is not None else teacher(x).argmax(1)
    net.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()


def check_prune_options(ratio, layers: dict, importance: str) -> None:
    """One-line ModelErrors for options that cannot work (before any model is touched)."""
    number = lambda r: isinstance(r, (int, float)) and not isinstance(r, bool)  # noqa: E731
    if not number(ratio) or not 0 < ratio < 1:
        raise ModelError(f"prune ratio={ratio!r} is out of range: give the fraction of channels to remove, above 0 "
                         "and below 1 (e.g. prune=0.5)")
    for name, r in layers.items():
        if not number(r) or not 0 <= r < 1:
            raise ModelError(f"prune layers.{name}={r!r} is out of range: give the fraction of its channels to "
                             "remove, 0 (keep them all) or more and below 1")
    if importance not in IMPORTANCES:
        raise ModelError(f"prune importance {importance!r} is not one of {', '.join(IMPORTANCES)}")


def prune_channels(module, example, ratio: float, layers: dict | None = None, importance: str = "magnitude",
                   data=None, labels=None, round_to: int = 1):
    """(a pruned copy of `module`, what was done). See the module docstring for the options."""
    import torch

    layers = dict(layers or {})
    check_prune_options(ratio, layers, importance)
    tp = require("torch_pruning", "torch-pruning==1.6.*", "structured pruning (--squeeze prune)")
    net = copy.deepcopy(module).eval()
    named = _prunable(net)
    unknown = sorted(set(layers) - set(named))
    if unknown:
        raise ModelError(f"prune layers {', '.join(unknown)} are not conv/linear layers of the model; its layers: "
                         f"{', '.join(list(named)[:12])}{' ...' if len(named) > 12 else ''}")
    if importance == "taylor" and data is None:
        raise ModelError("prune importance=taylor needs data: pass --squeeze-data DATASET|DIR")
    before = _channels(net)
    keep = output_layer(net, example)
    phase = "trace"
    with _layer_tracker(net) as entered:
        try:
            pruner = tp.pruner.MetaPruner(
                net, example, importance=_importance(importance), pruning_ratio=ratio,
                pruning_ratio_dict={named[k]: v for k, v in layers.items() if v > 0},
                ignored_layers=[named[k] for k, v in layers.items() if v == 0] + ([named[keep]] if keep else []),
                round_to=round_to if round_to > 1 else None)
            if importance == "taylor":
                _taylor_gradients(net, module.eval(), data, labels)
            pruner.step()
            phase = "run"
            entered.clear()
            with torch.no_grad():
                net(example)
        except Exception as e:
            what = ("cannot trace this model" if phase == "trace" else
                    "did not trace this model's channel coupling: the pruned model fails")
            raise ModelError(f"Torch-Pruning {what}{_where(entered)}: {first_line(e, 200)}; keep the layers that "
                             "feed it out of pruning ([squeeze.prune] layers = {NAME = 0}) or drop the prune "
                             "stage") from e
    net.zero_grad(set_to_none=True)
    channels = {n: before[n] + _channels(net)[n] for n in before if n in _channels(net)}
    if all(c[0] == c[1] for c in channels.values()):
        raise ModelError(f"prune={ratio} removed no channels (every prunable layer of the model is coupled to its "
                         "output); use lowrank instead")
    return net, {"library": f"torch-pruning {tp.__version__}", "ratio": ratio, "importance": importance,
                 "layers": layers, "round_to": round_to, "kept_output_layer": keep,
                 "channels": {n: c for n, c in channels.items() if c[0] != c[1]}}
