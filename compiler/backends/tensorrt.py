"""TensorRT: PyTorch → ONNX (opset from the target's TensorRT version) + a build plan + device scripts.

A TensorRT engine can only be built on the GPU and TensorRT version that will run it, and TensorRT does not install
on CI machines. So the bundle carries `model.onnx` (numerics checked here with ONNX Runtime against PyTorch), the
build plan (precision, workspace, shape profile, DLA core, timing cache) in `plan.json` and the manifest, and
`build_engine.sh` / `bench.sh` / `run.sh` / `trt_tool.py`, which build, cache and time the engine on the device.
Every ONNX node is checked at compile time against the op-support table of the target's TensorRT version
(targets/tensorrt/ops-<version>.toml, data with its public source).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tomllib
from pathlib import Path

from edgecc.compiler.artifact import Artifact, CompileOptions
from edgecc.compiler.backends import register_backend
from edgecc.errors import ModelError, TargetError, UnsupportedOpError, first_line, require
from edgecc.tools import package_version

PRECISIONS = ("fp32", "fp16", "int8")
OPTIONS = ("precision", "workspace_mb", "dla_core", "max_batch")
ONNX_DOMAINS = ("", "ai.onnx")


def load_op_table(version: str) -> dict:
    """The op-support table of TensorRT `version` (targets/tensorrt/ops-<version>.toml)."""
    from edgecc.targets import TARGETS_DIR

    ops_dir = TARGETS_DIR / "tensorrt"
    path = ops_dir / f"ops-{version}.toml"
    if not path.is_file():
        known = sorted(p.stem.removeprefix("ops-") for p in ops_dir.glob("ops-*.toml"))
        raise TargetError(f"no ONNX op-support table for TensorRT {version} (known: {', '.join(known)}); "
                          f"add targets/tensorrt/ops-{version}.toml from onnx-tensorrt's docs/operators.md")
    table = tomllib.loads(path.read_text())
    table["file"] = path.name
    return table


def check_onnx_ops(proto, table: dict) -> dict:
    """Check every node (subgraphs included) against `table`; return {op_type: count} and notes.
    Raises UnsupportedOpError naming the first unsupported op and the TensorRT version."""
    version = table["tensorrt"]
    opset = next((o.version for o in proto.opset_import if o.domain in ONNX_DOMAINS), 0)
    if opset > table["max_opset"]:
        raise ModelError(f"model.onnx uses ONNX opset {opset}; TensorRT {version} reads opset <= "
                         f"{table['max_opset']}: re-export with opset {table['max_opset']}")
    counts: dict[str, int] = {}
    for node in _all_nodes(proto.graph):
        key = node.op_type if node.domain in ONNX_DOMAINS else f"{node.domain}::{node.op_type}"
        counts[key] = counts.get(key, 0) + 1
    supported, unverified = set(table["supported"]), set(table.get("unverified", []))
    for op in counts:
        if op not in supported and op not in unverified:
            why = ("marked unsupported" if op in table["unsupported"] else "not listed") + \
                f" in onnx-tensorrt's operator table ({table['file']})"
            raise UnsupportedOpError(op, "tensorrt", detail=f"TensorRT {version}: {why}",
                                     suggestion="replace the op in the model, or use a target with a newer TensorRT")
    notes = [f"{op}: support in TensorRT {version} unverified (onnx-tensorrt tables disagree)"
             for op in sorted(counts) if op in unverified]
    return {"opset": opset, "ops": dict(sorted(counts.items())), "notes": notes, "table": table["file"],
            "table_source": table["source"]}


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g is not None and attr.g.node:
                yield from _all_nodes(attr.g)
            for g in attr.graphs:
                yield from _all_nodes(g)


def make_plan(target, cfg, user: dict, io: dict, onnx_proto) -> dict:
    """The engine build plan from the target's data and --option values; refuses bad values with the allowed ones."""
    unknown = sorted(set(user) - set(OPTIONS))
    if unknown:
        raise TargetError(f"unknown tensorrt option(s) {', '.join(unknown)}; allowed: {', '.join(OPTIONS)}")
    precision = str(user.get("precision", "fp32"))
    if precision not in PRECISIONS:
        raise TargetError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    qdq = sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in onnx_proto.graph.node)
    if precision == "int8" and not qdq:
        raise TargetError("precision=int8 needs explicit Q/DQ (QuantizeLinear/DequantizeLinear) nodes in the model, "
                          "e.g. from a quantized model; this one has none: use precision=fp16, or quantize it first")
    workspace = _int_option(user, "workspace_mb", int(cfg.options.get("workspace_mb", 1024)), 1)
    max_batch = _int_option(user, "max_batch", 1, 1)
    dla_cores = int(cfg.options.get("dla_cores", 0))
    dla = None
    if "dla_core" in user:
        dla = _int_option(user, "dla_core", 0, 0)
        if dla_cores == 0:
            raise TargetError(f"dla_core={dla}: target {target.name!r} has no DLA (deep learning accelerator); "
                              "drop --option dla_core (DLA exists on Jetson Xavier/Orin)")
        if dla >= dla_cores:
            raise TargetError(f"dla_core={dla}: target {target.name!r} has DLA cores 0..{dla_cores - 1}")
        if precision == "fp32":
            raise TargetError("DLA runs fp16 or int8 only: add --option precision=fp16 (or int8) with dla_core")
    shapes = {}
    for spec in io["inputs"]:
        shape = list(spec["shape"])
        lo, hi = ([1] + shape[1:], [max_batch] + shape[1:]) if max_batch > 1 else (shape, shape)
        shapes[spec["name"]] = {"min": lo, "opt": shape, "max": hi}
    version = cfg.options["tensorrt"]
    return {"tensorrt": version, "jetpack": cfg.options.get("jetpack", ""), "precision": precision,
            "int8_source": "explicit Q/DQ nodes in model.onnx" if precision == "int8" else "",
            "workspace_mb": workspace, "dla_core": dla, "gpu_fallback": dla is not None, "max_batch": max_batch,
            "dynamic_batch": max_batch > 1, "shapes": shapes,
            "inputs": [{k: s[k] for k in ("name", "shape", "dtype")} for s in io["inputs"]],
            "outputs": [{k: s[k] for k in ("name", "shape", "dtype")} for s in io["outputs"]],
            "timing_cache": "$EDGECC_TRT_CACHE/timing-<tensorrt version>-<gpu name>.cache",
            "engine_cache_key": "sha256(tensorrt version | gpu name | sha256(model.onnx) | sha256(plan.json))",
            "trtexec_build_flags": trtexec_build_flags(version, precision, workspace, dla, shapes, max_batch > 1),
            "trtexec_run_flags": trtexec_run_flags(dla)}


