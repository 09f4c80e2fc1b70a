"""The compile driver: model source → backend compile → bundle → validate, in one direction."""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from edgecc.bundle import Bundle, check_replaceable, staging, write_manifest
from edgecc.compiler.artifact import CompileOptions
from edgecc.compiler.backends import get_backend
from edgecc.compiler.frontends import load_model
from edgecc.errors import CannotRunHere, EdgeccError, ModelError, TargetError, UsageError, ValidationError, first_line
from edgecc.targets import get_target
from edgecc.validate import PRECISION_TOLERANCE, compare_samples


def compile(model, example_inputs=None, target: str = "host", backend: str | None = None,
            output: str | Path | None = None, *, validate: bool = True, extra_flags=(), board: str = "",
            input_shapes=None, tolerance: dict | None = None, allow_pickle: bool = False,
            keep_intermediates: bool = False, options: dict | None = None, name: str | None = None,
            quantize: str = "", calibration: str = "", force: bool = False, log=None, note=None,
            precision: str = "fp32", input_ranges=(), validate_with: str = "", validate_samples: int = 8,
            squeeze="", squeeze_data: str = "", record_as: str | Path | None = None) -> Bundle:
    """Compile a model for a target and return the validated Bundle.

    `model` is a zoo name, "file.py:factory", a .pt2 / .onnx path, or an nn.Module (with example_inputs).
    `quantize="int8"` squeezes it first (static PTQ, calibrated on `calibration`: a dataset name or a .npy folder).
    `squeeze="prune=0.5,distill,int8"` (or a .toml with a [squeeze] section) runs the squeeze pipeline first,
    on `squeeze_data` (a dataset name or a .npy folder); compiler/squeeze/spec.py has the forms.
    `output` may be a new or empty folder or a bundle edgecc wrote; anything else needs `force=True`.
    `precision="fp16"|"bf16"` builds reduced-precision arithmetic where the target and backend do it, validated at a
    tolerance scaled for it. `validate_with` (a dataset name, .npy, .npz or folder) validates on up to
    `validate_samples` of the user's samples instead of the one example input; `input_ranges` (InputRange, from
    `--input-range`) make the example inputs fit the model.
    `record_as` is the folder the bundle will be moved to when it is built elsewhere (a matrix cell on a Ray
    worker): its recorded calls name that folder, as a build there would.

        >>> b = edgecc.compile("resnet8", target="host", backend="tvm")          # doctest: +SKIP
        >>> b = edgecc.compile(my_module, (torch.randn(1, 3, 32, 32),))          # doctest: +SKIP
    """
    log = log or (lambda msg: None)
    tgt = get_target(target)
    backend = backend or tgt.default_backend
    stages, squeezed = _check_squeeze(squeeze, squeeze_data, quantize), None
    int8_last = "int8" if stages and stages[0][-1].name == "int8" else ""
    be = _check_request(tgt, backend, board, options or {}, extra_flags, name, output, force, quantize, calibration)
    _check_validation_request(tgt, be, backend, precision, quantize or int8_last, validate_with, validate_samples)
    log(f"loading {model if isinstance(model, (str, Path)) else type(model).__name__}")
    loaded = load_model(model, example_inputs, input_shapes, name=name, allow_pickle=allow_pickle,
                        input_ranges=tuple(input_ranges))
    if quantize:
        from edgecc.compiler.squeeze import quantize_model

        log(f"quantizing {loaded.name} to {quantize} (calibration: {calibration})")
        loaded = quantize_model(loaded, quantize, calibration)
    elif precision != "fp32":
        tolerance = {**PRECISION_TOLERANCE[precision], **(tolerance or {})}
    if stages:
        from edgecc.compiler.squeeze.pipeline import run_squeeze

        squeezed = run_squeeze(loaded, *stages, log=log)
        loaded = squeezed.model
    if getattr(loaded, "qgraph", None) is not None:
        # a backend computing in integers is held to the integer reference, bit for bit
        arithmetic = be.int8_arithmetic(loaded.qgraph, tgt, options or {}) if hasattr(be, "int8_arithmetic") \
            else getattr(be, "INT8_ARITHMETIC", "")
        loaded.integer_reference = arithmetic == "integer"
        tolerance = {**loaded.tolerance(), **(tolerance or {})}
    samples = _validation_samples(loaded, validate_with, validate_samples) if validate else None
    if precision != "fp32" and getattr(be, "PRECISION_AT_SOURCE", False):
        _demote(loaded, precision)
    if name is None:  # a name derived from a file name: made into one plain path component
        loaded.name = re.sub(r"[^A-Za-z0-9_.+-]", "-", loaded.name).lstrip(".-")[:128] or "model"
    check_name(loaded.name)
    out = Path(output) if output else Path("build") / f"{loaded.name}-{tgt.name}-{backend}"
    opts = CompileOptions(extra_flags=tuple(extra_flags), board=board or tgt.default_board, validate=validate,
                          options=dict(options or {}), precision=precision)

    with staging(out, force=force, note=note) as tmp:
        inputs = samples.inputs[0] if samples is not None else loaded.example_inputs
        if samples is not None and validate_with:
            loaded.input_values = [{"source": f"sample 0 of --validate-with {validate_with}"}] * len(inputs)
        ref_outputs = loaded.reference(inputs)
        io = _save_reference(tmp, loaded, inputs, ref_outputs)
        loaded.save_artifacts(tmp)  # a squeeze stage's own files (int8: model.int8.onnx), which backends read
        log(f"compiling {loaded.name} for {tgt.name} with {backend}")
        t0 = time.perf_counter()
        artifact = be.compile(loaded, tgt, tmp, opts)
        compile_s = time.perf_counter() - t0
        if not keep_intermediates:
            shutil.rmtree(tmp / "work", ignore_errors=True)
        manifest = _manifest(loaded, tgt, be, opts, artifact, compile_s, io)
        manifest["options"]["precision"] = precision
        # the calls ran in the temp folder; recorded against the folder the bundle is renamed to, they paste
        manifest["compile"] = _replace_paths(manifest["compile"], str(tmp), os.path.abspath(record_as or out))
        if validate:
            log("validating against " + loaded.reference_name)
            manifest["validation"] = _validate(Bundle(tmp, manifest), loaded, samples, tolerance, precision)
        if precision != "fp32" and loaded.dataset_name:
            log(f"measuring {precision} accuracy on {loaded.dataset_name}")
            manifest["precision"] = _precision_section(Bundle(tmp, manifest), loaded, precision, validate,
                                                       be.PRECISIONS[precision],
                                                       getattr(be, "PRECISION_CHECKED_HERE", True))
        if quantize:
            log("measuring int8 accuracy and error vs fp32")
            manifest["quantization"] = _quantization_section(Bundle(tmp, manifest), loaded, validate)
        if squeezed is not None:
            from edgecc.compiler.squeeze.pipeline import measure_artifact

            log("measuring the squeezed artifact against the original model")
            manifest["squeeze"], quant = measure_artifact(Bundle(tmp, manifest), squeezed, validate)
            if quant is not None:
                manifest["quantization"] = quant
        write_manifest(tmp, manifest)
    return Bundle.load(out)


