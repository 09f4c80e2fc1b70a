"""The quantization stage: a loaded fp32 model -> an int8 model every backend takes (`--quantize int8`).

    quantize_model(loaded, "int8", "digits")   -> QuantizedModel
        .qgraph                  the quantized graph (graph.py): micro emits int8 C kernels calls from it
        .save_artifacts(folder)  writes model.int8.onnx, the QDQ ONNX model (onnx_export.py) IREE and TVM compile
        .reference(x)            the quantized PyTorch reference (fake-quant QDQ module): what artifacts are
                                 checked against
        .fp32                    the original model, for accuracy and error against fp32

Calibration samples: calibration.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecc.compiler.frontends import LoadedModel
from edgecc.compiler.squeeze.quant.calibration import calibrate, load_calibration
from edgecc.compiler.squeeze.quant.graph import capture_graph, quantize_graph
from edgecc.compiler.squeeze.quant.onnx_export import qdq_onnx
from edgecc.compiler.squeeze.quant.reference import qdq_module, run_int8
from edgecc.errors import ModelError

SCHEMES = ("int8",)
# An artifact matches the quantized reference when every output is within this many output quantization steps.
# Each requantization may round one step differently (TFLite's fixed-point multiplier and half-away-from-zero vs
# the float reference's half-to-even); measured: up to 1 step on digits-cnn, 3 on resnet8 and ds-cnn (12-15 ops).
INT8_TOLERANCE_STEPS = 4
ONNX_FILE = "model.int8.onnx"


@dataclass
class QuantizedModel(LoadedModel):
    """A LoadedModel whose backend input is the QDQ ONNX graph and whose reference is the int8 QDQ PyTorch model."""

    qgraph: Any = None
    fp32: LoadedModel | None = None
    calibration: dict | None = None
    dataset: Any = None  # a models.datasets.Dataset with a labelled held-out split, or None
    # True for a backend that computes in integers (micro's int8 kernels): the reference is then run_int8, the
    # numpy TFLite arithmetic, and the artifact must match it bit for bit; the float QDQ model drifts from it by a
    # step per requantization (vww-mobilenetv1: 27 of them, 9 steps at the output)
    integer_reference: bool = False
    _qdq: Any = None

    @property
    def reference_name(self) -> str:
        return "numpy int8 reference (TFLite arithmetic)" if self.integer_reference else "pytorch int8 QDQ reference"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        self.check_inputs(inputs)
        if self.integer_reference:
            return [np.asarray(run_int8(self.qgraph, np.ascontiguousarray(inputs[0])), dtype=np.float32)]
        with torch.no_grad():
            return [self._qdq(torch.from_numpy(np.ascontiguousarray(inputs[0]))).numpy()]

    def save_artifacts(self, folder: Path) -> None:
        """The QDQ graph IREE and TVM compile (micro compiles the qgraph), in the bundle before a backend runs."""
        self.write_onnx(Path(folder) / ONNX_FILE)

    def write_onnx(self, path: Path) -> Path:
        import onnx

        onnx.save(qdq_onnx(self.qgraph, self.name), str(path))
        self.onnx_path = Path(path).resolve()
        return self.onnx_path

    def tolerance(self) -> dict:
        s = self.qgraph.qparams[self.qgraph.output][0]
        steps = 0 if self.integer_reference else INT8_TOLERANCE_STEPS  # integers: bit-exact
        return {"atol": steps * s, "rtol": 0.0, "int8_output_scale": s, "int8_steps": steps}


def quantize_model(loaded: LoadedModel, scheme: str, calibration: str) -> QuantizedModel:
    """Static post-training quantization of `loaded` (a PyTorch model) with samples from `calibration`."""
    if scheme not in SCHEMES:
        raise ModelError(f"unknown quantization {scheme!r}; supported: {', '.join(SCHEMES)}")
    if loaded.module is None:
        raise ModelError(f"--quantize needs a PyTorch nn.Module (a zoo name or a .py:factory); {loaded.source} is "
                         f"a {loaded.kind} model")
    if len(loaded.example_inputs) != 1:
        raise ModelError("--quantize supports one-input models")
    import torch

    x0 = loaded.example_inputs[0]
    samples, cal_info, dataset = load_calibration(calibration, x0.shape)
    g = capture_graph(loaded.module, torch.from_numpy(x0))
    quantize_graph(g, calibrate(g, samples))
    cal_info["observer"] = "min/max"
    q = QuantizedModel(**{f.name: getattr(loaded, f.name) for f in dataclasses.fields(LoadedModel)},
                       qgraph=g, fp32=loaded, calibration=cal_info, dataset=_eval_dataset(loaded, dataset))
    q.kind, q.input_names, q.output_names = "onnx", ["input"], ["output"]
    q._qdq = qdq_module(g)
    return q


def _eval_dataset(loaded, dataset):
    """The labelled split accuracy is measured on: the calibration dataset, or the one the zoo model names."""
    if dataset is not None:
        return dataset
    from edgecc.models import list_models
    from edgecc.models.datasets import get_dataset

    spec = list_models().get(loaded.source)
    return get_dataset(spec.dataset) if spec is not None and spec.dataset else None


def predict_all(runner, x: np.ndarray) -> np.ndarray:
    """Outputs of a runner on every sample of x (N, ...): its batch method when it has one (the micro firmware
    runs them all in one boot), else one call per sample."""
    return runner.run_many(x)


def quantization_report(model: QuantizedModel, artifact_outputs: np.ndarray | None, where: str) -> dict:
    """The manifest's `quantization` section (artifact_outputs: the artifact on the held-out inputs)."""
    import torch

    g = model.qgraph
    s_out, zp_out = g.qparams[g.output]
    rep = {
        "scheme": "int8 static post-training: per-channel symmetric int8 weights, per-tensor asymmetric int8 "
                  "activations, int32 bias, fixed-point requantization (TFLite arithmetic)",
        "calibration": model.calibration,
        "output_qparams": {"scale": s_out, "zero_point": zp_out},
        "weights_bytes": {"fp32": g.fp32_weight_bytes(), "int8": g.weight_bytes()},
        "tolerance_vs_int8_reference": f"{INT8_TOLERANCE_STEPS} output quantization steps "
                                       f"({INT8_TOLERANCE_STEPS * s_out:.4g})",
    }
    ds = model.dataset
    if ds is None:
        rep["accuracy"] = "not measured: no labelled dataset for this model"
        return rep
    x, y = ds.x_test, ds.y_test
    with torch.no_grad():
        fp32 = model.fp32.module(torch.from_numpy(x)).numpy()
        qdq = model._qdq(torch.from_numpy(x)).numpy()
    acc = lambda o: round(float(np.mean(np.argmax(o, axis=1) == y)), 4)  # noqa: E731
    rep["accuracy"] = {"dataset": ds.name, "split": "held-out test", "samples": int(len(y)),
                       "fp32_pytorch": acc(fp32), "int8_pytorch_reference": acc(qdq)}
    if artifact_outputs is not None:
        rep["accuracy"]["int8_artifact"] = acc(artifact_outputs)
        rep["accuracy"]["int8_artifact_ran_on"] = where
        rep["accuracy"]["drop_points_vs_fp32"] = round(100 * (acc(fp32) - acc(artifact_outputs)), 2)
        rep["max_abs_error_vs_fp32"] = float(np.max(np.abs(artifact_outputs - fp32)))
        rep["max_abs_error_vs_int8_reference"] = float(np.max(np.abs(artifact_outputs - qdq)))
        rep["max_error_steps_vs_int8_reference"] = round(rep["max_abs_error_vs_int8_reference"] / s_out, 2)
        # 0 steps: bit-exact with TFLite arithmetic (the micro kernels); IREE/TVM requantize in float
        rep["max_error_steps_vs_integer_reference"] = round(
            float(np.max(np.abs(artifact_outputs - run_int8(g, x)))) / s_out, 2)
        rep["top1_agreement_with_fp32"] = round(float(np.mean(np.argmax(artifact_outputs, 1) == np.argmax(fp32, 1))), 4)
    else:
        rep["accuracy"]["int8_artifact"] = f"not run: {where}"
    return rep
