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
