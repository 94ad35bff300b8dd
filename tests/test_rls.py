"""Recursive least squares: equals ridge from scratch, and tracks a change with forgetting."""

import numpy as np

from edge.rls import rls_init, rls_update
from trainer.esn import solve_ridge


def test_rls_reproduces_ridge():
    rng = np.random.default_rng(0)
    phi = np.hstack([rng.standard_normal((300, 6)), np.ones((300, 1))])
    y = phi @ rng.standard_normal((7, 2)) + 0.1 * rng.standard_normal((300, 2))
    ridge = 0.5
    st = rls_init(np.zeros((2, 7)), 1.0 / ridge)
    for t in range(300):
        st = rls_update(st, phi[t], y[t])
    # RLS from P0 = I / ridge penalises every feature, the bias included
    expected = np.linalg.solve(phi.T @ phi + ridge * np.eye(7), phi.T @ y).T
    np.testing.assert_allclose(st.weight, expected, rtol=1e-8, atol=1e-10)
    w = solve_ridge(phi.T @ phi, phi.T @ y, ridge)  # the trainer's solve leaves the bias free
    assert np.abs(w - expected).max() < 0.05


def test_forgetting_tracks_a_changed_relation():
    rng = np.random.default_rng(1)
    phi = rng.standard_normal((2000, 3))
    w1, w2 = np.array([[1.0, -2.0, 0.5]]), np.array([[-1.0, 0.0, 2.0]])
    y = np.where(np.arange(2000)[:, None] < 1000, phi @ w1.T, phi @ w2.T)
    fixed = adaptive = rls_init(np.zeros((1, 3)), 100.0)
    for t in range(2000):
        fixed = rls_update(fixed, phi[t], y[t], 1.0)
        adaptive = rls_update(adaptive, phi[t], y[t], 0.98)
    assert np.abs(adaptive.weight - w2).max() < 1e-3
    assert np.abs(fixed.weight - w2).max() > 0.5
