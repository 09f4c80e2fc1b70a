"""The squeeze pipeline: stages run in order, each a model -> model transform that records what it did.

    result = run_squeeze(loaded, stages, data="digits", log=print)
    result.model      a LoadedModel of the squeezed nn.Module (every backend exports and compiles it), or the
                      QuantizedModel of the int8 stage when the pipeline ends in int8 (the existing PTQ, calibrated
                      on the same data)
    result.rows       one row per stage (and one for the original): params, MACs, weight bytes, arena estimate,
                      top-1 on the held-out split where the data is a labelled dataset, error against the original
    squeeze_section(result, artifact_outputs, where, memory)  -> the manifest's `squeeze` section

The teacher of distill is always the original model. Stages: spec.py (parsing and checks), prune.py, lowrank.py,
distill.py, quant/ (int8), profile.py (the costs in each row).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from edgecc.compiler.frontends import LoadedModel
from edgecc.compiler.squeeze.spec import StageSpec
from edgecc.errors import ModelError

EVAL_SAMPLES = 256  # outputs compared with the original's when the data has no labelled held-out split


@dataclass
class SqueezeData:
    """The pipeline's data: training samples (+ labels), and the held-out split accuracy is measured on."""

    spec: str
    x: np.ndarray
    y: np.ndarray | None
    dataset: object = None  # models.datasets.Dataset or None
    info: dict = field(default_factory=dict)

    @property
    def eval_x(self) -> np.ndarray:
        return self.dataset.x_test if self.dataset is not None else self.x[:EVAL_SAMPLES]


def load_squeeze_data(spec: str, input_shape, model_source: str = "") -> SqueezeData | None:
    """The samples of a dataset name (all of its training split, with labels) or of a folder of .npy inputs."""
    from edgecc.compiler.squeeze.quant import load_calibration
    from edgecc.models import list_models
    from edgecc.models.datasets import get_dataset

    zoo = list_models().get(model_source)
    held_out = get_dataset(zoo.dataset) if zoo is not None and zoo.dataset else None  # accuracy is measured on it
    if not spec:
        return SqueezeData("", np.zeros((0, *input_shape[1:]), np.float32), None, held_out,
                           {"source": "none (the held-out split measures accuracy only)"}) if held_out else None
    samples, info, ds = load_calibration(spec, input_shape)
    if ds is not None:
        return SqueezeData(spec, ds.calibration, ds.y_calibration, ds,
                           {**info, "samples": int(len(ds.calibration)), "labels": ds.y_calibration is not None})
    return SqueezeData(spec, samples, None, held_out, {**info, "labels": False})


@dataclass
class SqueezeResult:
    model: LoadedModel
    rows: list[dict]
    original: object  # the source nn.Module
    data: SqueezeData | None
    fp32: object = None  # the last fp32 module (what int8 quantized, when the pipeline ends in int8)


