"""The step contract, checked over every model kind and precision of the numpy reference."""

import numpy as np
import pytest

from edge.cell import init_state, run

from .conftest import sine_series

PRECISIONS = ["float32", "int8"]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_step_shapes_and_dtypes(small_model, precision):
    cell = small_model.cell(precision)
    b, d = 5, cell.input_size
    x = np.random.default_rng(0).standard_normal((b, d)).astype(np.float32)
    y, s = cell.step(x, init_state(cell, b))
    assert y.shape == (b, d) and y.dtype == np.float32
    assert s.shape == (b, cell.state_size) and s.dtype == np.float32
    assert cell.state_size == small_model.config.state_size


@pytest.mark.parametrize("precision", PRECISIONS)
def test_batched_streams_equal_streams_stepped_alone(small_model, precision):
    cell = small_model.cell(precision)
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((50, 3, cell.input_size)).astype(np.float32)
    ys, state = run(cell, xs)
    for b in range(3):
        yb, sb = run(cell, xs[:, b])
        np.testing.assert_allclose(ys[:, b], yb, rtol=0, atol=1e-6)
        np.testing.assert_allclose(state[b], sb[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_run_is_a_loop_over_step_and_state_is_explicit(small_model, precision):
    cell = small_model.cell(precision)
    xs = np.random.default_rng(2).standard_normal((30, cell.input_size)).astype(np.float32)
    ys, final = run(cell, xs)
    state = init_state(cell)
    for t in range(30):
        y, state = cell.step(xs[t:t + 1], state)
        np.testing.assert_array_equal(y[0], ys[t])
    np.testing.assert_array_equal(state, final)
    # The same (x, state) gives the same result however often it is stepped: no hidden state.
    s0 = np.random.default_rng(3).uniform(-0.5, 0.5, (1, cell.state_size)).astype(np.float32)
    a, b = cell.step(xs[:1], s0), cell.step(xs[:1], s0)
    np.testing.assert_array_equal(a[0], b[0])


def test_int8_is_within_documented_tolerance_of_float(small_model):
    """int8 forecasts stay within 0.15 normalised units RMS of float over a 1,000-step stream."""
    z = small_model.normalizer.normalize(sine_series(1000, small_model.config.input_size, seed=9))
    y_float, _ = run(small_model.cell("float32"), z)
    y_int8, _ = run(small_model.cell("int8"), z)
    err = y_int8 - y_float
    assert np.sqrt(np.mean(err ** 2)) < 0.15
    assert np.isfinite(y_int8).all()


def test_int8_state_stays_on_its_grid(small_model):
    """The int8 cell's state is on the calibrated state grid, as an int8 target feeds it back."""
    from edge.quant import range_scale
    cell = small_model.cell("int8")
    scale = range_scale(*small_model.activation_ranges["state"])
    z = np.random.default_rng(4).standard_normal((20, cell.input_size)).astype(np.float32)
    _, state = run(cell, z)
    q = state / np.float32(scale)
    np.testing.assert_allclose(q, np.rint(q), atol=1e-3)
    assert -128 <= np.rint(q).min() and np.rint(q).max() <= 127  # an int8 tensor with zero point 0


# The int8 ops the ESN reference computes with, against XNNPACK's arithmetic written out in Python
# integers: every pair of int8 inputs, scales from a real model and from the corners of the ranges.
ADD_SCALES = [(0.004908425733447075, 0.0023437500931322575, 0.007012036629021168),  # the leaky update
              (0.029877468943595886, 0.009933996945619583, 0.030890535563230515),  # the pre-activation
              (0.5, 0.001, 0.25), (1e-3, 1e-3, 1e-3)]


@pytest.mark.parametrize("scales", ADD_SCALES)
def test_int8_add_is_xnnpacks_fixed_point_for_every_input_pair(scales):
    from edge.quant import Int8Add
    add = Int8Add.build(*scales)
    ra, rb = (np.float32(s) / np.float32(scales[2]) for s in scales[:2])
    shift = 20 - (int(np.array(max(ra, rb), np.float32).view(np.uint32) >> 23) - 127)
    ma, mb = (int(np.rint(np.float32(r) * np.float32(2.0 ** shift))) for r in (ra, rb))
    a, b = (v.ravel() for v in np.meshgrid(np.arange(-128, 128), np.arange(-128, 128)))
    want = [min(127, max(-128, (x * ma + y * mb + (1 << (shift - 1))) >> shift)) for x, y in zip(a.tolist(), b.tolist())]
    np.testing.assert_array_equal(add(a.astype(np.float32), b.astype(np.float32)), want)


@pytest.mark.parametrize("scales", ADD_SCALES)
def test_int8_add_is_tflite_micros_fixed_point_for_every_input_pair(scales):
    """TFLite Micro's reference int8 ADD: inputs shifted left by 20, each scaled by s_x / (2 max(s_a,
    s_b)), the sum by 2 max(s_a, s_b) / (2^20 s_out), every scaling TFLite's integer requantization."""
    from edge.quant import Int8Add, multiply_by_quantized_multiplier as mul, quantize_multiplier
    add = Int8Add.build(*scales, arithmetic="gemmlowp")
    s_a, s_b, s_out = (float(np.float32(v)) for v in scales)
    twice = 2 * max(s_a, s_b)
    (ma, sa), (mb, sb), (mo, so) = (quantize_multiplier(r) for r in (s_a / twice, s_b / twice,
                                                                      twice / ((1 << 20) * s_out)))
    one = lambda v, m, sh: int(mul(np.array([v], np.int64), m, sh)[0])  # noqa: E731  (checked just above)
    a, b = (v.ravel() for v in np.meshgrid(np.arange(-128, 128), np.arange(-128, 128)))
    scaled_a = {x: one(x << 20, ma, sa) for x in range(-128, 128)}
    scaled_b = {x: one(x << 20, mb, sb) for x in range(-128, 128)}
    want = [min(127, max(-128, one(scaled_a[x] + scaled_b[y], mo, so))) for x, y in zip(a.tolist(), b.tolist())]
    np.testing.assert_array_equal(add(a.astype(np.float32), b.astype(np.float32)), want)


def test_gemmlowp_requantization_is_tflites_integer_formula():
    """multiply_by_quantized_multiplier against TFLite's MultiplyByQuantizedMultiplier written out in
    Python integers (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT)."""
    from edge.quant import multiply_by_quantized_multiplier, quantize_multiplier

    def reference(x, m, shift):
        ab = (x << max(shift, 0)) * m
        v = ab + (1 << 30 if ab >= 0 else 1 - (1 << 30))
        high = abs(v) >> 31 if v >= 0 else -(abs(v) >> 31)
        e = max(-shift, 0)
        mask = (1 << e) - 1
        return (high >> e) + int((high & mask) > (mask >> 1) + int(high < 0))

    rng = np.random.default_rng(8)
    x = rng.integers(-(2**24), 2**24, 4000)
    x[:8] = [0, 1, -1, 2**24 - 1, -(2**24), 3, -3, 1 << 20]
    for real in [*rng.uniform(1e-6, 0.999, 6), 1.0, 1.5, 3.0, 0.5, 2.0**-20]:
        m, shift = quantize_multiplier(float(real))
        assert 2**30 <= m < 2**31 and abs(m * 2.0 ** (shift - 31) - real) <= 2.0 ** (shift - 32)
        want = [reference(v, m, shift) for v in x.tolist()]
        np.testing.assert_array_equal(multiply_by_quantized_multiplier(x, m, shift), want)


def test_int8_fc_sums_exactly_and_rounds_its_float32_product_half_to_even():
    from edge.quant import Int8FC
    rng = np.random.default_rng(5)
    q = rng.integers(-127, 128, (6, 300))
    w_scale, bias = rng.uniform(1e-3, 1e-2, 6).astype(np.float32), rng.uniform(-3, 3, 6).astype(np.float32)
    fc = Int8FC.build(q, w_scale, 0.05, 0.02, bias)
    x = rng.integers(-128, 128, (50, 300))
    s = np.float32(0.05) * w_scale
    bq = [int(v) for v in np.rint(bias / s)]
    acc = [[sum(int(a) * int(w) for a, w in zip(row, qrow)) + bq[o] for o, qrow in enumerate(q.tolist())]
           for row in x.tolist()]
    want = np.clip(np.rint(np.asarray(acc, np.float32) * (s / np.float32(0.02))), -128, 127)
    np.testing.assert_array_equal(fc(x.astype(np.float32)), want)


def test_every_pinnable_scale_is_stated_exactly_by_its_int8_range():
    """A quantizer turns the range [min, max] into the scale (max - min) / 255 in float32; about one
    scale in 200 has no range that gives it, and `pinnable` steps to the next that has."""
    from edge.quant import int8_range, pinnable
    rng = np.random.default_rng(6)
    moved = 0
    for s in rng.uniform(1e-4, 2.0, 2000).astype(np.float32):
        p = np.float32(pinnable(s))
        moved += p != s
        lo, hi = int8_range(p)
        assert (hi - lo) / np.float32(255) == p and lo == np.float32(-128) * p and p >= s
        assert np.rint(np.float32(-128) - lo / p) == 0  # the zero point
    assert 0 < moved < 40
