"""run.sh / bench.sh of an IREE bundle, for running it on the device."""

from __future__ import annotations

from pathlib import Path

from edgecc.tools import package_version


def write_device_scripts(workdir: Path, info: dict, n_inputs: int, n_outputs: int) -> list[str]:
    """run.sh / bench.sh for the device, from runtime/scripts templates."""
    from edgecc.runtime.device_scripts import default_inputs, render_scripts

    subst = {"@IREE_VERSION@": package_version("iree-base-runtime"), "@NUM_OUTPUTS@": str(n_outputs),
             "@DEVICE@": info["driver"], "@MODULE@": "model.vmfb", "@FUNCTION@": info["function"],
             "@DEFAULT_INPUTS@": default_inputs(n_inputs)}
    return render_scripts(workdir, {"iree_run.sh": "run.sh", "iree_bench.sh": "bench.sh"}, subst)
