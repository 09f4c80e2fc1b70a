"""Local runners: run a bundle in this process with the IREE or TVM runtime (host CPU, or a GPU here)."""

from __future__ import annotations

import os

import numpy as np

from edgecc.errors import BundleError, CannotRunHere, require
from edgecc.runtime.runners.base import WallClockRunner
from edgecc.runtime.runners.registry import register_runner
from edgecc.validate import check_inputs


class LocalRunner(WallClockRunner):
    where = "host"

    def __init__(self, bundle):
        self.bundle = bundle
        self.threads = int(os.environ.get("EDGECC_THREADS", "0"))  # 0: the runtime's default
        io = bundle.manifest["io"]["inputs"]
        self._expected = [(tuple(i["shape"]), np.dtype(i["dtype"])) for i in io]
        self._names = [i["name"] for i in io]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        check_inputs(inputs, self._expected, self._names)
        return self._run([np.ascontiguousarray(a) for a in inputs])


def check_host_cpu(bundle) -> None:
    """A target-cpu=host artifact uses every ISA extension of the CPU it was built on: refuse a CPU that lacks
    one (it would die of SIGILL), accept one that has them all."""
    info = bundle.manifest["artifact"]["info"]
    recorded = info.get("host_cpu_isa")
    if recorded:
        from edgecc.targets.host_cpu import cpu_isa_flags

        here = set(cpu_isa_flags())
        missing = sorted(set(recorded) - here) if here else []
        if missing:
            raise BundleError(f"bundle was compiled with target-cpu=host on a {info.get('host_cpu', '?')} CPU; this "
                              f"CPU lacks {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}: "
                              "recompile it here")


def iree_device_available(driver: str) -> bool:
    """Whether this machine's `iree-run-module --list_devices` lists a device of that driver (vulkan, cuda)."""
    from edgecc.tools import run_tool

    return f"{driver}://" in run_tool(["iree-run-module", "--list_devices"], check=False).stdout


@register_runner("iree", "local")
class IreeLocalRunner(LocalRunner):
    def __init__(self, bundle):
        super().__init__(bundle)
        rt = require("iree.runtime", "iree-base-runtime", "running IREE bundles")
        info = bundle.manifest["artifact"]["info"]
        driver = info.get("driver", "local-task")
        if driver not in ("local-task", "local-sync"):
            self.where = f"host {driver} GPU"
        check_host_cpu(bundle)
        from edgecc.runtime.iree_task import task_flags

        # the executor the compiler chose (manifest artifact info "executor"), so every run of the bundle uses it
        self.run_config = {"driver": driver, "flags": []}
        if driver == "local-task":
            self.run_config["flags"] = task_flags(info.get("executor"), self.threads, len(os.sched_getaffinity(0)))
            for flag in self.run_config["flags"]:
                rt.flags.parse_flags(flag)
        elif driver == "local-sync":
            self.run_config["threads"] = 1  # the caller's thread: --threads does not apply
        self._module = rt.load_vm_flatbuffer_file(str(bundle.artifact()), driver=driver)
        self._fn = self._module[info.get("function", "main")]

    def time(self, inputs, warmup: int, iters: int) -> dict:
        timing = super().time(inputs, warmup, iters)
        timing["extra"]["iree_runtime"] = self.run_config  # the driver and task-topology flags the samples had
        return timing

    def _run(self, inputs):
        out = self._fn(*inputs)
        outs = out if isinstance(out, (tuple, list)) else [out]
        return [np.asarray(o.to_host() if hasattr(o, "to_host") else o) for o in outs]


