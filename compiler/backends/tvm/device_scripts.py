"""run.sh / bench.sh for a GPU bundle: TVM's Python runtime on the device (runtime/scripts/tvm_device.py).
"""

from __future__ import annotations

from pathlib import Path

from edgecc.tools import package_version


def write_gpu_device_files(workdir: Path, device: str, function: str, module: str = "model.so") -> list[str]:
    """run.sh / bench.sh for a GPU bundle: TVM's Python runtime on the device (tvm_device.py)."""
    from edgecc.runtime.device_scripts import render_scripts

    subst = {"@TVM_VERSION@": package_version("apache-tvm"), "@MODULE@": module, "@FUNCTION@": function,
             "@DEVICE@": device}
    return render_scripts(workdir, {"tvm_device.py": "tvm_device.py", "tvm_device_run.sh": "run.sh",
                                    "tvm_device_bench.sh": "bench.sh"}, subst)
