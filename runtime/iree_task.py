"""The IREE task system's flags for running a local-task bundle: the runtime's half of the executor choice the
compiler records in the manifest (compiler/backends/iree/executor.py)."""

from __future__ import annotations


def task_flags(executor: dict | None, threads: int, cpus: int) -> list[str]:
    """iree.runtime flags for a local-task artifact: unpinned workers (`threads`, else one per CPU this process may
    use) when the manifest says so; else the old form, IREE's pinned workers, capped at `threads`.

        task_flags({"driver": "local-task", "workers": "unpinned"}, 2, 16)  # ['--task_topology_group_count=2']
    """
    if (executor or {}).get("workers") == "unpinned":
        return [f"--task_topology_group_count={threads or cpus}"]
    return [f"--task_topology_max_group_count={threads}"] if threads else []