@register_runner("tvm", "local")
class TvmLocalRunner(LocalRunner):
    def __init__(self, bundle, device: str = "cpu"):
        super().__init__(bundle)
        tvm = require("tvm", "apache-tvm==0.27.0.post1", "running TVM bundles")
        from tvm import relax

        info = bundle.manifest["artifact"]["info"]
        # TVM's thread pool reads this when it starts (the first parallel kernel). Unset, TVM takes half the
        # logical CPUs on x86 (hyper-threading assumed): 1 on a 2-vCPU VM, where resnet8's parallel convs then
        # ran 0.28 ms against 0.16 ms on two threads. Like the IREE runner: --threads, else every CPU this
        # process may use.
        os.environ.setdefault("TVM_NUM_THREADS", str(self.threads or len(os.sched_getaffinity(0))))
        self._tvm = tvm
        self._dev = getattr(tvm, device)(0)
        if not self._dev.exist:
            raise CannotRunHere(f"no {device} device visible to TVM here")
        self.where = "host" if device == "cpu" else f"host {device} GPU"
        self._lib = tvm.runtime.load_module(str(bundle.artifact()))
        self._function = info.get("function", "main")
        self._vm = relax.VirtualMachine(self._lib, self._dev)
        self._fn = self._vm[self._function]
        self._staged = None
        if self._dev.dlpack_device_type() == 1:  # kDLCPU
            import tvm_ffi

            self._staging = [_aligned_empty(shape, dtype) for shape, dtype in self._expected]
            self._staged = [tvm_ffi.from_dlpack(a) for a in self._staging]

    def _run(self, inputs):
        if self._staged is None:  # a GPU: copy in and out through the TVM runtime
            out = self._fn(*[self._tvm.runtime.tensor(a, self._dev) for a in inputs])
            return [np.asarray(o.numpy()) for o in _flatten(out)]
        # CPU: copy into the staging arrays the VM already holds by DLPack, and copy the outputs out in numpy.
        # tvm.runtime.tensor() costs ~15 us a call and numpy() ~6 us: on the MLPerf Tiny models that was most of
        # a run. Nothing returned aliases the VM's memory or an input.
        for staging, a in zip(self._staging, inputs, strict=True):
            np.copyto(staging, a)
        out = self._fn(*self._staged)
        return [np.from_dlpack(o).copy() for o in _flatten(out)]

    def profile_ops(self, inputs: list[np.ndarray], repeat: int = 5) -> list[dict]:
        """Per-call wall time of one inference, in call order: [{"kernel", "us", "arg_elements"}] (element counts
        of the call's tensor arguments), each call's median over
        `repeat` runs after one warm-up run. Timed by the Relax VM's instrument hook (called before and after each
        Call instruction; the CPU kernels are synchronous), so each time includes ~1 us of hook overhead."""
        import time

        check_inputs(inputs, self._expected, self._names)
        args = [self._tvm.runtime.tensor(np.ascontiguousarray(a), self._dev) for a in inputs]
        runs: list[list] = []
        stack: list[int] = []

        def instrument(func, symbol, before_run, ret_value, *call_args):
            now = time.perf_counter_ns()
            if before_run:
                stack.append(now)
            else:
                sizes = [int(np.prod(a.shape)) for a in call_args if hasattr(a, "shape")]
                runs[-1].append((str(symbol), (now - stack.pop()) / 1e3, sizes))
            return 0  # VMInstrumentReturnKind.NO_OP: run the call as usual

        self._vm.set_instrument(instrument)
        try:
            for _ in range(repeat + 1):
                runs.append([])
                self._fn(*args)
        finally:
            self._vm.set_instrument(lambda *a: 0)
        timed = runs[1:]
        return [{"kernel": name, "us": float(np.median([r[i][1] for r in timed])), "arg_elements": sizes}
                for i, (name, _, sizes) in enumerate(timed[0])]


TVM_ALIGNMENT = 64  # tvm.runtime's allocation alignment, which TVM's generated kernels assume of every tensor


def _aligned_empty(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-contiguous array whose data is TVM_ALIGNMENT-byte aligned."""
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + TVM_ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % TVM_ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def _flatten(out):
    import tvm_ffi

    if isinstance(out, tvm_ffi.Tensor):
        return [out]
    return [t for o in out for t in _flatten(o)]
