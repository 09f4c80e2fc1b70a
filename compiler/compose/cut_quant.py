"""Sending the cut tensor as int8: the front ends in a quantize, the back starts with the matching dequantize.

Affine per-tensor int8 (the scheme of ONNX QuantizeLinear / TFLite): q = clamp(round(x / scale) + zero_point,
-128, 127), x' = (q - zero_point) * scale, with scale and zero_point from the range of the cut tensor on the
calibration inputs (the example inputs). Both ops are compiled into the two bundles, so the front's artifact
outputs int8 and the bytes on the link are a quarter of the fp32 tensor's; the error this adds is measured end to
end against PyTorch's fp32 model and reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QMIN, QMAX = -128, 127


@dataclass(frozen=True)
class CutQuant:
    scale: float
    zero_point: int
    calibrated_on: str  # what the range came from

    def to_dict(self) -> dict:
        return {"scheme": "affine per-tensor int8 (q = clamp(round(x/scale) + zero_point, -128, 127))",
                "scale": self.scale, "zero_point": self.zero_point, "calibrated_on": self.calibrated_on}

    def quantize(self, x: np.ndarray) -> np.ndarray:
        q = np.round(x.astype(np.float32) / np.float32(self.scale)) + self.zero_point
        return np.clip(q, QMIN, QMAX).astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return ((q.astype(np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)).astype(np.float32)


def calibrate(samples: list[np.ndarray], what: str) -> CutQuant:
    """Scale and zero point covering the range of `samples` (0 always inside it, so ReLU zeros stay exact)."""
    lo = min(0.0, min(float(s.min()) for s in samples))
    hi = max(0.0, max(float(s.max()) for s in samples))
    scale = (hi - lo) / (QMAX - QMIN) or 1.0
    zp = int(np.clip(round(QMIN - lo / scale), QMIN, QMAX))
    return CutQuant(float(np.float32(scale)), zp, what)


def quantized_front(front, q: CutQuant):
    """`front` with a quantize after it: an nn.Module that returns the int8 cut tensor."""
    import torch

    class QuantizedFront(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.front = front

        def forward(self, x):
            y = torch.round(self.front(x) / q.scale) + q.zero_point
            return torch.clamp(y, QMIN, QMAX).to(torch.int8)

    return QuantizedFront().eval()


def dequantized_back(back, q: CutQuant):
    """`back` with a dequantize before it: an nn.Module that takes the int8 cut tensor."""
    import torch

    class DequantizedBack(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.back = back

        def forward(self, q8):
            return self.back((q8.to(torch.float32) - q.zero_point) * q.scale)

    return DequantizedBack().eval()
