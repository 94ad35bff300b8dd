"""Echo-state network training: the reservoir drawn from the seed, a closed-form ridge readout.

The ridge is chosen on the held-out tail from a log grid: a fixed tiny ridge overfits the short
training parts anomaly benchmarks give (it made the forecaster worse than repeating the last value
on most NAB files). So is what the ridge shrinks the readout toward (`fit_ridge_readout`): zero
(the forecast toward the training mean) or repeating the last value (the weight on each channel's
own input toward 1). The second keeps a forecaster of many channels from a few hundred rows at
least as good as persistence, where shrinking toward the mean made it several times worse. The
readout is fitted from sufficient statistics (Phi^T Phi, Phi^T Y) on the fit part only, so the tail
stays honest for calibrating the scorer.

There is no ESN pruning: the reservoir is sparse by construction (a ring, or `density`), and removing whole
units (by readout importance or activity, in steps, the readout refitted after each) gives the
same held-out error as drawing the smaller reservoir in the first place (bench/esn_prune.py), so
an ESN's size is set with `units`.
"""

from __future__ import annotations

import numpy as np

from edge.esn import ESNCell, make_reservoir
from edge.quant import HEADROOM, QMAX
from edge.specs import ESNConfig

RIDGE_GRID = tuple(10.0 ** e for e in np.arange(-6.0, 6.01, 0.5))
TOWARD = ("mean", "persistence")  # what the ridge shrinks the readout toward


def reservoir_states(cell: ESNCell, z: np.ndarray) -> np.ndarray:
    """Teacher-forced reservoir states after each input: float32[n, N], from the zero state."""
    states = np.empty((len(z), cell.config.units), np.float32)
    s = np.zeros((1, cell.config.units), np.float32)
    for t in range(len(z)):
        s = cell.reservoir_step(z[t:t + 1], s)
        states[t] = s[0]
    return states


