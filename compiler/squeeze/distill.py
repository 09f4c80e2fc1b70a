"""Knowledge distillation: fine-tune a pruned or factorized student on the original model's (the teacher's) outputs.

No labels are needed: the teacher's outputs on the squeeze data are the soft targets (Hinton et al.: KL divergence
between the softened distributions, times T^2). With a labelled dataset the loss adds the cross entropy with the
labels: loss = alpha * CE(student, y) + (1 - alpha) * T^2 * KL(teacher_T || student_T). Outputs that are not
(N, classes) logits are matched with the mean squared error instead.

Deterministic: seeded shuffles, one thread (a fixed summation order) while training, Adam; the same student,
data and options give the same weights. `log` gets one progress line per epoch.

    >>> student, info = distill(student, teacher, x_train, y_train, epochs=30)         # doctest: +SKIP
    >>> info["final_loss"]                                                           # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np

from edgecc.errors import ModelError, UsageError


@dataclass(frozen=True)
class DistillOptions:
    epochs: int = 30
    lr: float = 2e-3
    batch: int = 64
    temperature: float = 4.0
    alpha: float = 0.5  # weight of the label loss, when there are labels
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> DistillOptions:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise UsageError(f"unknown distill option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        try:
            o = cls(**{k: type(getattr(cls, k))(v) for k, v in d.items()})
        except (TypeError, ValueError):
            raise UsageError(f"distill options {d} are not numbers") from None
        if o.epochs < 1 or o.batch < 1 or not o.lr > 0 or not o.temperature > 0 or not 0 <= o.alpha <= 1:
            raise UsageError(f"distill options out of range ({d}): epochs, batch >= 1, lr, temperature > 0, "
                             "0 <= alpha <= 1")
        return o


def _loss(s, t, y, o: DistillOptions, classification: bool):
    import torch.nn.functional as F

    if not classification:
        return F.mse_loss(s, t)
    temp = o.temperature
    soft = F.kl_div(F.log_softmax(s / temp, 1), F.log_softmax(t / temp, 1), reduction="batchmean",
                    log_target=True) * temp * temp
    if y is None:
        return soft
    return o.alpha * F.cross_entropy(s, y) + (1 - o.alpha) * soft


def distill(student, teacher, data: np.ndarray, labels: np.ndarray | None = None,
            options: DistillOptions | None = None, log=None):
    """(the fine-tuned copy of `student`, what was done): trained to match `teacher` on `data` (N, ...)."""
    import torch

    if data is None or len(data) == 0:
        raise ModelError("distill needs data: pass --squeeze-data DATASET (digits) or DIR (a folder of .npy "
                         "inputs; no labels needed)")
    o = options or DistillOptions()
    log = log or (lambda msg: None)
    net = copy.deepcopy(student)
    x = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        torch.manual_seed(o.seed)
        with torch.no_grad():
            targets = teacher.eval()(x)
        classification = targets.dim() == 2
        y = torch.from_numpy(labels) if labels is not None and classification else None
        opt = torch.optim.Adam(net.parameters(), lr=o.lr)
        gen = torch.Generator().manual_seed(o.seed)
        net.train()
        for epoch in range(o.epochs):
            total, seen = 0.0, 0
            for idx in torch.randperm(len(x), generator=gen).split(o.batch):
                if len(idx) < 2 < len(x):  # BatchNorm in training mode cannot take a batch of one
                    continue
                opt.zero_grad()
                loss = _loss(net(x[idx]), targets[idx], None if y is None else y[idx], o, classification)
                loss.backward()
                opt.step()
                total, seen = total + float(loss.detach()) * len(idx), seen + len(idx)
            log(f"distill epoch {epoch + 1}/{o.epochs}: loss {total / seen:.4f}")
    finally:
        torch.set_num_threads(threads)
    net.eval()
    return net, {"teacher": "the original model", "samples": int(len(x)), "labels": y is not None,
                 "loss": ("alpha*CE(labels) + (1-alpha)*T^2*KL(teacher)" if y is not None else
                          "T^2*KL(teacher)" if classification else "MSE(teacher)"),
                 **{k: getattr(o, k) for k in DistillOptions.__dataclass_fields__},
                 "final_loss": round(total / seen, 5), "seconds": round(time.perf_counter() - t0, 1)}
