"""Local runners: run a host bundle in this process with the IREE or TVM runtime."""

from __future__ import annotations

import os

import numpy as np

from edgecc.compiler.errors import BundleError, CannotRunHere, require
from edgecc.compiler.frontends import check_inputs


class LocalRunner:
    where = "host"

    def __init__(self, bundle):
        self.bundle = bundle
        self.threads = int(os.environ.get("EDGECC_THREADS", "0"))  # 0: the runtime's default
        io = bundle.manifest["io"]["inputs"]
        self._expected = [(tuple(i["shape"]), np.dtype(i["dtype"])) for i in io]
        self._names = [i["name"] for i in io]
        info = bundle.manifest["artifact"]["info"]
        if bundle.manifest["target"]["triple"].split("-")[0] not in ("x86_64",):
            raise CannotRunHere(f"bundle is for {bundle.manifest['target']['triple']}; this host is x86_64")
        if info.get("host_cpu"):
            from edgecc.compiler.backends.iree import host_cpu_name

            here = host_cpu_name()
            if info["host_cpu"] != here:
                raise BundleError(f"bundle was compiled for CPU {info['host_cpu']} (target-cpu=host); this machine "
                                  f"is {here}: recompile it here")

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        check_inputs(inputs, self._expected, self._names)
        return self._run([np.ascontiguousarray(a) for a in inputs])


class IreeLocalRunner(LocalRunner):
    def __init__(self, bundle):
        super().__init__(bundle)
        rt = require("iree.runtime", "iree-base-runtime", "running IREE bundles")
        info = bundle.manifest["artifact"]["info"]
        driver = info.get("driver", "local-task")
        if driver not in ("local-task", "local-sync"):
            raise CannotRunHere(f"IREE driver {driver!r} needs a device this host does not have")
        if self.threads and driver == "local-task":
            rt.flags.parse_flags(f"--task_topology_max_group_count={self.threads}")
        self._module = rt.load_vm_flatbuffer_file(str(bundle.artifact()), driver=driver)
        self._fn = self._module[info.get("function", "main")]

    def _run(self, inputs):
        out = self._fn(*inputs)
        outs = out if isinstance(out, (tuple, list)) else [out]
        return [np.asarray(o.to_host() if hasattr(o, "to_host") else o) for o in outs]


class TvmLocalRunner(LocalRunner):
    def __init__(self, bundle):
        super().__init__(bundle)
        tvm = require("tvm", "apache-tvm==0.27.0.post1", "running TVM bundles")
        from tvm import relax

        info = bundle.manifest["artifact"]["info"]
        if info.get("device", "cpu") != "cpu":
            raise CannotRunHere(f"TVM device {info['device']!r} needs a device this host does not have")
        self._tvm = tvm
        lib = tvm.runtime.load_module(str(bundle.artifact()))
        self._dev = tvm.cpu()
        self._vm = relax.VirtualMachine(lib, self._dev)
        self._fn = self._vm[info.get("function", "main")]

    def _run(self, inputs):
        out = self._fn(*[self._tvm.runtime.tensor(a, self._dev) for a in inputs])
        return [np.asarray(o.numpy()) for o in _flatten(out)]


def _flatten(out):
    if hasattr(out, "numpy"):
        return [out]
    return [t for o in out for t in _flatten(o)]
