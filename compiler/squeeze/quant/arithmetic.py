"""int8 arithmetic with TFLite semantics: Q31 multipliers, fixed-point requantization, int8 quantization parameters.

TFLite arithmetic (gemmlowp): requantize(acc) = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(
acc << max(shift, 0), multiplier), max(-shift, 0)); add rescales both inputs by 2^20 first. Quantizing a float
rounds half away from zero (TfLiteRound); the QDQ reference and ONNX round half to even, which is why a backend
is compared with the quantized reference within a few output quantization steps, not bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

QMIN, QMAX = -128, 127
ADD_LEFT_SHIFT = 20  # TFLite's int8 ADD: inputs are scaled up by 2^20 before rescaling


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(multiplier Q31, shift) with real ~= multiplier * 2^(shift - 31); TFLite's QuantizeMultiplier."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)  # real = q * 2^shift, q in [0.5, 1)
    q_fixed = int(math.floor(q * (1 << 31) + 0.5))  # TfLiteRound: half away from zero (q > 0)
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def srdhm(a, b):
    """SaturatingRoundingDoublingHighMul of int32 arrays (gemmlowp), vectorized, exact in int64."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    t = ab + nudge
    res = np.where(t >= 0, t >> 31, -((-t) >> 31))  # C division by 2^31: truncation toward zero
    overflow = (a == b) & (a == -(1 << 31))
    return np.where(overflow, (1 << 31) - 1, res).astype(np.int64)


def rounding_divide_by_pot(x, exponent):
    """RoundingDivideByPOT (gemmlowp): x / 2^exponent rounded half away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite MultiplyByQuantizedMultiplier on int32 values (the product x * 2^left wraps like int32 in C)."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = wrap_int32(np.asarray(x, dtype=np.int64) << left)
    return rounding_divide_by_pot(srdhm(shifted, multiplier), right)


def wrap_int32(x):
    """int64 values wrapped to int32 the way C's two's-complement int32 arithmetic overflows."""
    return ((np.asarray(x, dtype=np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def quantize_input(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """float -> int8 the way the C runtime does it: float32 x / scale, round half away from zero, clamp."""
    v = np.asarray(x, dtype=np.float32) / np.float32(scale)
    v = np.clip(v, np.float32(-512.0), np.float32(512.0))
    r = np.where(v >= 0, np.trunc(v + np.float32(0.5)), np.trunc(v - np.float32(0.5))).astype(np.int64)
    return np.clip(r + zp, QMIN, QMAX).astype(np.int8)


def activation_max(relu6: bool, scale: float, zp: int) -> int:
    """The int8 clamp's top: 127, or after a fused ReLU6 the quantized 6.0 (TFLite's
    CalculateActivationRangeQuantized: zero point + 6 / scale rounded half away from zero, at most 127)."""
    return min(QMAX, zp + int(np.floor(np.float32(6.0) / np.float32(scale) + np.float32(0.5)))) if relu6 else QMAX


def dequantize_output(q: np.ndarray, scale: float, zp: int) -> np.ndarray:
    return (np.asarray(q, dtype=np.int32) - zp).astype(np.float32) * np.float32(scale)


def activation_qparams(lo: float, hi: float) -> tuple[float, int]:
    """Per-tensor asymmetric int8 (scale, zero point) covering [min(lo, 0), max(hi, 0)]: 0.0 is exact."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-8:
        hi = lo + 1e-8
    scale = float(np.float32((hi - lo) / (QMAX - QMIN)))
    zp = int(np.clip(round(QMIN - lo / scale), QMIN, QMAX))
    return scale, zp


def weight_qparams(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (axis 0) symmetric int8: (int8 weights in [-127, 127], float32 scales)."""
    flat = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    scale = np.where(flat > 0, flat / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.round(w / scale.reshape(-1, *([1] * (w.ndim - 1)))), -127, 127).astype(np.int8)
    return q, scale