def _replace_paths(obj, old: str, new: str):
    """`obj` (JSON data) with every `old` path prefix in its strings replaced by `new`."""
    if isinstance(obj, str):
        return obj.replace(old, new)
    if isinstance(obj, list):
        return [_replace_paths(x, old, new) for x in obj]
    if isinstance(obj, dict):
        return {k: _replace_paths(v, old, new) for k, v in obj.items()}
    return obj


def _check_request(tgt, backend, board, options, extra_flags, name, output, force, quantize, calibration):
    """Everything about the request that can be refused before any model is loaded; returns the backend."""
    tgt.backend(backend)  # refuses unknown / non-serving / refused backends before any work
    if board:
        tgt.board(board)
    be = get_backend(backend)
    check_backend_options(be, backend, options, extra_flags)
    if name is not None:
        check_name(name)
    if output:
        check_replaceable(Path(output), force)
    if calibration and not quantize:
        raise ModelError("--calibration is only used with --quantize int8")
    if quantize:
        from edgecc.compiler.squeeze import SCHEMES, load_calibration

        if quantize not in SCHEMES:
            raise ModelError(f"unknown quantization {quantize!r}; supported: {', '.join(SCHEMES)}")
        if not calibration:
            load_calibration("", ())  # raises the one-line "needs calibration samples" error before any work
    return be


def _check_squeeze(squeeze, squeeze_data: str, quantize: str):
    """(stages, data) of a --squeeze request, checked before any model is loaded; None without one."""
    if not squeeze:
        if squeeze_data:
            raise UsageError("--squeeze-data is only used with --squeeze")
        return None
    if quantize:
        raise UsageError("--quantize and --squeeze together: end the --squeeze stages with int8 instead")
    from edgecc.compiler.squeeze.spec import resolve_squeeze

    return resolve_squeeze(squeeze, squeeze_data)


