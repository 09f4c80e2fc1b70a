"""The backend registry: a dict plus a decorator that refuses duplicates, imported lazily by name.

A backend is one module that defines a class registered with `@register_backend("name")`, providing:

    compile(model: LoadedModel, target: Target, workdir: Path, options: CompileOptions) -> Artifact
        Lower the model for `target` into files under `workdir` (the bundle's temp folder).
    versions() -> dict[str, str]
        Versions of the tools it used, for the manifest.

Where a compiled bundle runs from here is not the backend's business: edgecc.runtime.runners.runner_for chooses
from the manifest, so a bundle runs with the runtime alone.
"""

from __future__ import annotations

import importlib

from edgecc.errors import TargetError

# name -> module that registers it. Importing the module is deferred until the backend is used, so
# `import edgecc` works with no toolchain installed.
BACKEND_MODULES = {
    "iree": "edgecc.compiler.backends.iree.backend",
    "tvm": "edgecc.compiler.backends.tvm.backend",
    "micro": "edgecc.compiler.backends.micro",
    "tensorrt": "edgecc.compiler.backends.tensorrt.backend",
}

_REGISTRY: dict[str, type] = {}


def register_backend(name: str):
    """Class decorator: `@register_backend("iree") class IreeBackend: ...`."""

    def wrap(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise RuntimeError(f"backend {name!r} registered twice ({_REGISTRY[name]} and {cls})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def get_backend(name: str):
    """An instance of backend `name`; unknown names raise TargetError listing the known ones."""
    if name not in BACKEND_MODULES:
        raise TargetError(f"unknown backend {name!r}; known backends: {', '.join(BACKEND_MODULES)}")
    if name not in _REGISTRY:
        try:
            importlib.import_module(BACKEND_MODULES[name])
        except ModuleNotFoundError as e:
            if e.name == BACKEND_MODULES[name]:
                raise TargetError(f"backend {name!r} is not implemented yet in this edgecc") from None
            raise
    return _REGISTRY[name]()
