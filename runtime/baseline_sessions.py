"""The peer runtimes the baselines time, each as `make(loaded, threads, work) -> (fn, extra)`: `fn(inputs)` runs
one inference on a list of numpy arrays, `extra` says how the runtime was set up (recorded in the timing).

Each one runs the bundle's model the way that runtime's own documentation deploys it on a CPU:

- ONNX Runtime: the model's ONNX (a PyTorch model is exported with `torch.onnx.export`), CPU execution provider.
- OpenVINO: the same ONNX file read by `openvino.Core`, compiled for `CPU` with the latency hint and f32 inference
  precision (OpenVINO's CPU plugin would otherwise pick bf16 on CPUs that have it; edgecc's artifacts are f32).
- ExecuTorch: `torch.export` → `to_edge_transform_and_lower` with the XNNPACK partitioner → a `.pte` program,
  run by `executorch.runtime`; ops XNNPACK does not take run on ExecuTorch's portable kernels (listed in extra).
- PyTorch eager: the module itself under `torch.no_grad()`.

    fn, extra = SESSIONS["openvino"](loaded, 2, Path("/tmp/work"))
    outs = fn([np.zeros((1, 3, 224, 224), np.float32)])
"""

from __future__ import annotations

import json
from pathlib import Path


def onnx_file(loaded, work: Path) -> Path:
    """The model as ONNX: the source file for an ONNX model, else a `torch.onnx.export` into `work` (kept: a later
    worker with the same `work` folder reuses it)."""
    if loaded.onnx_path is not None:
        return Path(loaded.onnx_path)
    path = work / "model.onnx"
    if not path.exists():
        import torch

        args = tuple(torch.from_numpy(a) for a in loaded.example_inputs)
        tmp = work / "model.onnx.partial"
        torch.onnx.export(loaded.module, args, str(tmp), input_names=loaded.input_names, dynamo=False)
        tmp.replace(path)
    return path


def ort_session(loaded, threads: int, work: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_file(loaded, work)), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return (lambda xs: sess.run(None, dict(zip(names, xs, strict=True)))), {"execution_provider": "CPU"}


def openvino_session(loaded, threads: int, work: Path):
    import openvino as ov

    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(str(onnx_file(loaded, work)), "CPU", config)
    request = compiled.create_infer_request()
    outputs = list(compiled.outputs)

    def fn(xs):
        result = request.infer(xs, share_inputs=True)
        return [result[o] for o in outputs]

    return fn, {"device": "CPU", **{k: str(v) for k, v in config.items()}}


def executorch_session(loaded, threads: int, work: Path):
    import torch

    if loaded.kind == "onnx":
        raise RuntimeError("the model is an ONNX file; ExecuTorch needs a PyTorch model to export")
    pte, note = work / "model.xnnpack.pte", work / "model.xnnpack.json"
    if not pte.exists() or not note.exists():
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        edge = to_edge_transform_and_lower(loaded.exported_program_fp32(), partitioner=[XnnpackPartitioner()])
        tmp = work / "model.xnnpack.pte.partial"
        tmp.write_bytes(edge.to_executorch().buffer)
        note.write_text(json.dumps({"ops_outside_xnnpack": _ops_outside_delegate(edge.exported_program().graph)}))
        tmp.replace(pte)
    from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count, _unsafe_reset_threadpool
    from executorch.runtime import Runtime, Verification

    if threads:  # XNNPACK runs on ExecuTorch's one process-wide threadpool (all cores by default)
        _unsafe_reset_threadpool(threads)
    method = Runtime.get().load_program(pte, verification=Verification.Minimal).load_method("forward")
    extra = {"delegate": "XnnpackBackend", "threadpool_threads": _threadpool_get_thread_count(),
             **json.loads(note.read_text())}

    def fn(xs):
        return method.execute([torch.from_numpy(x) for x in xs])

    return fn, extra


def _ops_outside_delegate(graph) -> list[str]:
    """The ops of the lowered graph XNNPACK did not take (they run on ExecuTorch's portable kernels)."""
    skip = ("executorch_call_delegate", "getitem")
    return sorted({str(getattr(n.target, "__name__", n.target)) for n in graph.nodes
                   if n.op == "call_function" and getattr(n.target, "__name__", "") not in skip})


def torch_session(loaded, threads: int, work: Path):
    import torch

    if loaded.kind == "onnx":
        raise RuntimeError("the model is an ONNX file; there is no PyTorch module to run")
    if threads:
        torch.set_num_threads(threads)
    module = loaded.module if loaded.module is not None else loaded.exported_program().module()

    def fn(xs):
        with torch.no_grad():
            return module(*[torch.from_numpy(x) for x in xs])

    return fn, {}


SESSIONS = {"ort": ort_session, "openvino": openvino_session, "executorch": executorch_session,
            "torch": torch_session}
