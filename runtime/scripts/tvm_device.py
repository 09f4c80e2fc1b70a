"""Run or time this edgecc TVM bundle on a GPU (or the CPU) with TVM's Python runtime.

    python3 tvm_device.py run   DEVICE OUT_DIR [IN.npy ...]
    python3 tvm_device.py bench DEVICE ITERATIONS WARMUP OUT.json [IN.npy ...]

DEVICE: cuda | opencl | cpu. Inputs default to the bundle's reference inputs (input_<i>.npy beside this file).
`run` writes OUT_DIR/output_<i>.npy; `bench` synchronizes the device after every call, times each with
time.perf_counter, and writes {"samples_ms": [...], "warmup": W, "iterations": N, "device": ...}.
Needs `pip install apache-tvm==@TVM_VERSION@` (its wheels carry libtvm_runtime_cuda.so on x86-64 and aarch64;
OpenCL needs a TVM runtime built with USE_OPENCL=ON). TVM 0.27 compiles the CUDA kernels of model.so with
NVRTC when it loads them.
"""
import glob
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE, FUNCTION = "@MODULE@", "@FUNCTION@"


def fail(msg):
    sys.stderr.write("tvm_device.py: " + msg + "\n")
    sys.exit(1)


def flatten(result):
    """A VM result (a tensor or nested tuples of them) as a list of tensors."""
    if hasattr(result, "numpy"):
        return [result]
    return [t for item in result for t in flatten(item)]


def main(argv):
    if len(argv) < 3 or argv[0] not in ("run", "bench"):
        fail("usage: run DEVICE OUT_DIR [IN.npy ...] | bench DEVICE ITERATIONS WARMUP OUT.json [IN.npy ...]")
    try:
        import numpy as np
        import tvm
        from tvm import relax
    except ImportError as e:
        fail("%s: pip install apache-tvm==@TVM_VERSION@" % e)
    mode, kind = argv[0], argv[1]
    if kind not in ("cuda", "opencl", "cpu"):
        fail("unknown device %r: cuda, opencl or cpu" % kind)
    dev = getattr(tvm, kind)(0)
    if not dev.exist:
        fail("no %s device visible to TVM here (needs the GPU, its driver, and a TVM runtime built with %s)"
             % (kind, kind.upper()))
    rest = argv[3:] if mode == "run" else argv[5:]
    files = rest or sorted(glob.glob(os.path.join(HERE, "input_*.npy")),
                           key=lambda f: int(f.rsplit("_", 1)[1].split(".")[0]))
    vm = relax.VirtualMachine(tvm.runtime.load_module(os.path.join(HERE, MODULE)), dev)
    inputs = [tvm.runtime.tensor(np.load(f), device=dev) for f in files]
    fn = vm[FUNCTION]
    if mode == "run":
        out_dir = argv[2]
        os.makedirs(out_dir, exist_ok=True)
        for i, o in enumerate(flatten(fn(*inputs))):
            np.save(os.path.join(out_dir, "output_%d.npy" % i), o.numpy())
        return 0
    iters, warmup, out_json = int(argv[2]), int(argv[3]), argv[4]
    for _ in range(warmup):
        fn(*inputs)
    dev.sync()
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn(*inputs)
        dev.sync()
        samples.append((time.perf_counter() - t0) * 1e3)
    with open(out_json, "w") as f:
        json.dump({"samples_ms": samples, "warmup": warmup, "iterations": iters, "device": str(dev)}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
