"""Spiking reservoir training: send-on-delta thresholds from the training data, the synapses drawn
from the seed, a closed-form ridge readout on the spike traces (chosen on the held-out tail, as
for the ESN)."""

from __future__ import annotations

import numpy as np

from edge.lsm import LSMCell, make_reservoir
from edge.specs import LSMConfig

from .esn import features, fit_ridge_readout


def delta_thresholds(z: np.ndarray) -> np.ndarray:
    """Per channel, the median absolute one-step change of the (normalised) training data: about
    half the samples then send a spike on that channel."""
    return np.maximum(np.median(np.abs(np.diff(z, axis=0)), axis=0), 1e-3).astype(np.float32)


def traces(cell: LSMCell, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Teacher-forced spike traces after each input, float32[n, N], and the spikes per step int[n]."""
    n = cell.config.units
    out = np.empty((len(z), n), np.float32)
    spikes = np.empty(len(z), np.int64)
    s = np.zeros((1, cell.state_size), np.float32)
    for t in range(len(z)):
        _, s = cell.step(z[t:t + 1], s)
        out[t] = s[0, n:2 * n]
        spikes[t] = int(s[0, 2 * n:3 * n].sum())
    return out, spikes


def fit_lsm(config: LSMConfig, z: np.ndarray, n_fit: int, washout: int) -> tuple[dict[str, np.ndarray], dict]:
    """Fit on z[:n_fit]; choose the ridge and what it shrinks toward by one-step MSE on z[n_fit:]
    (`trainer.esn.fit_ridge_readout`). Returns weights and that report with "rate", the mean
    fraction of neurons spiking per step."""
    weights = make_reservoir(config)
    weights["delta"] = delta_thresholds(z[:n_fit])
    d, units = config.input_size, config.units
    weights["readout.weight"] = np.zeros((d, units + d), np.float32)
    weights["readout.bias"] = np.zeros(d, np.float32)
    tr, spikes = traces(LSMCell.from_weights(config, weights), z[:-1])
    phi = features(tr, z[:-1])
    target = z[1:].astype(np.float64)
    start = min(washout, max(0, n_fit - 2 - units // 4))
    fit, val = slice(start, n_fit - 1), slice(n_fit - 1, len(z) - 1)
    w, report = fit_ridge_readout(phi, target, fit, val, slice(units, units + d))
    weights["readout.weight"] = w[:, :-1].astype(np.float32)
    weights["readout.bias"] = w[:, -1].astype(np.float32)
    return weights, {**report, "rate": float(spikes[:n_fit].mean() / units)}
