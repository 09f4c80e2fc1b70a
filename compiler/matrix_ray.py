"""`edgecc build --executor ray[://ADDRESS]`: each cell of the matrix is a Ray task on a cluster.

A task declares the CPUs it needs, runs in a fresh worker process (max_calls=1, like the local pool's spawn) and
compiles the cell with the same `build_cell` as a local build, into a temp folder on its node, recording the calls
against the folder the bundle will live in on the driver. The finished bundle comes back as a tar stream, or, when
the node shares the driver's output folder (it sees the driver's drop folder there), as a path in that folder. The
driver checks every hash and renames it into place as a local build does (edgecc.bundle.staging). A worker that
dies mid-cell never hands back a bundle: Ray reruns the task (up to `retries` times) on a live node.

Every node needs edgecc and its toolchains installed (same versions), and model files at the same path (a shared
folder or the same checkout); zoo models need nothing.

    >>> run_matrix(cells, "build", executor=RayExecutor("10.0.0.5:6379"))                # doctest: +SKIP
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from edgecc.errors import BundleError, DeviceError, EdgeccError, UsageError, first_line, require

RETRIES = 3  # reruns of a cell whose worker or node died


def parse_executor(text: str | None) -> tuple[str, str | None]:
    """`local`, `ray` (RAY_ADDRESS, a cluster on this machine, or a new local one) or `ray://HOST:PORT` (the head's
    GCS port, `ray start --head --port PORT`) → (kind, address)."""
    text = (text or "local").strip()
    if text in ("local", "ray"):
        return text, None
    m = re.fullmatch(r"ray://([A-Za-z0-9_.\-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})", text)
    if not m or not 0 < int(m.group(2)) < 65536:
        raise UsageError(f"--executor {text!r}: expected local, ray or ray://HOST:PORT (the head's port, as in "
                         "`ray start --head --port 6379`)")
    return "ray", f"{m.group(1)}:{m.group(2)}"


class RayExecutor:
    """The cells as Ray tasks on the cluster at `address` (None: Ray's default). `transfer`: "auto" (a shared path
    where the node sees the output folder, else a tar stream) or "tar"."""

    def __init__(self, address: str | None = None, cpus_per_cell: int = 1, timeout: float = 30,
                 transfer: str = "auto", retries: int = RETRIES):
        self.address, self.cpus, self.timeout, self.transfer, self.retries = (address, cpus_per_cell, timeout,
                                                                               transfer, retries)
        self.ray = None
        self.jobs = 1
        self.nodes: dict[str, str] = {}  # Ray node id -> its address

    @property
    def name(self) -> str:
        return f"ray://{self.address}" if self.address else "ray"

    def connect(self) -> None:
        """Join the cluster, or DeviceError within `timeout` seconds; MissingPackageError without Ray."""
        ray = require("ray", "edgecc[ray]", "--executor ray")
        address = self.address or os.environ.get("RAY_ADDRESS")
        if address:
            self._check_reachable(address)
            self._probe(address)
            self._init_bounded(ray, address)
        else:  # a cluster on this machine, or a new local one: Ray starts it, from the main thread only
            import signal

            handler = signal.getsignal(signal.SIGTERM)
            ray.init(logging_level=logging.WARNING, log_to_driver=False, configure_logging=False)
            signal.signal(signal.SIGTERM, handler)  # Ray's own exits without unwinding; edgecc's removes temps
        self.ray = ray
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < self.cpus:
            raise UsageError(f"--cpus-per-cell {self.cpus}: the Ray cluster at {self.name} has {cpus} CPU(s); "
                             "ask for fewer, or add nodes")
        self.jobs = max(1, cpus // self.cpus)
        self.nodes = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}

    def _check_reachable(self, address: str) -> None:
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=self.timeout).close()
        except (OSError, ValueError) as e:
            raise DeviceError(f"the Ray cluster at {address} does not answer ({getattr(e, 'strerror', None) or e}) "
                              f"within {self.timeout:g} s; start it with `ray start --head --port {port}` or check "
                              "--executor") from None

    def _init_bounded(self, ray, address: str) -> None:
        """ray.init in a thread, so that the wait is bounded (and Ray leaves edgecc's SIGTERM handler alone)."""
        error: list[BaseException] = []

        def init():
            try:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False,
                         configure_logging=False)
            except BaseException as e:  # noqa: B036 - handed to the caller's thread
                error.append(e)

        logging.getLogger("ray._private.worker").addFilter(lambda r: "SIGTERM handler" not in r.getMessage())
        t = threading.Thread(target=init, daemon=True)
        t.start()
        t.join(self.timeout)
        if t.is_alive() or error:
            why = f"{type(error[0]).__name__}: {first_line(error[0], 300)}" if error else \
                f"no answer within {self.timeout:g} s"
            raise DeviceError(f"cannot join the Ray cluster at {address}: {why}; run edgecc on a node of the "
                              "cluster (`ray start --address HEAD:PORT`)")

    def _probe(self, address: str) -> None:
        """Join the cluster once from a child process, killed after `timeout`: Ray's client retries an address that
        is not Ray's for ever, logging to stderr from its own threads. DeviceError with the reason."""
        code = ("import logging, sys, ray\ntry:\n    ray.init(address=sys.argv[1], logging_level=logging.ERROR, "
                "log_to_driver=False)\nexcept Exception as e:\n    print(f'{type(e).__name__}: {e}', file=sys.stderr)\n"
                "    sys.exit(1)\n")
        try:
            r = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True,
                               timeout=self.timeout)
        except subprocess.TimeoutExpired:
            why = f"no answer from Ray within {self.timeout:g} s"
        else:
            lines = r.stderr.strip().splitlines()
            why = "" if r.returncode == 0 else lines[-1][:300] if lines else f"exit {r.returncode}"
        if why:
            raise DeviceError(f"cannot join the Ray cluster at {address}: {why}; is it a Ray head's port? (run "
                              "edgecc on a node of the cluster, `ray start --address HEAD:PORT`)")

    def build(self, cells, output: str) -> Iterator:
        """Each cell as it finishes, its bundle in place under `output`."""
        if self.ray is None:
            self.connect()
        ray = self.ray
        out = Path(os.path.abspath(output))
        out.mkdir(parents=True, exist_ok=True)
        drop = out / f".edgecc-ray-{uuid.uuid4().hex[:12]}"  # a node that sees it shares this folder
        drop.mkdir()
        task = ray.remote(num_cpus=self.cpus, max_retries=self.retries, max_calls=1)(build_on_node)
        refs = {task.options(name=f"build {c.name}").remote(c, str(out / c.name), str(drop), os.getcwd(),
                                                               self.transfer): c for c in cells}
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                cell = refs.pop(ready[0])
                try:
                    cell, payload = ray.get(ready[0])
                except Exception as e:  # retries spent: the worker or its node died each time
                    cell.status, cell.reason = "failed", f"worker crashed: {type(e).__name__}: {first_line(e, 300)}"
                else:
                    node = cell.extra.get("node", "")
                    cell.extra["node"] = f"{self.nodes.get(node) or self._address_of(node)} ({node[:8]})"
                    install(cell, payload, out / cell.name)
                yield cell
        finally:
            for r in refs:
                ray.cancel(r, force=True)
            shutil.rmtree(drop, ignore_errors=True)
            ray.shutdown()  # this driver only; the cluster goes on
            self.ray = None

    def _address_of(self, node_id: str) -> str:
        self.nodes.update({n["NodeID"]: n["NodeManagerAddress"] for n in self.ray.nodes()})  # a node that joined
        return self.nodes.get(node_id, "?")


