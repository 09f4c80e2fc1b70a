"""A bundle's check variant on a Vulkan driver here (Mesa lavapipe, a CPU Vulkan): a second build with a generic
profile whose numerics can be checked on this machine, when the device's own build needs its GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecc.errors import CannotRunHere
from edgecc.runtime.runners.local import LocalRunner, iree_device_available
from edgecc.runtime.runners.registry import register_runner


@register_runner("iree", "check-variant")
class IreeToolRunner(LocalRunner):
    """Runs a module with this machine's `iree-run-module` on a given device (e.g. Vulkan on Mesa lavapipe).
    A subprocess, because the Python binding cannot move results off Vulkan devices that refuse unaligned host
    memory imports (lavapipe wants 4096-byte alignment)."""

    spawns_per_run = True

    def __init__(self, bundle, module: Path, device: str, where: str):
        super().__init__(bundle)
        self.module, self.device, self.where = module, device, where
        self.function = bundle.manifest["artifact"]["info"].get("function", "main")
        if not iree_device_available(device):
            raise CannotRunHere(f"no IREE {device} device here (install mesa-vulkan-drivers for lavapipe)")

    def _run(self, inputs):
        import tempfile

        from edgecc.tools import run_tool

        n_out = len(self.bundle.manifest["io"]["outputs"])
        with tempfile.TemporaryDirectory() as d:
            argv = ["iree-run-module", f"--device={self.device}", f"--module={self.module}",
                    f"--function={self.function}"]
            for i, a in enumerate(inputs):
                np.save(Path(d) / f"in_{i}.npy", a)
                argv.append(f"--input=@{d}/in_{i}.npy")
            argv += [f"--output=@{d}/out_{i}.npy" for i in range(n_out)]
            run_tool(argv, timeout=1800)
            return [np.load(Path(d) / f"out_{i}.npy") for i in range(n_out)]

    def time(self, inputs, warmup, iters):
        raise CannotRunHere(f"{self.where} checks numerics only; its speed says nothing about the device: "
                            "time the bundle on the device with bench.sh")
