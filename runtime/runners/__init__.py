"""Runners: where a bundle runs from here, behind one protocol (base.Runner), chosen by one registry."""

from edgecc.runtime.runners.base import RemoteBench, Runner, RunnerBase, WallClockRunner
from edgecc.runtime.runners.lavapipe import IreeToolRunner
from edgecc.runtime.runners.local import IreeLocalRunner, LocalRunner, TvmLocalRunner
from edgecc.runtime.runners.qemu_cascade import QemuCascadeRunner
from edgecc.runtime.runners.qemu_system import QemuCortexMRunner
from edgecc.runtime.runners.qemu_user import IreeQemuRunner, QemuUserRunner, TvmQemuRunner
from edgecc.runtime.runners.registry import register_runner, runner_for
from edgecc.runtime.runners.rpc import RpcBench
from edgecc.runtime.runners.ssh import SshBench
from edgecc.runtime.runners.tensorrt import OnnxRuntimeCheckRunner

__all__ = [
    "IreeLocalRunner", "IreeQemuRunner", "IreeToolRunner", "LocalRunner", "OnnxRuntimeCheckRunner",
    "QemuCascadeRunner", "QemuCortexMRunner", "QemuUserRunner", "RemoteBench", "RpcBench", "Runner", "RunnerBase",
    "SshBench",
    "TvmLocalRunner", "TvmQemuRunner", "WallClockRunner", "register_runner", "runner_for",
]
