"""Running TensorRT bundles from here: the engine needs the device's GPU and TensorRT, so what runs here is the
bundle's model.onnx under ONNX Runtime (CPU), which checks the numerics of exactly what TensorRT will parse."""

from __future__ import annotations

import numpy as np

from edgecc.errors import CannotRunHere, require
from edgecc.runtime.runners.local import LocalRunner
from edgecc.runtime.runners.registry import register_runner


@register_runner("tensorrt", "onnx-check")
class OnnxRuntimeCheckRunner(LocalRunner):
    where = "host (ONNX Runtime CPU, model.onnx)"

    def __init__(self, bundle):
        super().__init__(bundle)
        ort = require("onnxruntime", "onnxruntime", "checking a TensorRT bundle's ONNX")
        info = bundle.manifest["artifact"]["info"]
        self.note = info.get("checked_here", "")
        self._engine_note = info.get("engine", "engine not built")
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        self._sess = ort.InferenceSession(str(bundle.path / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        self._in = [i.name for i in self._sess.get_inputs()]

    def _run(self, inputs):
        return [np.asarray(o) for o in self._sess.run(None, dict(zip(self._in, inputs, strict=True)))]

    def time(self, inputs, warmup, iters):
        raise CannotRunHere(f"the TensorRT engine is {self._engine_note}; ONNX Runtime's CPU speed says nothing "
                            "about it: time the engine on the device with bench.sh and parse it with "
                            "`edgecc trtexec-report`")