def _int_option(user: dict, key: str, default: int, minimum: int) -> int:
    value = user.get(key, default)
    try:
        value = int(value)
    except (TypeError, ValueError):
        raise TargetError(f"{key}={value!r} is not an integer") from None
    if value < minimum:
        raise TargetError(f"{key}={value} must be >= {minimum}")
    return value


def _major_minor(version: str) -> tuple[int, int]:
    parts = [int(p) for p in version.split(".")[:2]] + [0]
    return parts[0], parts[1]


def trtexec_build_flags(version: str, precision: str, workspace_mb: int, dla, shapes: dict,
                        dynamic: bool) -> list[str]:
    """trtexec build flags in the dialect of TensorRT `version` (--workspace before 8.4, --memPoolSize after)."""
    flags = []
    if precision == "fp16":
        flags.append("--fp16")
    elif precision == "int8":
        flags += ["--int8", "--fp16"]  # explicit Q/DQ: int8 where the model says, fp16 allowed elsewhere
    flags.append(f"--workspace={workspace_mb}" if _major_minor(version) < (8, 4)
                 else f"--memPoolSize=workspace:{workspace_mb}")
    if dla is not None:
        flags += [f"--useDLACore={dla}", "--allowGPUFallback"]
    if dynamic:
        for key, flag in (("min", "--minShapes"), ("opt", "--optShapes"), ("max", "--maxShapes")):
            flags.append(flag + "=" + ",".join(f"{n}:{'x'.join(map(str, s[key]))}" for n, s in shapes.items()))
    return flags


def trtexec_run_flags(dla) -> list[str]:
    return [f"--useDLACore={dla}"] if dla is not None else []


