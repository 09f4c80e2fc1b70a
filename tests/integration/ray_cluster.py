"""A real Ray cluster on loopback for the tests: a head and worker nodes, each its own `ray start --block` process
group with 1 CPU and a small object store, in a temp folder; every wait bounded, always stopped."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

# The nodes and the edgecc drivers the tests start (they inherit os.environ) all without token authentication, even
# where an earlier local `ray.init` on this machine left ~/.ray/auth_token behind (docs/scale-out.md)
os.environ["RAY_AUTH_MODE"] = "disabled"

STARTED = "Ray runtime started"
NODE_OPTIONS = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", str(100 * 2**20),
                "--disable-usage-stats", "--block"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayCluster:
    """`RayCluster().start()`: head + one worker node; `.address` for `--executor ray://...`; `.stop()`."""

    def __init__(self, workers: int = 1):
        self.workers = workers
        # short: Ray's unix sockets live under it, and socket paths are limited to 107 bytes
        self.temp = Path(tempfile.mkdtemp(prefix="eray", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[subprocess.Popen] = []
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONWARNINGS": "ignore"}

    def _ray(self) -> str:
        return str(Path(sys.executable).with_name("ray"))

    def _node(self, args: list[str], name: str, timeout: float = 90) -> subprocess.Popen:
        log = self.temp / f"{name}.log"
        proc = subprocess.Popen([self._ray(), "start", *args, *NODE_OPTIONS], stdout=log.open("wb"),
                                stderr=subprocess.STDOUT, env=self.env, start_new_session=True, cwd=self.temp)
        self.nodes.append(proc)
        deadline = time.monotonic() + timeout
        while STARTED not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                self.stop()
                pytest.fail(f"ray node {name} did not start within {timeout:.0f} s:\n{tail}")
            time.sleep(0.2)
        return proc

    def start(self) -> RayCluster:
        if not Path(self._ray()).is_file():
            pytest.skip("ray is not installed (pip install 'edgecc[ray]')")
        self._node(["--head", "--port", str(self.port), "--include-dashboard=false", "--temp-dir", str(self.temp)],
                   "head")
        for i in range(self.workers):
            self._node(["--address", self.address], f"worker{i + 1}")
        return self

    def processes(self, node: int) -> list:
        """Every live process of node `node` (0: the head): its `ray start`, raylet, and the raylet's workers."""
        import psutil

        try:
            root = psutil.Process(self.nodes[node].pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill_node(self, node: int) -> None:
        """SIGKILL every process of a node, as when its machine dies."""
        _signal_all(self.processes(node), signal.SIGKILL)
        self.nodes[node].wait(timeout=30)

    def stop(self) -> None:
        """SIGKILL every process of every node (each node's process group, and the workers its raylet started in
        their own groups; `ray start --block` takes over 10 s on SIGTERM) and remove the temp folder."""
        procs = [p for i in range(len(self.nodes)) for p in self.processes(i)]
        for proc in self.nodes:
            _signal_group(proc, signal.SIGKILL)
        _signal_all(procs, signal.SIGKILL)
        for proc in self.nodes:
            proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.temp, ignore_errors=True)


def _alive(procs) -> list:
    import psutil

    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:  # a zombie has exited: nobody reaped it yet
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _signal_all(procs, sig) -> None:
    for p in procs:
        try:
            p.send_signal(sig)
        except Exception:  # exited meanwhile
            pass


def _signal_group(proc: subprocess.Popen, sig) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
