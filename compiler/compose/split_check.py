"""A split's end-to-end check: the front artifact where it runs, its cut tensor (read from the frames it wrote) fed to
the back artifact, the final output compared with PyTorch's whole model on the reference input.

With an int8 cut the chain must match PyTorch's back on the very bytes the front sent (that checks the artifacts);
the error against the fp32 model is what sending int8 adds, and is reported, not hidden in a tolerance.
"""

from __future__ import annotations

import numpy as np

from edgecc.errors import CannotRunHere, ValidationError
from edgecc.validate import compare


def _front_cut(fb, loaded, torch_cut: np.ndarray) -> tuple[np.ndarray, str, str]:
    """(cut tensor, where it came from, note): the front artifact's, or PyTorch's when the front cannot run here."""
    try:
        runner = fb.runner()
        return runner.run(loaded.example_inputs)[0], runner.where, ""
    except CannotRunHere as e:
        return torch_cut, "pytorch", f"front not run here ({e}); the back was fed PyTorch's cut tensor"


def _torch_halves(ep, cut, q):
    import torch

    from edgecc.compiler.compose.cut_quant import dequantized_back, quantized_front
    from edgecc.compiler.compose.graph_cut import split_program

    front, back = split_program(ep, cut.node)
    if q is not None:
        front, back = quantized_front(front, q), dequantized_back(back, q)
    run = lambda m, xs: [t.detach().numpy() for t in _flat(m(*[torch.from_numpy(x) for x in xs]))]  # noqa: E731
    return front, back, run


def _flat(out) -> list:
    from edgecc.validate import flatten_outputs

    return flatten_outputs(out)


def check_end_to_end(loaded, ep, cut, fb, bb, q) -> dict:
    """The validation section of split.json; ValidationError when the chain does not compute what PyTorch does."""
    import torch

    inputs = loaded.example_inputs
    reference = loaded.reference(inputs)
    front, back, run = _torch_halves(ep, cut, q)
    with torch.no_grad():
        torch_cut = run(front, inputs)[0]
        cut_value, front_where, note = _front_cut(fb, loaded, torch_cut)
        try:
            runner = bb.runner()
            outputs = runner.run([cut_value])
        except CannotRunHere as e:
            return {"status": f"not run: the back cannot run here ({e})", "front_ran_on": front_where}
        back_reference = run(back, [cut_value])
    classification = loaded.task == "classification"
    whole = compare(outputs, reference, "pytorch (the whole model)", classification)
    section = {"front_ran_on": front_where, "back_ran_on": runner.where, "cut": _cut_error(cut_value, torch_cut, q),
               **({"note": note} if note else {})}
    status = "passed" if not note else "back only: " + note  # never "passed" for a chain that did not run
    if q is None:
        if not whole.passed:
            raise ValidationError(f"the split of {loaded.name} at {cut.node} does not match PyTorch's whole model: "
                                  f"{whole.detail}; report the model, or pass --no-validate to keep it anyway")
        return {**section, **whole.to_dict(), "status": status}
    exact = compare(outputs, back_reference, "pytorch back on the front's int8 bytes", classification)
    if not exact.passed:
        raise ValidationError(f"the back of {loaded.name} (cut at {cut.node}) does not match PyTorch on the int8 "
                              f"tensor the front sent: {exact.detail}; pass --no-validate to keep it anyway")
    with torch.no_grad():
        torch_int8 = run(back, [q.quantize(_fp32_cut(ep, cut, inputs))])
    added = compare(torch_int8, reference, "pytorch fp32", classification)
    return {**section, **exact.to_dict(), "status": status,
            "int8_added_error": {"artifacts_vs_fp32_model": _error(whole),
                                 "pytorch_int8_cut_vs_fp32_model": _error(added)}}


def _fp32_cut(ep, cut, inputs) -> np.ndarray:
    import torch

    from edgecc.compiler.compose.graph_cut import split_program

    front, _ = split_program(ep, cut.node)
    return front(*[torch.from_numpy(x) for x in inputs]).detach().numpy()


def _error(c) -> dict:
    return {"max_abs_error": c.max_abs_error, "max_rel_error": c.max_rel_error, "top1_agreement": c.top1_agreement}


def _cut_error(cut_value: np.ndarray, torch_cut: np.ndarray, q) -> dict:
    """How far the front artifact's cut tensor is from PyTorch's (int8: in quantization steps)."""
    d = np.abs(cut_value.astype(np.float64) - torch_cut.astype(np.float64))
    if q is None:
        return {"max_abs_error": float(d.max()), "shape": list(cut_value.shape), "dtype": str(cut_value.dtype)}
    return {"max_int8_steps": int(d.max()), "elements_off_by_one_step": int((d > 0).sum()),
            "shape": list(cut_value.shape), "dtype": str(cut_value.dtype)}
