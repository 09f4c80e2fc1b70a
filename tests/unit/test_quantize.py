"""int8 quantization arithmetic against independent references: TFLite / gemmlowp fixed-point semantics written
with Python integers and Fractions, calibration and scale computation, and graph capture (BN folding). The C
kernels against the same references: tests/integration/test_int8_kernels.py."""

import math
from fractions import Fraction

import numpy as np
import pytest

from edgecc.compiler.squeeze.quant import (
    activation_qparams,
    multiply_by_quantized_multiplier,
    quantize_input,
    quantize_multiplier,
    rounding_divide_by_pot,
    srdhm,
    weight_qparams,
)

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


def ref_srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul, spelled out with Python integers."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return int(Fraction(ab + nudge, 1 << 31))  # int(Fraction) truncates toward zero, like C division


def ref_rdivpot(x: int, e: int) -> int:
    """x / 2^e rounded to nearest, ties away from zero."""
    q = Fraction(x, 1 << e)
    return int(math.floor(q + Fraction(1, 2))) if q >= 0 else -int(math.floor(-q + Fraction(1, 2)))


EDGE = [0, 1, -1, 2, -2, 3, -3, 127, -128, 255, -256, 1 << 20, -(1 << 20), INT32_MAX, INT32_MIN, INT32_MIN + 1,
        (1 << 30), -(1 << 30), 12345678, -12345678]


def test_srdhm_matches_gemmlowp_including_saturation_and_negative_rounding():
    rng = np.random.default_rng(0)
    a = EDGE + rng.integers(INT32_MIN, INT32_MAX, 500, endpoint=True).tolist()
    b = [INT32_MIN, INT32_MAX, 1 << 30, (1 << 30) + 1, 1518500250] + rng.integers(0, INT32_MAX, 20).tolist()
    for bv in b:
        got = srdhm(np.array(a), bv)
        assert got.tolist() == [ref_srdhm(int(x), int(bv)) for x in a], bv
    assert int(srdhm(INT32_MIN, INT32_MIN)) == INT32_MAX


@pytest.mark.parametrize("x,e,want", [(5, 1, 3), (-5, 1, -3), (6, 2, 2), (-6, 2, -2), (2, 2, 1), (-2, 2, -1),
                                      (1, 2, 0), (-1, 2, 0), (7, 0, 7), (INT32_MIN, 31, -1), (INT32_MAX, 31, 1)])
def test_rounding_divide_by_pot_ties_away_from_zero(x, e, want):
    assert int(rounding_divide_by_pot(x, e)) == want == ref_rdivpot(x, e)


def test_rounding_divide_by_pot_random():
    rng = np.random.default_rng(1)
    xs = rng.integers(INT32_MIN, INT32_MAX, 2000, endpoint=True)
    for e in (1, 3, 7, 12, 20, 31):
        assert rounding_divide_by_pot(xs, e).tolist() == [ref_rdivpot(int(x), e) for x in xs]


@pytest.mark.parametrize("real", [0.5, 1.0, 0.25, 1e-3, 3.7e-5, 0.999999999, 1.5, 7.25, 2.0 ** -31, 0.7071067811865476])
def test_quantize_multiplier_is_tflite_q31(real):
    m, shift = quantize_multiplier(real)
    assert (1 << 30) <= m < (1 << 31)
    assert abs(m * 2.0 ** (shift - 31) - real) <= real * 2.0 ** -31
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(2.0 ** -40) == (0, 0)  # below TFLite's shift range: zero
    assert quantize_multiplier(1.0 - 2.0 ** -40) == (1 << 30, 1)  # rounds up to 2^31: renormalized


def test_multiply_by_quantized_multiplier_is_within_one_of_exact():
    rng = np.random.default_rng(2)
    x = rng.integers(-(1 << 22), 1 << 22, 3000)
    for real in (0.0123, 0.5, 0.9, 1.7, 3.1e-4):
        m, s = quantize_multiplier(real)
        got = multiply_by_quantized_multiplier(x, m, s)
        assert np.max(np.abs(got - np.round(x * real))) <= 1


