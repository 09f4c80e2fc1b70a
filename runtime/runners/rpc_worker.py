"""The process one RPC session lives in (started by edgecc.runtime.runners.RpcBench): open a session with a
device under the key, load the bundle there, warm up, then print one JSON line of samples for each count read
from stdin. Closing stdin ends the session and gives the device back to the tracker.

    python -m edgecc.runtime.runners.rpc_worker BUNDLE 127.0.0.1 9190 host-x86 --warmup 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from edgecc.errors import EdgeccError
from edgecc.runtime.rpc import check_rpc_bundle


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("bundle")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("key")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--session-timeout", type=int, default=600)
    a = p.parse_args(argv)

    def say(obj):
        print(json.dumps(obj), flush=True)

    try:
        from edgecc.bundle import Bundle
        from edgecc.errors import require

        bundle = Bundle.load(a.bundle)
        check_rpc_bundle(bundle)
        tvm = require("tvm", "apache-tvm==0.27.0.post1", "TVM RPC devices")
        from tvm import relax, rpc

        inputs = bundle.reference_inputs()
    except EdgeccError as e:
        say({"error": str(e)})
        return 0
    try:
        tracker = rpc.connect_tracker(a.host, a.port)
        remote = tracker.request(a.key, priority=1, session_timeout=a.session_timeout, max_retry=1)
        lib = bundle.artifact()
        remote.upload(str(lib))
        dev = remote.cpu()
        vm = relax.VirtualMachine(remote.load_module(lib.name), dev)
        fn = bundle.manifest["artifact"]["info"].get("function", "main")
        vm.set_input(fn, *[tvm.runtime.tensor(x, device=dev) for x in inputs])
        if a.warmup:
            vm.time_evaluator("invoke_stateful", dev, number=1, repeat=a.warmup)(fn)
    except Exception as e:  # tracker unreachable, no such key, server died: all "device lost"
        say({"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}",
             "lost": True})
        return 0
    say({"ready": True, "device_env": {"rpc_device": str(dev)}})
    for line in sys.stdin:
        n = int(line)
        t0 = time.perf_counter()
        res = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=n)(fn)
        say({"samples_ms": [r * 1e3 for r in res.results], "wall_s": time.perf_counter() - t0})
    return 0  # stdin closed: the session (and the tracker's lease on the device) ends with this process


if __name__ == "__main__":
    raise SystemExit(main())
