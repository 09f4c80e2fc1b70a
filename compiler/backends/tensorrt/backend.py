"""TensorRT: PyTorch -> ONNX (opset from the target's TensorRT version) + a build plan + device scripts.

A TensorRT engine can only be built on the GPU and TensorRT version that will run it, and TensorRT does not install
on CI machines. So the bundle carries `model.onnx` (numerics checked here with ONNX Runtime against PyTorch), the
build plan (precision, workspace, shape profile, DLA core, timing cache) in `plan.json` and the manifest, and
`build_engine.sh` / `bench.sh` / `run.sh` / `trt_tool.py`, which build, cache and time the engine on the device.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edgecc.compiler.artifact import Artifact, CompileOptions
from edgecc.compiler.backends import register_backend
from edgecc.compiler.backends.tensorrt.device_scripts import write_device_scripts
from edgecc.compiler.backends.tensorrt.export import export_onnx
from edgecc.compiler.backends.tensorrt.ops import check_onnx_ops, load_op_table
from edgecc.compiler.backends.tensorrt.plan import OPTIONS as PLAN_OPTIONS
from edgecc.compiler.backends.tensorrt.plan import int_option, make_plan
from edgecc.errors import TargetError, require
from edgecc.tools import package_version


@register_backend("tensorrt")
class TensorRTBackend:
    PRECISIONS = {"fp32": "trtexec default", "fp16": "trtexec --fp16 (engine built on the device)"}
    PRECISION_REFUSED = "edgecc's TensorRT plan builds fp32, fp16 or int8 engines, not bf16"
    PRECISION_CHECKED_HERE = False  # the engine is built on the device; the ONNX Runtime check here runs f32
    OPTIONS = {"precision": "fp32 | fp16 | int8 (int8 needs Q/DQ nodes in the model)",
               "workspace_mb": "builder workspace in MiB, 1 or more", "dla_core": "0 | 1 on targets with DLA",
               "max_batch": "largest batch of the shape profile, 1 or more"}
    assert set(OPTIONS) == set(PLAN_OPTIONS)
    TAKES_FLAGS = False  # trtexec runs on the device, from plan.json

    def compile(self, model, target, workdir: Path, options: CompileOptions) -> Artifact:
        onnx = require("onnx", "onnx", "the TensorRT backend (ONNX export)")
        cfg = target.backend("tensorrt")
        version, opset = cfg.options["tensorrt"], int(cfg.options["onnx_opset"])
        table = load_op_table(version)
        if opset > table["max_opset"]:
            raise TargetError(f"{target.source}: onnx_opset {opset} > {table['max_opset']}, the newest opset "
                              f"TensorRT {version} reads")
        max_batch = int_option(options.options, "max_batch", 1, 1)
        onnx_path = workdir / "model.onnx"
        call = export_onnx(model, onnx_path, opset, max_batch)
        proto = onnx.load(str(onnx_path))
        onnx.checker.check_model(proto)
        ops = check_onnx_ops(proto, table)
        io = {"inputs": [{"name": n, "shape": list(a.shape), "dtype": str(a.dtype)}
                         for n, a in zip(model.input_names, model.example_inputs, strict=True)],
              "outputs": [{"name": o.name, "shape": [d.dim_value or 1 for d in o.type.tensor_type.shape.dim],
                           "dtype": "float32"} for o in proto.graph.output]}
        user = dict(options.options)
        if options.precision != "fp32":
            if user.get("precision", options.precision) != options.precision:
                raise TargetError(f"--precision {options.precision} and --option precision={user['precision']} "
                                  "disagree: give one")
            user["precision"] = options.precision
        plan = make_plan(target, cfg, user, io, proto)
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