def export_onnx(model, path: Path, opset: int, max_batch: int) -> str:
    """PyTorch → ONNX at `opset` with the TorchScript exporter (the dynamo exporter writes opset 18 and cannot
    always convert down to 13/17). An .onnx source is copied as is."""
    if model.kind == "onnx":
        shutil.copyfile(model.onnx_path, path)
        return f"cp {model.onnx_path} {path.name}"
    torch = require("torch", "torch==2.13.0", "exporting ONNX for TensorRT")
    import warnings

    module = model.module if model.module is not None else model.exported_program().module()
    args = tuple(torch.from_numpy(a) for a in model.example_inputs)
    dyn = None
    if max_batch > 1:
        dyn = {n: {0: "batch"} for n in model.input_names + model.output_names}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(path), opset_version=opset, dynamo=False,
                              input_names=model.input_names, output_names=model.output_names, dynamic_axes=dyn,
                              do_constant_folding=True)
    except Exception as e:
        raise ModelError(f"ONNX export (opset {opset}) failed for {model.name}: "
                         f"{first_line(e, 300)}") from e
    return (f"torch.onnx.export(<{model.name}>, inputs, 'model.onnx', opset_version={opset}, dynamo=False, "
            f"input_names={model.input_names}, output_names={model.output_names}, dynamic_axes={dyn})")


@register_backend("tensorrt")
class TensorRTBackend:
    OPTIONS = {k: "see `edgecc compile --help`" for k in OPTIONS}
    TAKES_FLAGS = False  # trtexec runs on the device, from plan.json

    def compile(self, model, target, workdir: Path, options: CompileOptions) -> Artifact:
        onnx = require("onnx", "onnx", "the TensorRT backend (ONNX export)")
        cfg = target.backend("tensorrt")
        version, opset = cfg.options["tensorrt"], int(cfg.options["onnx_opset"])
        table = load_op_table(version)
        if opset > table["max_opset"]:
            raise TargetError(f"{target.source}: onnx_opset {opset} > {table['max_opset']}, the newest opset "
                              f"TensorRT {version} reads")
        max_batch = _int_option(options.options, "max_batch", 1, 1)
        onnx_path = workdir / "model.onnx"
        call = export_onnx(model, onnx_path, opset, max_batch)
        proto = onnx.load(str(onnx_path))
        onnx.checker.check_model(proto)
        ops = check_onnx_ops(proto, table)
        io = {"inputs": [{"name": n, "shape": list(a.shape), "dtype": str(a.dtype)}
                         for n, a in zip(model.input_names, model.example_inputs, strict=True)],
              "outputs": [{"name": o.name, "shape": [d.dim_value or 1 for d in o.type.tensor_type.shape.dim],
                           "dtype": "float32"} for o in proto.graph.output]}
        plan = make_plan(target, cfg, options.options, io, proto)
        (workdir / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")
        accel = target.accelerator
        where = f"TensorRT {version} on {accel.name or accel.arch}" if accel else f"TensorRT {version}"
        files = ["model.onnx", "plan.json"] + write_device_scripts(workdir, plan, target)
        info = {"tensorrt": version, "jetpack": cfg.options.get("jetpack", ""), "onnx_opset": ops["opset"],
                "onnx_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(), "plan": plan,
                "op_check": ops, "engine": f"not built: needs {where} (run build_engine.sh on the device)",
                "checked_here": f"ONNX numerics checked with ONNX Runtime {package_version('onnxruntime')} (CPU); "
                                f"engine not built: needs {where}",
                "device_scripts": {"build_engine.sh": "build or reuse the cached engine; prints its path",
                                   "bench.sh": "trtexec timing: OUT/trtexec.log, times.json, profile.json",
                                   "run.sh": "one inference from .npy inputs to output_N.npy",
                                   "parse": "edgecc trtexec-report OUT/trtexec.log --times OUT/times.json "
                                            "--profile OUT/profile.json"}}
        return Artifact(files=files, entry="model.onnx", calls=[call], flags=plan["trtexec_build_flags"], info=info)

    def versions(self) -> dict[str, str]:
        return {p: package_version(p) for p in ("torch", "onnx", "onnxruntime")}


def write_device_scripts(workdir: Path, plan: dict, target) -> list[str]:
    """build_engine.sh / bench.sh / run.sh / trt_tool.py from runtime/scripts, with the plan's trtexec flags."""
    import shlex

    from edgecc.runtime.device_scripts import render_scripts

    subst = {"@TRT_VERSION@": plan["tensorrt"],
             "@TRT_SOURCE@": f"JetPack {plan['jetpack']}" if plan["jetpack"] else f"target {target.name}",
             "@BUILD_FLAGS@": " ".join(shlex.quote(f) for f in plan["trtexec_build_flags"]),
             "@RUN_FLAGS@": " ".join(shlex.quote(f) for f in plan["trtexec_run_flags"]),
             "@TARGET@": target.name}
    return render_scripts(workdir, {"trt_build_engine.sh": "build_engine.sh", "trt_bench.sh": "bench.sh",
                                    "trt_run.sh": "run.sh", "trt_tool.py": "trt_tool.py"}, subst)
