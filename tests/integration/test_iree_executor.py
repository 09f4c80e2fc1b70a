"""The IREE executor the compiler picks for a host artifact (compiler/backends/iree/executor.py), recorded in the
manifest and used by `edgecc bench`: local-sync for a model too small to split, unpinned local-task workers
otherwise, with the real IREE runtime (the workers' CPU affinity read back from /proc)."""

import json
import os
import subprocess
import sys

import pytest

import edgecc
from tests.conftest import DATA, assert_clean_failure, edgecc_cli

TINY = f"{DATA / 'tiny_factory.py'}:build"

# load the bundle's runner with 2 threads, run it once, print each IREE worker thread's allowed CPUs
AFFINITY = r"""
import glob, json, os, sys
from edgecc.bundle import Bundle
b = Bundle.load(sys.argv[1]); r = b.runner(); r.run(b.reference_inputs())
tasks = [t for t in glob.glob(f"/proc/{os.getpid()}/task/*") if "iree-worker" in open(t + "/comm").read()]
print(json.dumps(sorted(open(t + "/status").read().split("Cpus_allowed_list:")[1].split()[0] for t in tasks)))
"""


def test_a_small_model_runs_on_local_sync_and_the_bench_says_so(tmp_path):
    b = edgecc.compile(TINY, target="host", backend="iree", output=tmp_path / "tiny")
    info = b.manifest["artifact"]["info"]
    assert info["driver"] == "local-sync" and info["executor"]["mac_layers"] == 2
    assert info["executor"]["macs"] == 4 * 6 * 6 * 9 + 5 * 144  # the 3x3 conv and the linear layer
    assert "per conv/matmul layer < 2 M" in info["executor"]["why"]
    r = edgecc_cli("bench", b.path, "--threads", "2", "--warmup", "1", "--iters", "3", "--json", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    extra = json.loads((tmp_path / "r.json").read_text())["runs"][0]["timing"]["extra"]
    assert extra["iree_runtime"] == {"driver": "local-sync", "flags": [], "threads": 1}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to tell pinned from unpinned workers")
def test_local_task_workers_are_unpinned(tmp_path):
    b = edgecc.compile(TINY, target="host", backend="iree", output=tmp_path / "task",
                       options={"executor": "local-task"})
    info = b.manifest["artifact"]["info"]
    assert info["driver"] == "local-task" and info["executor"]["workers"] == "unpinned"
    assert info["executor"]["why"] == "--option executor=local-task"
    env = {**os.environ, "EDGECC_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", AFFINITY, str(b.path)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    allowed = json.loads(out.stdout.strip().splitlines()[-1])
    mine = subprocess.run(["grep", "Cpus_allowed_list", "/proc/self/status"], capture_output=True,
                          text=True).stdout.split()[1]
    assert allowed == [mine, mine]  # two workers, each free to run on any CPU (IREE's default pins one per CPU)


def test_bad_executor_option_is_one_line(tmp_path):
    out = tmp_path / "b"
    r = edgecc_cli("compile", TINY, "-b", "iree", "--option", "executor=fast", "-o", out)
    assert_clean_failure(r, 3, "--option executor=fast: expected one of auto, local-task, local-sync", out_dir=out)
    r = edgecc_cli("compile", TINY, "-t", "orangepi5-cpu", "-b", "iree", "--option", "executor=local-sync", "-o", out)
    assert_clean_failure(r, 3, "this target has no CPU executor to choose", out_dir=out)
