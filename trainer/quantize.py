"""Post-training int8 quantization: per-output-channel symmetric weights, and activation ranges
(input, state, matmul outputs, output) calibrated by stepping the float reference over the whole
fit part, with a representative set of (x, state) pairs stored for converters' full-integer targets.

Ranges are the min and max over every step of the run, not a moving average of per-sample ranges
(which comes out far too narrow on single samples).
"""

from __future__ import annotations

import numpy as np

from edge.artifact import activation_names, quantized_names
from edge.cell import Cell
from edge.quant import quantize_per_channel
from edge.specs import ModelConfig

REPRESENTATIVE = 512


def quantize_weights(config: ModelConfig, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`{name}.q` (int8) and `{name}.scale` (float32 per output channel) for every matrix."""
    out = {}
    for name in quantized_names(config):
        out[f"{name}.q"], out[f"{name}.scale"] = quantize_per_channel(weights[name])
    return out


def calibrate(cell: Cell, z: np.ndarray, *, size: int = REPRESENTATIVE) -> tuple[dict, dict[str, np.ndarray]]:
    """Step the float cell over z (normalised float32[n, D], one stream, from the zero state).

    Returns the activation ranges {name: [lo, hi]} and a representative set {"x": [N, D],
    "state": [N, S]} of the inputs and the states they were stepped from, evenly spaced over z.
    """
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}

    def see(name: str, a: np.ndarray) -> None:
        lo[name] = min(lo.get(name, np.inf), float(a.min()))
        hi[name] = max(hi.get(name, -np.inf), float(a.max()))

    pick = set(np.linspace(0, len(z) - 1, min(size, len(z))).astype(int).tolist())
    xs, states = [], []
    state = np.zeros((1, cell.state_size), np.float32)
    for t in range(len(z)):
        if t in pick:
            xs.append(z[t])
            states.append(state[0])
        taps: dict = {}
        y, state = cell.step(z[t:t + 1], state, taps)
        for name, a in taps.items():
            see(name, a)
        see("state", state)
        see("output", y)
    see("input", z)
    ranges = {name: [lo[name], hi[name]] for name in activation_names(cell.config)}
    return ranges, {"x": np.asarray(xs, np.float32), "state": np.asarray(states, np.float32)}
