"""The model registry: name -> (factory, example inputs, description).

Weights are random but deterministic (seeded); BatchNorm statistics are calibrated on seeded random data so
activations stay well scaled through deep networks (otherwise ResNet-50's logits collapse to ~1e-6 and every
numerical comparison is meaningless). Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

_REGISTRY: dict[str, ModelSpec] = {}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable  # () -> torch.nn.Module
    input_shapes: tuple[tuple[int, ...], ...]
    description: str
    task: str = "classification"
    tags: tuple[str, ...] = field(default=())
    dataset: str = ""  # a real dataset it was trained on (datasets.py): accuracy is measured on its test split
    example_inputs: Callable | None = None  # () -> inputs tuple; default: seeded random normal

    def factory(self):
        """(module in eval mode, example inputs tuple) — deterministic for a given name."""
        import torch

        torch.manual_seed(0)
        module = self.builder()
        _calibrate_batchnorm(module, self.input_shapes)
        if self.example_inputs is not None:
            return module.eval(), tuple(self.example_inputs())
        gen = torch.Generator().manual_seed(1)
        inputs = tuple(torch.randn(*s, generator=gen) for s in self.input_shapes)
        return module.eval(), inputs


def register_model(name: str, input_shapes, description: str, task: str = "classification", tags=(),
                   dataset: str = "", example_inputs=None):
    def wrap(builder):
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(name, builder, tuple(tuple(s) for s in input_shapes), description, task,
                                    tuple(tags), dataset, example_inputs)
        return builder

    return wrap


def list_models() -> dict[str, ModelSpec]:
    _load_all()
    return dict(_REGISTRY)


def get_model(name: str) -> ModelSpec:
    from edgecc.errors import ModelError

    models = list_models()
    if name not in models:
        raise ModelError(f"unknown model {name!r}; zoo models: {', '.join(models)} "
                         f"(or give a .py:factory, .pt2 or .onnx file)")
    return models[name]


def _load_all():
    from edgecc.models import audio, digits, digits_pair, mobilenets, segmentation, transformer, vision  # noqa: F401


def _calibrate_batchnorm(module, input_shapes, batches: int = 2, batch_size: int = 4):
    import torch

    bns = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    gen = torch.Generator().manual_seed(2)
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    module.train()
    with torch.no_grad():
        for _ in range(batches):
            module(*[torch.randn(batch_size, *s[1:], generator=gen) for s in input_shapes])
    module.eval()


def count_params_and_macs(module, example_inputs) -> tuple[int, int]:
    """Parameter count and multiply-accumulates of one inference (Conv and Linear layers)."""
    import torch

    macs = 0

    def conv_hook(m, inp, out):
        nonlocal macs
        macs += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, inp, out):
        nonlocal macs
        macs += out.numel() * m.in_features

    hooks = []
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    with torch.no_grad():
        module(*example_inputs)
    for h in hooks:
        h.remove()
    return sum(p.numel() for p in module.parameters()), macs
