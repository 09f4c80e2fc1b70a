"""Real device servers on loopback for the device tests: an OpenSSH sshd (own host key, own authorized_keys,
host-key checking on in the client) and a TVM RPC tracker with one RPC server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20) -> None:
    end = time.time() + timeout
    while time.time() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Sshd:
    port: int
    identity: Path
    known_hosts: Path
    proc: subprocess.Popen
    argv: list

    @property
    def url(self) -> str:
        return f"ssh://{os.environ.get('USER') or 'root'}@127.0.0.1:{self.port}"

    def cli_args(self) -> list[str]:
        return ["--identity", str(self.identity), "--known-hosts", str(self.known_hosts)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)

    def start_again(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)


def sshd_missing_reason() -> str:
    if not Path(SSHD).is_file():
        return "no /usr/sbin/sshd (apt-get install openssh-server; `make setup` does)"
    if os.geteuid() != 0:
        return "sshd on loopback needs root here (privilege separation)"
    if not shutil.which("ssh-keygen"):
        return "no ssh-keygen"
    return ""


def start_sshd(tmp: Path) -> Sshd:
    """sshd -D on 127.0.0.1:<free port> with a fresh host key; a fresh client key authorized; known_hosts
    holds exactly that host key, so the client checks it strictly."""
    tmp.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation dir
    host_key, client_key = tmp / "host_ed25519", tmp / "client_ed25519"
    for k in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)], check=True)
    (tmp / "authorized_keys").write_text((tmp / "client_ed25519.pub").read_text())
    (tmp / "authorized_keys").chmod(0o600)
    port = free_port()
    (tmp / "known_hosts").write_text(f"[127.0.0.1]:{port} {(tmp / 'host_ed25519.pub').read_text().split(' #')[0]}")
    cfg = tmp / "sshd_config"
    cfg.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {tmp / 'sshd.pid'}
AuthorizedKeysFile {tmp / 'authorized_keys'}
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
""")
    argv = [SSHD, "-D", "-e", "-f", str(cfg)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(tmp / "sshd.log", "w"))
    wait_port(port)
    return Sshd(port, client_key, tmp / "known_hosts", proc, argv)


@dataclass
class TvmRpc:
    port: int
    key: str
    tracker: subprocess.Popen
    server: subprocess.Popen

    @property
    def url(self) -> str:
        return f"rpc://127.0.0.1:{self.port}/{self.key}"

    def stop_server(self) -> None:
        _kill_group(self.server)

    def stop(self) -> None:
        _kill_group(self.server)
        _kill_group(self.tracker)


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the tracker and server fork workers: end the whole group
        proc.wait(10)


def start_tvm_rpc(tmp: Path, key: str = "host-x86") -> TvmRpc:
    """python -m tvm.exec.rpc_tracker + rpc_server on loopback; returns once the server is registered."""
    tmp.mkdir(parents=True, exist_ok=True)
    port, sport = free_port(), free_port()
    tracker = subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port",
                                str(port), "--port-end", str(port + 1)], stdout=open(tmp / "tracker.log", "w"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    wait_port(port)
    server = subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_server", "--tracker", f"127.0.0.1:{port}",
                               "--key", key, "--host", "127.0.0.1", "--port", str(sport), "--port-end",
                               str(sport + 1)], stdout=open(tmp / "server.log", "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    from tvm import rpc

    end = time.time() + 30
    while time.time() < end:
        try:
            if key in rpc.connect_tracker("127.0.0.1", port).summary()["queue_info"]:
                return TvmRpc(port, key, tracker, server)
        except Exception:
            pass
        time.sleep(0.3)
    TvmRpc(port, key, tracker, server).stop()
    raise RuntimeError(f"the RPC server did not register with the tracker: {(tmp / 'server.log').read_text()[-500:]}")