def build_on_node(cell, final: str, drop: str, cwd: str, transfer: str):
    """The Ray task: build `cell` on this node; (cell, ("path", folder) | ("tar", bytes) | None)."""
    import ray

    from edgecc.compiler.matrix import build_cell

    if os.path.isdir(cwd):  # relative model files resolve as on the driver
        os.chdir(cwd)
    node = ray.get_runtime_context().get_node_id()
    shared = transfer == "auto" and os.path.isdir(drop)
    _remove_stale_temps()
    root = Path(tempfile.mkdtemp(prefix=f"attempt-{os.getpid()}-", dir=drop) if shared else
                tempfile.mkdtemp(prefix=f"edgecc-ray-{os.getpid()}-"))
    try:
        cell = build_cell(cell, str(root), folder=root / cell.name, record_as=final)
        cell.extra["node"] = node
        if cell.status != "ok":
            return cell, None
        if shared:
            return cell, ("path", str(root / cell.name))
        return cell, ("tar", _tar(root / cell.name))
    finally:
        if not shared or cell.status != "ok":
            shutil.rmtree(root, ignore_errors=True)


def _extract_data(tar, dest: Path) -> None:
    """Unpack plain files and folders only: no links, devices, absolute or ../ paths (tarfile's "data" filter
    where this Python has it: 3.11.4 and later; Debian 12's 3.11.2 has not, and gets the same checks here)."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    root = Path(dest).resolve()
    for m in tar.getmembers():
        target = (root / m.name).resolve()
        if not (m.isfile() or m.isdir()) or Path(m.name).is_absolute() or not target.is_relative_to(root):
            raise tarfile.TarError(f"{m.name!r} is not a plain file inside the bundle")
    tar.extractall(dest)


def install(cell, payload, final: Path) -> None:
    """Put the bundle a task handed back at `final`: unpacked (or moved) into a temp folder beside it, every hash
    checked, renamed into place. On any problem the cell fails and nothing is left behind."""
    from edgecc.bundle import Bundle, staging

    if payload is None:
        return
    kind, data = payload
    try:
        with staging(final) as tmp:
            if kind == "tar":
                try:
                    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
                        _extract_data(tar, tmp)
                except tarfile.TarError as e:
                    raise BundleError(f"the bundle from the worker is not a whole tar stream ({e})") from None
            else:
                for p in Path(data).iterdir():
                    os.rename(p, tmp / p.name)
            Bundle.load(tmp)  # every file matches its sha256 before anything is replaced
        cell.bundle = str(final)
    except EdgeccError as e:
        cell.status, cell.reason, cell.bundle = "failed", f"{type(e).__name__}: {e}", ""
    finally:
        if kind == "path":
            shutil.rmtree(Path(data).parent, ignore_errors=True)


def _tar(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        for p in sorted(folder.iterdir()):
            tar.add(p, arcname=p.name)
    return buf.getvalue()


def _remove_stale_temps() -> None:
    """This node's temp folders of tasks whose worker was killed (their pid is gone)."""
    from edgecc.bundle import _pid_alive

    for p in Path(tempfile.gettempdir()).glob("edgecc-ray-*-*"):
        m = re.fullmatch(r"edgecc-ray-(\d+)-.*", p.name)
        if m and not _pid_alive(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True)
