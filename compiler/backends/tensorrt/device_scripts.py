"""build_engine.sh / bench.sh / run.sh / trt_tool.py from runtime/scripts, with the plan's trtexec flags.
"""

from __future__ import annotations

from pathlib import Path


def write_device_scripts(workdir: Path, plan: dict, target) -> list[str]:
    """build_engine.sh / bench.sh / run.sh / trt_tool.py from runtime/scripts, with the plan's trtexec flags."""
    import shlex

    from edgecc.runtime.device_scripts import render_scripts

    subst = {"@TRT_VERSION@": plan["tensorrt"],
             "@TRT_SOURCE@": f"JetPack {plan['jetpack']}" if plan["jetpack"] else f"target {target.name}",
             "@BUILD_FLAGS@": " ".join(shlex.quote(f) for f in plan["trtexec_build_flags"]),
             "@RUN_FLAGS@": " ".join(shlex.quote(f) for f in plan["trtexec_run_flags"]),
             "@TARGET@": target.name}
    return render_scripts(workdir, {"trt_build_engine.sh": "build_engine.sh", "trt_bench.sh": "bench.sh",
                                    "trt_run.sh": "run.sh", "trt_tool.py": "trt_tool.py"}, subst)