def test_activation_qparams_make_zero_exact_and_cover_the_range():
    for lo, hi in [(-1.0, 3.0), (0.0, 6.0), (0.5, 2.0), (-4.0, -1.0), (0.0, 0.0)]:
        s, zp = activation_qparams(lo, hi)
        assert -128 <= zp <= 127 and s > 0
        q0 = quantize_input(np.zeros(1, np.float32), s, zp)
        assert int(q0[0]) == zp  # real 0.0 (padding, ReLU floor) is exactly representable
        if hi > lo:
            q = quantize_input(np.array([min(lo, 0.0), max(hi, 0.0)], np.float32), s, zp)
            assert abs((int(q[0]) - zp) * s - min(lo, 0.0)) <= s and abs((int(q[1]) - zp) * s - max(hi, 0.0)) <= s
    assert activation_qparams(0.0, 6.0)[1] == -128  # ReLU outputs use the whole int8 range


def test_quantize_input_rounds_half_away_from_zero():
    q = quantize_input(np.array([0.5, -0.5, 1.5, -1.5, 2.5, 1000.0, -1000.0], np.float32), 1.0, 0)
    assert q.tolist() == [1, -1, 2, -2, 3, 127, -128]


def test_weight_qparams_per_channel_symmetric():
    w = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [2.0, 1.0, -2.0]], np.float32)
    q, s = weight_qparams(w)
    assert q.dtype == np.int8 and s.tolist() == pytest.approx([1 / 127, 1.0, 2 / 127])
    assert q[0].tolist() == [64, -127, 32] and q[1].tolist() == [0, 0, 0] and abs(q[2]).max() == 127
    assert np.max(np.abs(q * s[:, None] - w)) <= s.max() / 2 + 1e-7


# ------------------------------------------------------------- graph capture, calibration, references

torch = pytest.importorskip("torch")


def _capture(name):
    from edgecc.compiler.squeeze.quant import capture_graph
    from edgecc.models import get_model

    module, inputs = get_model(name).factory()
    return module, inputs, capture_graph(module, inputs[0])


@pytest.mark.parametrize("name,kinds", [("resnet8", {"conv", "add", "avgpool", "flatten", "dense"}),
                                        ("ds-cnn", {"conv", "avgpool", "flatten", "dense"}),
                                        ("toyadmos-ae", {"dense"})])
def test_capture_folds_batchnorm_and_fuses_relu(name, kinds):
    from edgecc.compiler.squeeze.quant import run_float

    module, inputs, g = _capture(name)
    assert {op.kind for op in g.ops} == kinds
    assert any(op.relu for op in g.ops)
    x = torch.randn(4, *inputs[0].shape[1:], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = module(x)
    got = run_float(g, x)[g.output]
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)


def test_capture_refuses_a_batchnorm_it_cannot_fold():
    from edgecc.compiler.squeeze.quant import capture_graph
    from edgecc.errors import UnsupportedOpError

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.BatchNorm1d(4 * 6 * 6)).eval()
    with pytest.raises(UnsupportedOpError, match="batchnorm1d after flatten"):
        capture_graph(net, torch.randn(1, 3, 8, 8))


def test_int8_reference_and_qdq_reference_agree_and_keep_digits_accuracy():
    from edgecc.compiler.squeeze.quant import calibrate, qdq_module, quantize_graph, run_int8
    from edgecc.models.datasets import get_dataset

    module, inputs, g = _capture("digits-cnn")
    ds = get_dataset("digits")
    ranges = calibrate(g, ds.calibration)
    assert ranges["input"] == (0.0, 1.0)
    quantize_graph(g, ranges)
    s_out = g.qparams[g.output][0]
    with torch.no_grad():
        fp32 = module(torch.from_numpy(ds.x_test)).numpy()
        qdq = qdq_module(g)(torch.from_numpy(ds.x_test)).numpy()
    int8 = run_int8(g, ds.x_test)
    assert np.max(np.abs(int8 - qdq)) <= 2 * s_out + 1e-6  # a few ops: at most a step or two of rounding
    acc = lambda o: np.mean(np.argmax(o, 1) == ds.y_test)  # noqa: E731
    assert acc(fp32) > 0.95
    assert acc(int8) >= acc(fp32) - 0.01
    assert g.weight_bytes() * 3 < g.fp32_weight_bytes()