def _save_reference(tmp: Path, loaded, inputs, ref_outputs) -> dict:
    """The io spec, with the example inputs and the reference outputs saved beside it as .npy."""
    io = loaded.io_spec(ref_outputs)
    for i, (spec, a) in enumerate(zip(io["inputs"], inputs, strict=True)):
        spec["file"] = f"input_{i}.npy"
        np.save(tmp / spec["file"], a)
    for i, (spec, a) in enumerate(zip(io["outputs"], ref_outputs, strict=True)):
        spec["file"] = f"reference_output_{i}.npy"
        np.save(tmp / spec["file"], a)
    return io


def _manifest(loaded, tgt, be, opts, artifact, compile_s: float, io: dict) -> dict:
    """The manifest before validation (edgecc.manifest.Manifest is its typed form)."""
    return {
        "model": {"name": loaded.name, "source": loaded.source, "kind": loaded.kind, "task": loaded.task,
                  "source_sha256": loaded.source_sha256,
                  **({"onnx": loaded.onnx_info} if getattr(loaded, "onnx_info", None) else {})},
        "target": {"name": tgt.name, "device": tgt.device, "triple": tgt.cpu.triple, "cpu": tgt.cpu.cpu,
                   "accelerator": dataclasses.asdict(tgt.accelerator) if tgt.accelerator else None,
                   "transport": dataclasses.asdict(tgt.transport), "source": tgt.source},
        "backend": be.name,
        "options": {"board": opts.board, "extra_flags": list(opts.extra_flags), **opts.options},
        "artifact": {"entry": artifact.entry, "files": artifact.files, "info": artifact.info},
        "compile": {"calls": artifact.calls, "flags": artifact.flags, "seconds": round(compile_s, 3),
                    "host": {"machine": platform.machine(), "python": sys.version.split()[0]}},
        "versions": {"edgecc": _edgecc_version(), **be.versions()},
        "io": io,
        "validation": {"status": "skipped (--no-validate)"},
    }


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")


def check_name(name: str) -> None:
    """A model name becomes a folder name (build/<name>-<target>-<backend>): one plain path component."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(f"model name {name!r} is not a plain name (letters, digits, '_', '-', '.', '+'; no '/' or "
                         "leading '.'); choose another --name")


def check_backend_options(be, backend: str, options: dict, extra_flags) -> None:
    """Every --option key is one the backend reads, and --flag only where the backend passes flags to a tool."""
    allowed = getattr(be, "OPTIONS", {})
    if "board" in options:
        raise TargetError("--option board=... is not an option: choose the board with --board NAME")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        valid = ", ".join(sorted(allowed)) or "none"
        raise TargetError(f"unknown {backend} option(s) {', '.join(unknown)}; valid {backend} options: {valid}")
    if extra_flags and not getattr(be, "TAKES_FLAGS", False):
        raise TargetError(f"backend {backend!r} passes no compiler flags (--flag {list(extra_flags)[0]} would be "
                          "ignored); use --option KEY=VALUE (see `edgecc targets show`)")


def _check_validation_request(tgt, be, backend: str, precision: str, quantize: str, validate_with: str,
                              samples: int) -> None:
    """--precision, --validate-with and --validate-samples refused before any model is loaded."""
    tgt.check_precision(precision)
    if precision not in getattr(be, "PRECISIONS", {"fp32": ""}):
        raise TargetError(f"--precision {precision}: backend {backend!r} cannot build it: "
                          f"{getattr(be, 'PRECISION_REFUSED', 'it builds fp32 only')}")
    if precision != "fp32" and quantize:
        raise UsageError(f"--precision {precision} and --quantize {quantize} both set the arithmetic: give one")
    if not isinstance(samples, int) or samples < 1:
        raise UsageError(f"--validate-samples {samples}: give 1 or more samples")
    if validate_with:
        from edgecc.models.datasets import DATASETS

        p = Path(validate_with)
        if validate_with not in DATASETS and not p.exists():
            raise UsageError(f"--validate-with {validate_with}: no such file or folder, and not a dataset name "
                             f"(known: {', '.join(DATASETS)})")


def _demote(loaded, precision: str) -> None:
    """The backend compiles what it is given: it gets the model converted to `precision`; the reference stays f32."""
    if loaded.kind == "onnx":
        from edgecc.compiler.precision import demoted_onnx

        loaded.reference_onnx = loaded.onnx_path
        loaded.onnx_path = demoted_onnx(loaded, precision, Path(loaded.onnx_path).parent)
    else:
        loaded.precision = precision


def _validation_samples(loaded, validate_with: str, n: int):
    """The samples validation runs: the user's (--validate-with), else the one example input."""
    from edgecc.compiler.samples import Samples, load_samples

    if validate_with:
        specs = [(a.shape, a.dtype) for a in loaded.example_inputs]
        return load_samples(validate_with, loaded.input_names, specs, n)
    return Samples([loaded.example_inputs], description={"source": "the example input", "samples": 1,
                                                         "labelled": False})


