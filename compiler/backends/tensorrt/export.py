"""The ONNX export at the opset the target's TensorRT reads, with a dynamic batch axis when max_batch > 1.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edgecc.errors import ModelError, first_line, require


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
