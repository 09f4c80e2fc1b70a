"""Benchmark workers run with glibc's huge-page malloc tunable (runtime/bench.py: worker_env), baselines too."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgecc.runtime.bench import HUGE_PAGE_TUNABLE, worker_env

# malloc 64 MB, touch it, print how much of the process's anonymous memory sits on huge pages
CHILD = r"""
import ctypes, re
libc = ctypes.CDLL(None); libc.malloc.restype = ctypes.c_void_p
p = libc.malloc(64 << 20); ctypes.memset(p, 1, 64 << 20)
print(re.search(r"AnonHugePages:\s+(\d+)", open("/proc/self/smaps_rollup").read()).group(1))
"""


def test_worker_env_adds_the_tunable_once_and_keeps_the_users(monkeypatch):
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    env = worker_env(2)
    assert env["GLIBC_TUNABLES"] == HUGE_PAGE_TUNABLE
    assert env["EDGECC_THREADS"] == env["TVM_NUM_THREADS"] == "2"
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")
    assert worker_env()["GLIBC_TUNABLES"] == f"glibc.malloc.tcache_count=0:{HUGE_PAGE_TUNABLE}"
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=0")  # the user's choice stands
    assert worker_env()["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=0"


def _thp_mode() -> str:
    try:
        return re.search(r"\[(\w+)\]", Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()).group(1)
    except (OSError, AttributeError):
        return "unknown"


@pytest.mark.skipif(_thp_mode() != "madvise", reason="transparent huge pages not in madvise mode here")
def test_worker_env_puts_large_malloc_blocks_on_huge_pages(monkeypatch):
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)

    def huge_kb(env):
        return int(subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                                  check=True).stdout)

    assert huge_kb(worker_env()) >= 32 << 10  # most of the 64 MB block
    assert huge_kb({k: v for k, v in worker_env().items() if k != "GLIBC_TUNABLES"}) < 32 << 10