def _outputs(fn, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([fn(torch.from_numpy(np.ascontiguousarray(x[i:i + 256]))).numpy()
                               for i in range(0, len(x), 256)])


def _quality(outputs: np.ndarray, reference: np.ndarray, data: SqueezeData | None) -> dict:
    row = {"max_abs_error_vs_original": float(np.max(np.abs(outputs - reference)))}
    if outputs.ndim == 2:
        row["top1_agreement_vs_original"] = round(float(np.mean(outputs.argmax(1) == reference.argmax(1))), 4)
    if data is not None and data.dataset is not None and outputs.ndim == 2:
        row["top1"] = round(float(np.mean(outputs.argmax(1) == data.dataset.y_test)), 4)
    return row


def _row(stage: str, module, example, eval_x, ref, data, did: dict, seconds: float) -> dict:
    from edgecc.compiler.squeeze.profile import model_costs

    row = {"stage": stage, **model_costs(module, example)}
    if eval_x is not None:
        row.update(_quality(_outputs(module, eval_x), ref, data))
    return {**row, "seconds": round(seconds, 2), "did": did}


def _apply(stage: StageSpec, module, original, example, data: SqueezeData | None, log):
    """One fp32 stage: (the new module, what it did)."""
    if stage.name == "prune":
        from edgecc.compiler.squeeze.prune import prune_channels

        return prune_channels(module, example, stage.get("ratio"), stage.get("layers"), stage.get("importance"),
                              data.x if data is not None and len(data.x) else None,
                              data.y if data is not None else None, stage.get("round_to"))
    if stage.name == "lowrank":
        from edgecc.compiler.squeeze.lowrank import factorize_lowrank

        return factorize_lowrank(module, stage.get("energy"))
    from edgecc.compiler.squeeze.distill import DistillOptions, distill

    return distill(module, original, data.x, data.y, DistillOptions.from_dict(stage.options), log)


def run_squeeze(loaded: LoadedModel, stages: list[StageSpec], data: str = "", log=None) -> SqueezeResult:
    """Run `stages` on `loaded` (a PyTorch model); see the module docstring."""
    import torch

    log = log or (lambda msg: None)
    if loaded.module is None:
        raise ModelError(f"--squeeze needs a PyTorch nn.Module (a zoo name or a .py:factory); {loaded.source} is "
                         f"a {loaded.kind} model")
    if len(loaded.example_inputs) != 1:
        raise ModelError("--squeeze supports one-input models")
    example = torch.from_numpy(loaded.example_inputs[0])
    sdata = load_squeeze_data(data, loaded.example_inputs[0].shape, loaded.source)
    original = loaded.module.eval()
    eval_x = sdata.eval_x if sdata is not None and len(sdata.eval_x) else loaded.example_inputs[0]
    ref = _outputs(original, eval_x)
    rows = [_row("original", original, example, eval_x, ref, sdata, {}, 0.0)]
    module, model = original, loaded
    for stage in stages:
        t0 = time.perf_counter()
        log(f"squeeze: {stage.name} {stage.options or ''}".rstrip())
        if stage.name == "int8":
            from edgecc.compiler.squeeze import quantize_model

            fp32 = dataclasses.replace(loaded, module=module, _exported=None)
            model = quantize_model(fp32, "int8", data)
            rows.append(_int8_row(model, module, example, eval_x, ref, sdata, rows[-1], time.perf_counter() - t0))
            break
        module, did = _apply(stage, module, original, example, sdata, log)
        rows.append(_row(stage.name, module, example, eval_x, ref, sdata, did, time.perf_counter() - t0))
        model = dataclasses.replace(loaded, module=module, _exported=None)
    return SqueezeResult(model, rows, original, sdata, module)


def _int8_row(q, module, example, eval_x, ref, data, prev: dict, seconds: float) -> dict:
    from edgecc.compiler.squeeze.profile import arena_estimate

    row = {"stage": "int8", "params": prev["params"], "macs": prev["macs"], "weight_bytes": q.qgraph.weight_bytes(),
           "arena_bytes": arena_estimate(module, example, element_bytes=1)}
    row.update(_quality(_outputs(q._qdq, eval_x), ref, data))
    return {**row, "seconds": round(seconds, 2),
            "did": {"scheme": "int8 static PTQ (the --quantize int8 stage)", "calibration": q.calibration,
                    "measured_on": "the int8 QDQ PyTorch reference"}}


def squeeze_section(result: SqueezeResult, artifact_outputs, where: str, memory: dict | None) -> dict:
    """The manifest's `squeeze` section: the stage rows, and the compiled artifact measured where it ran."""
    rows = result.rows
    first, last = rows[0], rows[-1]
    import torch

    from edgecc.compiler.squeeze.profile import layer_table

    example = torch.from_numpy(result.model.example_inputs[0])
    sec = {"stages": rows,
           "data": result.data.info if result.data is not None else "none",
           "summary": {"macs_reduction": round(first["macs"] / max(1, last["macs"]), 2),
                       "weight_bytes_reduction": round(first["weight_bytes"] / max(1, last["weight_bytes"]), 2)}}
    if "top1" in first and "top1" in last:
        sec["summary"]["top1_drop_points"] = round(100 * (first["top1"] - last["top1"]), 2)
    art: dict = {"ran_on": where}
    if artifact_outputs is not None:
        ref = _outputs(result.original, result.data.eval_x if result.data is not None and
                       len(result.data.eval_x) else result.model.example_inputs[0])
        art.update(_quality(np.asarray(artifact_outputs), ref, result.data))
        art["samples"] = int(len(artifact_outputs))
        if "top1" in art and "top1" in first:
            sec["summary"]["artifact_top1_drop_points"] = round(100 * (first["top1"] - art["top1"]), 2)
    if memory:
        art.update({"arena_bytes": memory.get("arena_bytes"), "weights_bytes": memory.get("weights_bytes")})
    sec["artifact"] = art
    sec["layers"] = layer_table(result.fp32, example)  # what `edgecc profile` shows for this bundle
    return sec


def measure_artifact(bundle, result: SqueezeResult, validate: bool) -> tuple[dict, dict | None]:
    """(the `squeeze` section, the `quantization` section when the pipeline ends in int8): the artifact runs once
    on the held-out split (or the data's first samples) where it can run here."""
    from edgecc.compiler.squeeze.quant import predict_all, quantization_report
    from edgecc.errors import CannotRunHere

    outputs, where = None, "skipped (--no-validate)"
    if validate and result.data is not None and len(result.data.eval_x):
        try:
            runner = bundle.runner()
            where = runner.where
            outputs = predict_all(runner, result.data.eval_x)
        except CannotRunHere as e:
            where = f"not run: {e}"
    mem = bundle.manifest["artifact"]["info"].get("memory")
    quant = None
    if getattr(result.model, "qgraph", None) is not None:
        q_out = outputs if result.data is not None and result.data.dataset is not None else None
        quant = quantization_report(result.model, q_out, where)
        if mem:
            quant["weights_bytes"]["artifact"] = mem["weights_bytes"]
    return squeeze_section(result, outputs, where, mem), quant


def squeeze_table(section: dict) -> str:
    """The per-stage table of a `squeeze` section, as Markdown."""
    out = ["| stage | params | MACs | weight bytes | arena bytes (est.) | top-1 | max abs err vs original |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in section["stages"]:
        top1 = f"{r['top1']:.2%}" if "top1" in r else "n/a"
        out.append(f"| {r['stage']} | {r['params']:,} | {r['macs']:,} | {r['weight_bytes']:,} | "
                   f"{r['arena_bytes']:,} | {top1} | {r.get('max_abs_error_vs_original', 0):.3g} |")
    a = section.get("artifact", {})
    if "top1" in a:
        out.append(f"| artifact ({a['ran_on']}) | | | {a.get('weights_bytes') or ''} | {a.get('arena_bytes') or ''} | "
                   f"{a['top1']:.2%} | {a['max_abs_error_vs_original']:.3g} |")
    return "\n".join(out)

