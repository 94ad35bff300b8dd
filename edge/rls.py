"""Recursive least squares for adapting a linear readout online, one sample at a time.

With forgetting factor lam in (0, 1], each update minimises sum_t lam^(T - t) |y_t - W phi_t|^2
(plus the prior encoded by P0). Started from P0 = I / ridge and W = 0 with lam = 1 it reproduces
the ridge solution exactly; started from a trained readout with P0 = (Phi^T Phi + ridge I)^-1 it
continues that fit. Per stream, O(F^2) per update for F features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validation import check_float


@dataclass
class RLSState:
    weight: np.ndarray  # float64[D, F]: readout over features phi (e.g. [state; x; 1])
    p: np.ndarray       # float64[F, F]: inverse of the (forgetting-weighted) feature covariance


def rls_init(weight: np.ndarray, p0: np.ndarray | float) -> RLSState:
    """Start from a readout weight [D, F]; p0 is a matrix or a scalar c meaning c * I."""
    weight = np.array(weight, np.float64)
    f = weight.shape[1]
    p = np.eye(f) * float(p0) if np.ndim(p0) == 0 else np.array(p0, np.float64)
    return RLSState(weight, p)


def rls_update(st: RLSState, phi: np.ndarray, y: np.ndarray, forgetting: float = 1.0) -> RLSState:
    """One update with features phi float[F] and target y float[D]; returns the new state."""
    check_float("rls_update", "forgetting", forgetting, 0.0, 1.0, lo_open=True)
    phi = np.asarray(phi, np.float64)
    p_phi = st.p @ phi
    gain = p_phi / (forgetting + phi @ p_phi)
    error = np.asarray(y, np.float64) - st.weight @ phi
    weight = st.weight + np.outer(error, gain)
    p = (st.p - np.outer(gain, p_phi)) / forgetting
    return RLSState(weight, 0.5 * (p + p.T))  # keep P symmetric against rounding drift