def _validate(bundle: Bundle, loaded, samples, tolerance, precision: str) -> dict:
    refs = [loaded.reference(x) for x in samples.inputs]
    try:
        runner = bundle.runner()
        run_where = runner.where
        outputs = runner.run_samples(samples.inputs)
    except CannotRunHere as e:
        return {"status": f"not run: {e}"}
    except EdgeccError:
        raise
    except Exception as e:  # the runtime refusing the artifact (e.g. buffers that do not match its signature)
        raise ValidationError(f"{loaded.name} on {bundle.manifest['target']['name']}/{bundle.backend} failed to run "
                              f"for validation: {type(e).__name__}: {first_line(e, 300)}; pass --no-validate to keep "
                              "it anyway, or report the model") from e
    # int8: top-1 on one input is not required to agree (logits a step apart); accuracy is measured on a dataset
    # reduced precision: top-1 is reported as a rate, not required on every sample (near-tied logits may swap)
    classification = loaded.task == "classification" and getattr(loaded, "qgraph", None) is None
    result = compare_samples(outputs, refs, loaded.reference_name, classification, tolerance,
                             require_top1=precision == "fp32", labels=samples.labels)
    if not result["passed"]:
        raise ValidationError(f"{loaded.name} on {bundle.manifest['target']['name']}/{bundle.backend} does not "
                              f"match {loaded.reference_name}: {result['detail']}; pass --no-validate to keep it "
                              "anyway, or report the model")
    note = {"note": runner.note} if runner.note else {}
    return {"status": "passed", "ran_on": run_where, **note, **result, "precision": precision,
            "samples_source": samples.description}


PRECISION_SAMPLES_SPAWNING = 40


def _precision_section(bundle: Bundle, loaded, precision: str, validate: bool, how: str,
                       checked_here: bool = True) -> dict:
    """What reduced precision costs: top-1 of the artifact and of the fp32 model on the dataset's held-out split."""
    import torch

    from edgecc.models.datasets import get_dataset

    ds = get_dataset(loaded.dataset_name)
    section = {"precision": precision, "how": how, "tolerance": PRECISION_TOLERANCE[precision]}
    if not validate:
        section["accuracy"] = "not measured (--no-validate)"
        return section
    try:
        runner = bundle.runner()
        if not checked_here:  # what runs here is not in the reduced precision (TensorRT: its f32 ONNX)
            section["accuracy"] = (f"not run: the {precision} engine is built on the device; the check here "
                                   f"({runner.where}) runs in f32")
            return section
        # a runner that starts a process per run (qemu-user, lavapipe's iree-run-module): the first images only
        n = PRECISION_SAMPLES_SPAWNING if getattr(runner, "spawns_per_run", False) else len(ds.x_test)
        x, y = ds.x_test[:n], ds.y_test[:n]
        out = runner.run_many(x)
    except CannotRunHere as e:
        section["accuracy"] = f"not run: {e}"
        return section
    with torch.no_grad():
        ref = np.concatenate([loaded.reference([x[i:i + 1]])[0] for i in range(len(x))])
    split = "held-out test" if len(y) == len(ds.y_test) else f"held-out test, first {len(y)} of {len(ds.y_test)}"
    section["accuracy"] = {"dataset": ds.name, "split": split, "samples": int(len(y)), "ran_on": runner.where,
                           "fp32_top1": round(float(np.mean(np.argmax(ref, 1) == y)), 4),
                           f"{precision}_top1": round(float(np.mean(np.argmax(out, 1) == y)), 4),
                           "top1_agreement": round(float(np.mean(np.argmax(out, 1) == np.argmax(ref, 1))), 4),
                           "max_abs_error": float(np.max(np.abs(out.astype(np.float64) - ref)))}
    return section


def _quantization_section(bundle: Bundle, loaded, validate: bool) -> dict:
    """fp32 vs int8: accuracy on the held-out split (run on the artifact where it can run), errors, sizes."""
    from edgecc.compiler.squeeze import predict_all, quantization_report

    outputs, where = None, "skipped (--no-validate)"
    if validate and loaded.dataset is not None:
        try:
            runner = bundle.runner()
            where = runner.where
            outputs = predict_all(runner, loaded.dataset.x_test)
        except CannotRunHere as e:
            where = str(e)
    rep = quantization_report(loaded, outputs, where)
    mem = bundle.manifest["artifact"]["info"].get("memory")
    if mem:
        rep["weights_bytes"]["artifact"] = mem["weights_bytes"]
    return rep


def _edgecc_version() -> str:
    import edgecc

    return edgecc.__version__
