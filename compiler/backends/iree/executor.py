"""Which IREE executor runs a CPU artifact, decided at compile time from the model's size and recorded in the
manifest (artifact info `driver` and `executor`), so that `edgecc bench`, the validation run and bench.sh all use it.

- `local-sync`: inference on the caller's thread, no task system. For models whose convolution and matmul layers
  are small (average MACs per such layer under `executor_sync_below_macs_per_layer`, 2 M on `host`): there IREE's
  fork/join per dispatch costs more than a second core gives, and every dispatch's wake-up of a sleeping worker is a
  chance to wait for a core another process holds. Measured on the 2-core host (docs/cpu-speed.md): resnet8 (1.25 M
  MACs per layer) 0.74-0.84x the 2-worker p50 and 0.63-0.69x its p90; DS-CNN, VWW MobileNetV1 and
  MobileNetV3-small (0.27-1.05 M) likewise; unet-small (2.34 M) 1.64x slower on one thread, so it stays parallel.
- `local-task` with unpinned workers (`--task_topology_group_count=N`): IREE otherwise pins worker i to CPU i; on a
  shared machine a pinned worker whose CPU is busy cannot move, and every dispatch waits for it. Unpinned: the same
  p50 near idle, and under load MobileNetV2 0.83x / ResNet-18 0.84x the pinned p50 (p90 0.67x / 0.80x).

The user's `--option executor=local-task|local-sync` overrides `auto`; an ONNX source (no PyTorch graph to count)
stays on `local-task`.

    choose_executor(model, opts)  # {"driver": "local-sync", "workers": None, "macs": 12.5e6, ..., "why": "..."}
"""

from __future__ import annotations

from edgecc.errors import TargetError

EXECUTORS = ("auto", "local-task", "local-sync")


def check_executor(value: str) -> str:
    """The `executor` option, lower-cased; a one-line TargetError naming the valid values otherwise."""
    v = str(value).lower()
    if v and v not in EXECUTORS:
        raise TargetError(f"--option executor={value}: expected one of {', '.join(EXECUTORS)}")
    return v


def model_macs(model) -> tuple[int, int] | None:
    """(MACs of one inference, number of convolution/matmul layers) from the model's exported graph; None for an
    ONNX source."""
    if model.kind == "onnx":
        return None
    from edgecc.compiler.squeeze.profile import node_macs

    per_node = [node_macs(n) for n in model.exported_program_fp32().graph.nodes if n.op == "call_function"]
    heavy = [m for m in per_node if m]
    return sum(heavy), len(heavy)


def choose_executor(model, opts) -> dict:
    """The executor section of the artifact info (see the module docstring); `opts` is the build's IreeOptions."""
    size = model_macs(model)
    facts: dict = {}
    if size is not None:
        macs, layers = size
        facts = {"macs": macs, "mac_layers": layers, "macs_per_layer": macs / layers if layers else 0.0}
    threshold = opts.executor_sync_below_macs_per_layer
    if opts.executor != "auto":
        driver, why = opts.executor, f"--option executor={opts.executor}"
    elif size is None:
        driver, why = "local-task", "auto: an ONNX source, no PyTorch graph to count its MACs"
    elif facts["macs_per_layer"] < threshold:
        driver = "local-sync"
        why = (f"auto: {facts['macs_per_layer'] / 1e6:.2f} M MACs per conv/matmul layer < {threshold / 1e6:g} M: "
               "too small to gain from the task system's workers")
    else:
        driver = "local-task"
        why = f"auto: {facts['macs_per_layer'] / 1e6:.2f} M MACs per conv/matmul layer >= {threshold / 1e6:g} M"
    return {"driver": driver, "workers": "unpinned" if driver == "local-task" else None, **facts, "why": why}
