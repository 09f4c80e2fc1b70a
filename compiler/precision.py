"""Reduced precision at the source (`--precision fp16|bf16` on backends that compile what they are given): the
model is converted before import, with f32 inputs and outputs kept, so every op runs in the narrow type.

IREE's own demotion flags (`--iree-global-opt-demote-contraction-inputs-type`) were tried first: on edgecc's
imported graphs (convolutions rewritten to generics, data tiling) they left the error at the fp32 build's 7.6e-6
on digits-cnn, i.e. nothing was demoted (docs/precision.md).

    >>> ep = demoted_program(loaded, "fp16")                                   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from edgecc.errors import ModelError, first_line


def demoted_program(loaded, precision: str):
    """torch.export of the model with its parameters, buffers and float inputs in fp16/bf16 and its float outputs
    cast back to f32."""
    import copy

    import torch

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    inner = loaded.module if loaded.module is not None else loaded._exported.module()

    # bf16: weights stay f32 constants, cast inside the graph (iree-compile folds the casts): torch-mlir's FX
    # importer writes bf16 weights as resources that iree-compile 3.13 misreads ("arith.constant op failed to
    # verify that all of {value, result} have same type")
    cast_in_graph = precision == "bf16"

    class Demoted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = copy.deepcopy(inner) if cast_in_graph else copy.deepcopy(inner).to(dtype)

        def forward(self, *xs):
            xs = [x.to(dtype) if x.is_floating_point() else x for x in xs]
            if cast_in_graph:
                named = {**dict(self.inner.named_parameters()), **dict(self.inner.named_buffers())}
                state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in named.items()}
                out = torch.func.functional_call(self.inner, state, tuple(xs))
            else:
                out = self.inner(*xs)
            return torch.utils._pytree.tree_map(
                lambda t: t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t, out)

    args = tuple(torch.from_numpy(a) for a in loaded.example_inputs)
    try:
        return torch.export.export(Demoted().eval(), args)
    except Exception as e:
        raise ModelError(f"{loaded.name} does not export in {precision}: {first_line(e)}; try --precision fp32 or "
                         "another backend") from e


def demoted_onnx(loaded, precision: str, folder: Path) -> Path:
    """An fp16 copy of an ONNX model (onnxruntime's float16 converter, inputs and outputs kept f32)."""
    if precision != "fp16":
        raise ModelError(f"--precision {precision} of an ONNX model: only fp16 converts (onnxruntime's float16 "
                         "converter); use --precision fp16")
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        proto = convert_float_to_float16(onnx.load(str(loaded.onnx_path)), keep_io_types=True)
    except Exception as e:
        raise ModelError(f"{loaded.source} does not convert to fp16: {first_line(e)}") from e
    out = Path(folder) / "model.fp16.onnx"
    onnx.save(proto, str(out))
    return out
