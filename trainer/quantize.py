"""Post-training int8 quantization: per-output-channel symmetric weights, and activation ranges
(input, state, matmul outputs, output) calibrated by stepping the float reference over the whole
fit part, with a representative set of (x, state) pairs stored for converters' full-integer targets.

Ranges are the min and max over every step of the run, not a moving average of per-sample ranges
(which comes out far too narrow on single samples).
"""

from __future__ import annotations

import numpy as np

from edge.artifact import activation_names, quantized_names, quantized_splits
from edge.cell import Cell
from edge.quant import quantize_per_channel
from edge.specs import ModelConfig

REPRESENTATIVE = 512


def quantize_weights(config: ModelConfig, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`{name}.q` (int8) and `{name}.scale` (float32 per output channel) for every matrix."""
    out = {}
    for name in quantized_names(config):
        out[f"{name}.q"], out[f"{name}.scale"] = quantize_per_channel(weights[name], quantized_splits(config, name))
    return out


def calibrate(cell: Cell, z: np.ndarray, *, size: int = REPRESENTATIVE) -> tuple[dict, dict[str, np.ndarray]]:
    """Step the float cell over z (normalised float32[n, D], one stream, from the zero state).

    Returns the activation ranges {name: [lo, hi]} and a representative set {"x": [N, D],
    "state": [N, S]} of inputs and the states they were stepped from: `size` steps evenly spaced
    over z, plus every step at which some channel of some calibrated tensor reaches its minimum or
    maximum. A converter that calibrates its own per-op ranges on this set therefore sees the same
    extremes as the whole run; evenly spaced samples alone miss them and clip the rare large value.
    """
    n = len(z)
    taps_over_time: dict[str, list[np.ndarray]] = {}
    states = np.empty((n + 1, cell.state_size), np.float32)
    states[0] = 0.0
    for t in range(n):
        taps: dict = {}
        y, s = cell.step(z[t:t + 1], states[t:t + 1], taps)
        states[t + 1] = s[0]
        taps["output"] = y
        for name, a in taps.items():
            taps_over_time.setdefault(name, []).append(a[0])
    series = {name: np.asarray(v) for name, v in taps_over_time.items()}
    series["input"] = z
    ranges = {}
    pick = set(np.linspace(0, n - 1, min(size, n)).astype(int).tolist())
    for name, a in series.items():
        ranges[name] = [float(a.min()), float(a.max())]
        pick.update(a.argmin(axis=0).tolist() + a.argmax(axis=0).tolist())
    after = states[1:]  # the state made at step t is the state input of step t + 1
    ranges["state"] = [float(after.min()), float(after.max())]
    pick.update(i + 1 for i in after.argmin(axis=0).tolist() + after.argmax(axis=0).tolist() if i + 1 < n)
    idx = np.array(sorted(pick))
    ranges = {name: ranges[name] for name in activation_names(cell.config)}
    return ranges, {"x": np.ascontiguousarray(z[idx], np.float32), "state": states[idx]}