def features(states: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Readout features [s_t; x_t; 1] per row, float64."""
    return np.hstack([states, z, np.ones((len(z), 1))]).astype(np.float64)


def solve_ridge(gram: np.ndarray, cross: np.ndarray, ridge: float, noise: np.ndarray | float = 0.0) -> np.ndarray:
    """argmin_W |Y - Phi W^T|^2 + sum_f (ridge + noise_f) |W_f|^2 from gram = Phi^T Phi and
    cross = Phi^T Y. The last feature is the bias and is not penalised. Returns W [D, F].

    `noise` (rows x variance per feature) is the penalty equivalent to fitting on features with
    that much zero-mean noise added (Bishop 1995): it makes the readout robust to int8 rounding.
    """
    penalty = ridge + np.broadcast_to(np.asarray(noise, np.float64), (gram.shape[0],)).copy()
    penalty[-1] = 0.0
    return np.linalg.solve(gram + np.diag(penalty), cross).T


def fit_ridge_readout(phi: np.ndarray, target: np.ndarray, fit: slice, val: slice, inputs: slice,
                      noise: np.ndarray | float = 0.0) -> tuple[np.ndarray, dict]:
    """The readout W [D, F] over features phi [n, F] (`features`: the input in columns `inputs`, the
    bias last) fitted on rows `fit`, with the ridge and what it shrinks toward chosen by one-step MSE
    on rows `val`: "mean" shrinks W toward 0, "persistence" toward repeating the last value (W0 = 1
    from each channel's own input, W = W0 + argmin |Y - Phi W0^T - Phi dW^T|^2 + ridge |dW|^2).
    At a small ridge the two agree; at a large one the first forecasts the training mean, the
    second the last value. Returns W and a report {"ridge", "toward", "val_mse", "grid"}, with grid
    {toward: {ridge: val MSE}}."""
    gram, cross = phi[fit].T @ phi[fit], phi[fit].T @ target[fit]
    d = target.shape[1]
    persistence = np.zeros((d, phi.shape[1]))
    persistence[:, inputs] = np.eye(d)
    grid, best = {}, None
    for toward, w0 in zip(TOWARD, (np.zeros_like(persistence), persistence)):
        shifted = cross - gram @ w0.T
        grid[toward] = {}
        for ridge in RIDGE_GRID:
            w = solve_ridge(gram, shifted, ridge, noise) + w0
            mse = float(np.mean((phi[val] @ w.T - target[val]) ** 2))
            grid[toward][f"{ridge:.0e}"] = mse
            if best is None or mse < best[0]:
                best = (mse, ridge, toward, w)
    mse, ridge, toward, w = best
    return w, {"ridge": ridge, "toward": toward, "val_mse": mse, "grid": grid}


def state_rounding(config: ESNConfig, weights: dict[str, np.ndarray], z: np.ndarray, states: np.ndarray,
                   n_fit: int, headroom: float) -> np.ndarray:
    """Per unit, the mean squared gap between the int8 reservoir's states and the float ones
    (`states`, teacher-forced on z) over z[:n_fit], on the int8 grids `calibrate` will set. It is
    far larger than one rounding (a step's variance, scale^2 / 12): each step's rounding lives on
    in the leaky, recurrent state."""
    from edge.artifact import build_cell
    from edge.cell import run

    from .quantize import calibrate, quantize_weights
    d, units = config.input_size, config.units
    w = {**weights, "readout.weight": np.zeros((d, units + d), np.float32), "readout.bias": np.zeros(d, np.float32)}
    ranges, _ = calibrate(build_cell(config, w), z[:n_fit], headroom=headroom)  # the readout is not used
    int8_cell = build_cell(config, {**w, **quantize_weights(config, w)}, "int8", ranges)
    _, _, int8_states = run(int8_cell, z[:n_fit], return_states=True)
    return np.mean((int8_states - states[:n_fit]) ** 2, axis=0, dtype=np.float64)


def fit_esn(config: ESNConfig, z: np.ndarray, n_fit: int, washout: int,
            *, int8: bool = False, headroom: float = HEADROOM) -> tuple[dict[str, np.ndarray], dict]:
    """Draw the reservoir from config.seed and fit its readout (`fit_readout`): the weights and
    the readout report."""
    weights, report, _ = fit_readout(config, make_reservoir(config), z, n_fit, washout, int8=int8,
                                     headroom=headroom)
    return weights, report


def fit_readout(config: ESNConfig, weights: dict[str, np.ndarray], z: np.ndarray, n_fit: int, washout: int,
                *, int8: bool = False, headroom: float = HEADROOM
                ) -> tuple[dict[str, np.ndarray], dict, np.ndarray]:
    """Fit the readout of reservoir `weights` on z[:n_fit] (normalised float32[n, D]); choose the
    ridge and what it shrinks toward by one-step MSE on z[n_fit:] (`fit_ridge_readout`).

    With int8, the readout is fitted as if its features carried the int8 model's own error: per
    state unit the int8 reservoir's measured gap to the float states (`state_rounding`), for the
    input one rounding (scale^2 / 12), both on the grids `calibrate` sets with `headroom`. That
    keeps its weights small enough that the int8 state's error, on the reference or on a target
    that rounds a little differently, does not blow up the forecast. (Shrunk toward persistence,
    the penalty weighs the step from it: the input's weights near 1 carry its rounding unpenalised,
    as repeating the last value must.)
    Returns the weights with the readout, a report (`fit_ridge_readout`'s, with "washout") and the
    readout features of every row.
    """
    d, units = config.input_size, config.units
    zero_readout = {"readout.weight": np.zeros((d, units + d), np.float32),
                    "readout.bias": np.zeros(d, np.float32)}
    cell = ESNCell.from_weights(config, {**weights, **zero_readout})
    phi = features(reservoir_states(cell, z[:-1]), z[:-1])  # row t forecasts z[t + 1]
    target = z[1:].astype(np.float64)
    start = min(washout, max(0, n_fit - 2 - units // 4))  # keep some rows when the fit part is short
    fit = slice(start, n_fit - 1)
    val = slice(n_fit - 1, len(z) - 1)
    noise = 0.0
    if int8:
        step_input = headroom * np.abs(z[:n_fit]).max() / QMAX
        per_row = np.concatenate([state_rounding(config, weights, z, phi[:, :units], n_fit, headroom),
                                  np.full(d, step_input ** 2 / 12), [0.0]])
        noise = (fit.stop - fit.start) * per_row
    w, report = fit_ridge_readout(phi, target, fit, val, slice(units, units + d), noise)
    weights = {**weights, "readout.weight": w[:, :-1].astype(np.float32), "readout.bias": w[:, -1].astype(np.float32)}
    return weights, {**report, "washout": start}, phi
