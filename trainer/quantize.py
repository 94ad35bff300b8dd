"""Post-training int8 quantization: per-output-channel symmetric weights, and activation ranges
(input, state, output and every tensor of the step graph the int8 cell rounds on:
`activation_names`) calibrated by stepping the float reference over the whole fit part, with a
representative set of (x, state) pairs stored for converters' full-integer targets.

Ranges are the min and max over every step of the run, not a moving average of per-sample ranges
(which comes out far too narrow on single samples). The tensors that grow with the input (an ESN's
input, output, W_in x + b, pre-activation and the readout's input part) can be given `headroom`
times that range, for a stream expected to leave its training rows' range by far: an int8 model
whose input saturates at the training extremes forecasts from a clipped state, one with headroom
rounds every in-range value more coarsely. The default is none (1): on NAB 4 times the range scored
0.6 points more over the whole corpus, but a factor chosen on half the files scored the other half
lower than none (docs/nab.md, "What did not").
"""

from __future__ import annotations

import numpy as np

from edge.artifact import activation_names, quantized_names, quantized_splits
from edge.cell import Cell
from edge.esn import FC_IN, PREACT, RO_INPUT
from edge.quant import HEADROOM, quantize_per_channel
from edge.specs import ModelConfig

REPRESENTATIVE = 512


def headroom_tensors(config: ModelConfig) -> tuple[str, ...]:
    """The calibrated tensors whose range `calibrate` widens by its headroom: those that grow with
    the input. A GRU's gates are not widened (not measured)."""
    return ("input", FC_IN, PREACT, RO_INPUT, "output") if config.kind == "esn" else ()


def quantize_weights(config: ModelConfig, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`{name}.q` (int8) and `{name}.scale` (float32 per output channel) for every matrix."""
    out = {}
    for name in quantized_names(config):
        out[f"{name}.q"], out[f"{name}.scale"] = quantize_per_channel(weights[name], quantized_splits(config, name))
    return out


def calibrate(cell: Cell, z: np.ndarray, *, size: int = REPRESENTATIVE, headroom: float = HEADROOM
              ) -> tuple[dict, dict[str, np.ndarray]]:
    """Step the float cell over z (normalised float32[n, D], one stream, from the zero state).

    Returns the activation ranges {name: [lo, hi]} (`headroom_tensors` widened `headroom` times)
    and a representative set {"x": [N, D], "state": [N, S]} of inputs and the states they were
    stepped from: `size` steps evenly spaced over z, plus every step at which some channel of some
    calibrated tensor reaches its minimum or maximum. A converter that calibrates its own per-op
    ranges on this set therefore sees the same extremes as the whole run; evenly spaced samples
    alone miss them and clip the rare large value.
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
    wide = headroom_tensors(cell.config)
    ranges = {name: [v * headroom for v in ranges[name]] if name in wide else ranges[name]
              for name in activation_names(cell.config)}
    return ranges, {"x": np.ascontiguousarray(z[idx], np.float32), "state": states[idx]}
