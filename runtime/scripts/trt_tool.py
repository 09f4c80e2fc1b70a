#!/usr/bin/env python3
"""Build, time and run this edgecc bundle's TensorRT engine on the device (written by edgecc, TensorRT @TRT_VERSION@).

    python3 trt_tool.py build --onnx model.onnx --plan plan.json --engine model.engine [--timing-cache F]
    python3 trt_tool.py bench --engine E --plan plan.json --iterations 200 --warmup-ms 500 --out DIR
    python3 trt_tool.py run   --engine E --plan plan.json --out DIR [input_0.npy ...]

`build` uses the TensorRT Python API (for devices without trtexec). `run` uses trtexec when present (numpy only),
else the Python API. The Python API paths need GPU buffers from torch (CUDA) or pycuda. `bench` writes times.json in
trtexec's --exportTimes format and profile.json in its --exportProfile format, so one parser reads both.
Runs on Python >= 3.6 (JetPack 4.6 ships 3.6).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def die(msg):
    sys.stderr.write("trt_tool.py: error: %s\n" % msg)
    sys.exit(1)


def import_trt():
    try:
        import tensorrt as trt
    except ImportError:
        die("the TensorRT Python module is not installed (import tensorrt failed); install TensorRT @TRT_VERSION@")
    return trt


def major(trt):
    return int(trt.__version__.split(".")[0])


def build(args):
    trt = import_trt()
    with open(args.plan) as f:
        plan = json.load(f)
    logger = trt.Logger(trt.Logger.INFO)
    builder = trt.Builder(logger)
    flags = 0 if major(trt) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with open(args.onnx, "rb") as f:
        if not parser.parse(f.read()):
            die("; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)) or "ONNX parse failed")
    config = builder.create_builder_config()
    workspace = int(plan["workspace_mb"]) << 20
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    else:  # TensorRT < 8.4
        config.max_workspace_size = workspace
    if plan["precision"] in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if plan["precision"] == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    if plan.get("dla_core") is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(plan["dla_core"])
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    if plan.get("dynamic_batch"):
        profile = builder.create_optimization_profile()
        for name, s in plan["shapes"].items():
            profile.set_shape(name, s["min"], s["opt"], s["max"])
        config.add_optimization_profile(profile)
    cache = None
    if args.timing_cache:
        data = b""
        if os.path.isfile(args.timing_cache):
            with open(args.timing_cache, "rb") as f:
                data = f.read()
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, False)
    t0 = time.time()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        die("TensorRT could not build the engine (see the log above)")
    with open(args.engine, "wb") as f:
        f.write(serialized)
    if cache is not None:
        with open(args.timing_cache + ".tmp", "wb") as f:
            f.write(cache.serialize())
        os.replace(args.timing_cache + ".tmp", args.timing_cache)
    print("TensorRT version: %s" % trt.__version__)
    print("Engine built in %.3f sec" % (time.time() - t0))


class Gpu:
    """GPU buffers and CUDA events from torch (CUDA build) or pycuda, whichever is installed."""

    def __init__(self):
        try:
            import torch
            if torch.cuda.is_available():
                self.torch, self.kind = torch, "torch"
                self.stream = torch.cuda.Stream()
                return
        except ImportError:
            pass
        try:
            import pycuda.autoinit  # noqa: F401
            import pycuda.driver as cuda
            self.cuda, self.kind = cuda, "pycuda"
            self.stream = cuda.Stream()
            return
        except ImportError:
            die("the TensorRT Python API path needs GPU buffers: install torch (CUDA) or pycuda, or use trtexec")

    def handle(self):
        return self.stream.cuda_stream if self.kind == "torch" else self.stream.handle

    def empty(self, shape, dtype):
        import numpy as np
        if self.kind == "torch":
            t = self.torch.empty(tuple(shape), dtype=getattr(self.torch, np.dtype(dtype).name), device="cuda")
            return t, t.data_ptr()
        buf = self.cuda.mem_alloc(max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize))
        return buf, int(buf)

    def h2d(self, dev, host):
        if self.kind == "torch":
            with self.torch.cuda.stream(self.stream):
                dev.copy_(self.torch.from_numpy(host), non_blocking=True)
        else:
            self.cuda.memcpy_htod_async(dev, host, self.stream)

    def d2h(self, host, dev):
        if self.kind == "torch":
            with self.torch.cuda.stream(self.stream):
                host[...] = dev.cpu().numpy()
        else:
            self.cuda.memcpy_dtoh_async(host, dev, self.stream)

    def event(self):
        if self.kind == "torch":
            e = self.torch.cuda.Event(enable_timing=True)
            return e
        return self.cuda.Event()

    def record(self, e):
        e.record(self.stream)

    def elapsed_ms(self, a, b):
        b.synchronize()
        return a.elapsed_time(b) if self.kind == "torch" else b.time_since(a)

    def sync(self):
        self.stream.synchronize()


class Engine:
    def __init__(self, path, plan):
        self.trt = trt = import_trt()
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if plan.get("dla_core") is not None:
            self.runtime.DLA_core = int(plan["dla_core"])
        with open(path, "rb") as f:
            self.engine = self.runtime.deserialize_cuda_engine(f.read())
        if self.engine is None:
            die("could not deserialize %s (built by another TensorRT version or GPU?)" % path)
        self.context = self.engine.create_execution_context()
        self.plan, self.gpu = plan, Gpu()

    def setup(self, inputs):
        import numpy as np
        self.host_in = [np.ascontiguousarray(a) for a in inputs]
        self.dev_in, self.dev_out, self.host_out = [], [], []
        new_api = major(self.trt) >= 10
        for spec, a in zip(self.plan["inputs"], self.host_in):
            dev, ptr = self.gpu.empty(a.shape, a.dtype)
            self.dev_in.append((spec["name"], dev, ptr))
            if new_api:
                self.context.set_input_shape(spec["name"], a.shape)
            else:
                self.context.set_binding_shape(self.engine.get_binding_index(spec["name"]), a.shape)
        for spec in self.plan["outputs"]:
            if new_api:
                shape = tuple(self.context.get_tensor_shape(spec["name"]))
            else:
                shape = tuple(self.context.get_binding_shape(self.engine.get_binding_index(spec["name"])))
            host = np.empty(shape, dtype=spec["dtype"])
            dev, ptr = self.gpu.empty(shape, host.dtype)
            self.dev_out.append((spec["name"], dev, ptr))
            self.host_out.append(host)
        if new_api:
            for name, _, ptr in self.dev_in + self.dev_out:
                self.context.set_tensor_address(name, ptr)
        else:
            self.bindings = [0] * self.engine.num_bindings
            for name, _, ptr in self.dev_in + self.dev_out:
                self.bindings[self.engine.get_binding_index(name)] = ptr

    def h2d(self):
        for (_, dev, _), host in zip(self.dev_in, self.host_in):
            self.gpu.h2d(dev, host)

    def compute(self):
        if major(self.trt) >= 10:
            ok = self.context.execute_async_v3(self.gpu.handle())
        else:
            ok = self.context.execute_async_v2(self.bindings, self.gpu.handle())
        if not ok:
            die("TensorRT execution failed")

    def d2h(self):
        for (_, dev, _), host in zip(self.dev_out, self.host_out):
            self.gpu.d2h(host, dev)


def load_inputs(plan, files):
    import numpy as np
    files = files or [os.path.join(HERE, "input_%d.npy" % i) for i in range(len(plan["inputs"]))]
    if len(files) != len(plan["inputs"]):
        die("the model takes %d input(s), got %d" % (len(plan["inputs"]), len(files)))
    arrays = []
    for f, spec in zip(files, plan["inputs"]):
        a = np.load(f, allow_pickle=False)
        if str(a.dtype) != spec["dtype"]:
            die("%s has dtype %s, expected %s" % (f, a.dtype, spec["dtype"]))
        arrays.append(a)
    return arrays


def run(args):
    import numpy as np
    plan = json.load(open(args.plan))
    inputs = load_inputs(plan, args.inputs)
    trtexec = os.environ.get("TRTEXEC") or shutil.which("trtexec") or (
        "/usr/src/tensorrt/bin/trtexec" if os.access("/usr/src/tensorrt/bin/trtexec", os.X_OK) else "")
    if trtexec:
        outputs = run_trtexec(trtexec, args.engine, plan, inputs)
    else:
        eng = Engine(args.engine, plan)
        eng.setup(inputs)
        eng.h2d()
        eng.compute()
        eng.d2h()
        eng.gpu.sync()
        outputs = eng.host_out
    for i, o in enumerate(outputs):
        path = os.path.join(args.out, "output_%d.npy" % i)
        np.save(path, o)
        print("output %d: shape %s -> %s" % (i, list(o.shape), path))


def run_trtexec(trtexec, engine, plan, inputs):
    """One inference with trtexec: raw .bin inputs (--loadInputs), outputs from --exportOutput JSON."""
    import numpy as np
    d = tempfile.mkdtemp(prefix="edgecc-trt-")
    try:
        load = []
        for spec, a in zip(plan["inputs"], inputs):
            path = os.path.join(d, spec["name"] + ".bin")
            a.tofile(path)
            load.append("%s:%s" % (spec["name"], path))
        argv = [trtexec, "--loadEngine=" + engine, "--loadInputs=" + ",".join(load),
                "--exportOutput=" + os.path.join(d, "out.json"), "--iterations=1", "--warmUp=0", "--duration=0"]
        argv += plan["trtexec_run_flags"]
        if plan.get("dynamic_batch"):
            argv.append("--shapes=" + ",".join("%s:%s" % (s["name"], "x".join(map(str, a.shape)))
                                               for s, a in zip(plan["inputs"], inputs)))
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            die("trtexec failed (exit %d): %s" % (proc.returncode, proc.stdout.decode(errors="replace")[-2000:]))
        exported = {o["name"]: o for o in json.load(open(os.path.join(d, "out.json")))}
        outs = []
        for spec in plan["outputs"]:
            o = exported[spec["name"]]
            shape = [int(x) for x in str(o["dimensions"]).split("x") if x]
            outs.append(np.asarray(o["values"], dtype=spec["dtype"]).reshape(shape))
        return outs
    finally:
        shutil.rmtree(d, ignore_errors=True)


def bench(args):
    plan = json.load(open(args.plan))
    eng = Engine(args.engine, plan)
    eng.setup(load_inputs(plan, None))
    gpu = eng.gpu
    t_end = time.time() + args.warmup_ms / 1000.0
    while time.time() < t_end:
        eng.h2d()
        eng.compute()
        eng.d2h()
        gpu.sync()
    records = []
    for _ in range(args.iterations):
        e = [gpu.event() for _ in range(4)]
        gpu.record(e[0])
        eng.h2d()
        gpu.record(e[1])
        eng.compute()
        gpu.record(e[2])
        eng.d2h()
        gpu.record(e[3])
        gpu.sync()
        h2d, comp, d2h = gpu.elapsed_ms(e[0], e[1]), gpu.elapsed_ms(e[1], e[2]), gpu.elapsed_ms(e[2], e[3])
        records.append({"h2dMs": h2d, "computeMs": comp, "d2hMs": d2h, "latencyMs": h2d + comp + d2h})
    with open(os.path.join(args.out, "times.json"), "w") as f:
        json.dump(records, f, indent=0)
    with open(os.path.join(args.out, "profile.json"), "w") as f:
        json.dump([{"count": 0}], f)  # no per-layer profile from this path
    print("TensorRT version: %s" % eng.trt.__version__)
    print("edgecc trt_tool.py bench: %d iterations with the TensorRT Python API (%s buffers, CUDA events)"
          % (args.iterations, gpu.kind))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd")
    b = sub.add_parser("build")
    b.add_argument("--onnx", required=True)
    b.add_argument("--plan", required=True)
    b.add_argument("--engine", required=True)
    b.add_argument("--timing-cache", default="")
    r = sub.add_parser("run")
    r.add_argument("--engine", required=True)
    r.add_argument("--plan", required=True)
    r.add_argument("--out", default=".")
    r.add_argument("inputs", nargs="*")
    m = sub.add_parser("bench")
    m.add_argument("--engine", required=True)
    m.add_argument("--plan", required=True)
    m.add_argument("--iterations", type=int, default=200)
    m.add_argument("--warmup-ms", type=float, default=500)
    m.add_argument("--out", default="trt-bench")
    args = p.parse_args()
    if args.cmd is None:
        p.print_help()
        return 2
    {"build": build, "run": run, "bench": bench}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
