"""The engine build plan: precision, workspace, shape profile, DLA core, and the trtexec flags in the dialect of
the target's TensorRT version (--workspace on 8.2, --memPoolSize from 8.4).
"""

from __future__ import annotations

from edgecc.errors import TargetError

PRECISIONS = ("fp32", "fp16", "int8")


OPTIONS = ("precision", "workspace_mb", "dla_core", "max_batch")


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
    workspace = int_option(user, "workspace_mb", int(cfg.options.get("workspace_mb", 1024)), 1)
    max_batch = int_option(user, "max_batch", 1, 1)
    dla_cores = int(cfg.options.get("dla_cores", 0))
    dla = None
    if "dla_core" in user:
        dla = int_option(user, "dla_core", 0, 0)
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


def int_option(user: dict, key: str, default: int, minimum: int) -> int:
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
