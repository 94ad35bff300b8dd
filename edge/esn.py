"""The numpy reference echo-state network: a fixed random reservoir and a trained linear readout.

    s' = (1 - a) s + a tanh(W_in x + W s + b)        y_hat = W_out [s'; x] + b_out
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .cell import ConfigShapes, QReadout, Readout
from .errors import ConfigError
from .quant import TANH_SCALE, QLinear, range_scale, requantize
from .specs import ESNConfig

# the names the step graph gives the tensors whose int8 grids ESNInt8Cell sets (converters.graph):
# the pre-activation's two fully-connected parts W_in x + b and W s, the pre-activation, its tanh,
# the leaky update's two terms (1 - a) s and a tanh, and the readout's two fully-connected parts
FC_IN, FC_REC, PREACT, TANH, KEEP, NEW = "fc_in", "fc_rec", "preact", "tanh", "keep", "new"
RO_STATE, RO_INPUT = "ro_state", "ro_input"
PARTS = (FC_IN, FC_REC, RO_STATE, RO_INPUT)  # calibrated ranges, as "preact" is


def weight_shapes(c: ESNConfig) -> dict[str, tuple[int, ...]]:
    return {
        "w_in": (c.units, c.input_size),
        "w": (c.units, c.units),
        "bias": (c.units,),
        "readout.weight": (c.input_size, c.units + c.input_size),
        "readout.bias": (c.input_size,),
    }


def activation_names(c: ESNConfig) -> list[str]:
    return ["input", "state", "output", PREACT, *PARTS]


def make_reservoir(c: ESNConfig) -> dict[str, np.ndarray]:
    """Draw (w_in, w, bias) from c.seed: the same config gives the same reservoir bit for bit."""
    rng = np.random.default_rng(c.seed)
    w_in = rng.uniform(-1.0, 1.0, (c.units, c.input_size)) * c.input_scaling
    w = rng.uniform(-1.0, 1.0, (c.units, c.units)) * (rng.random((c.units, c.units)) < c.density)
    radius = float(np.max(np.abs(np.linalg.eigvals(w))))
    if radius == 0.0:
        raise ConfigError(f"ESNConfig: a reservoir of {c.units} units at density {c.density} drew no "
                          "recurrent cycle (spectral radius 0); raise density or units")
    w *= c.spectral_radius / radius
    bias = rng.uniform(-1.0, 1.0, c.units) * c.bias_scaling
    return {"w_in": w_in.astype(np.float32), "w": w.astype(np.float32), "bias": bias.astype(np.float32)}


@dataclass(frozen=True)
class ESNCell(ConfigShapes):
    """float32 reference step."""

    config: ESNConfig
    w_in: np.ndarray
    w: np.ndarray
    bias: np.ndarray
    readout: Readout

    @classmethod
    def from_weights(cls, config: ESNConfig, w: Mapping[str, np.ndarray]) -> "ESNCell":
        f = lambda name: np.ascontiguousarray(w[name], np.float32)  # noqa: E731
        return cls(config, f("w_in"), f("w"), f("bias"), Readout(f("readout.weight"), f("readout.bias")))

    def reservoir_step(self, x: np.ndarray, state: np.ndarray, taps: dict | None = None) -> np.ndarray:
        a = np.float32(self.config.leak)
        fc_in, fc_rec = x @ self.w_in.T + self.bias, state @ self.w.T
        pre = fc_in + fc_rec
        if taps is not None:
            taps[FC_IN], taps[FC_REC], taps[PREACT] = fc_in, fc_rec, pre
        return (np.float32(1.0) - a) * state + a * np.tanh(pre)

    def step(self, x: np.ndarray, state: np.ndarray, taps: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`taps`, when given, receives the tensors whose ranges int8 needs (`activation_names`)."""
        state = self.reservoir_step(x, state, taps)
        if taps is None:
            return self.readout(state, x), state
        taps[RO_STATE], taps[RO_INPUT] = parts = self.readout.parts(state, x)
        return parts[0] + parts[1], state


@dataclass(frozen=True)
class ESNInt8Cell(ConfigShapes):
    """The int8 step as an int8 target computes it: integer matmuls, each fully-connected output
    (W_in x + b, W s, and the readout's two parts) rounded onto its calibrated grid before the sum
    of the two is rounded onto the pre-activation's (or the output's), tanh onto int8 TANH's fixed
    grid (1/128, as every int8 TFLite and TFLite Micro kernel gives it), the leaky update onto the
    state's. `grids` gives the int8 targets these grids, and those of the update's two terms, on
    which (1 - a) s and a tanh are exact, so a target pinned to them rounds where this cell does."""

    config: ESNConfig
    w_in: QLinear
    w: QLinear
    bias: np.ndarray
    fc_scales: tuple[float, float]  # W_in x + b, W s
    preact_scale: float
    state_scale: float
    readout: QReadout

    @classmethod
    def from_weights(cls, config: ESNConfig, w: Mapping[str, np.ndarray],
                     ranges: Mapping[str, tuple[float, float]]) -> "ESNInt8Cell":
        s_in, s_state = range_scale(*ranges["input"]), range_scale(*ranges["state"])
        scale = {name: range_scale(*ranges[name]) for name in (PREACT, *PARTS)}
        return cls(config,
                   QLinear.build(w["w_in.q"], w["w_in.scale"], s_in),
                   QLinear.build(w["w.q"], w["w.scale"], s_state),
                   np.asarray(w["bias"], np.float32),
                   (scale[FC_IN], scale[FC_REC]), scale[PREACT], s_state,
                   QReadout.build(w["readout.weight.q"], w["readout.weight.scale"], w["readout.bias"],
                                  config.units, s_state, s_in, range_scale(*ranges["output"]),
                                  (scale[RO_STATE], scale[RO_INPUT])))

    def grids(self) -> dict[str, float]:
        """The int8 scale of each named tensor of the step graph."""
        a = float(np.float32(self.config.leak))
        return {FC_IN: self.fc_scales[0], FC_REC: self.fc_scales[1], PREACT: self.preact_scale,
                TANH: TANH_SCALE, KEEP: (1.0 - a) * self.state_scale, NEW: a * TANH_SCALE,
                RO_STATE: self.readout.part_scales[0], RO_INPUT: self.readout.part_scales[1]}

    def step(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = np.float32(self.config.leak)
        s_in, s_rec = self.fc_scales
        pre = requantize(requantize(self.w_in(x) + self.bias, s_in) + requantize(self.w(state), s_rec),
                         self.preact_scale)
        new = requantize(np.tanh(pre), TANH_SCALE)
        state = requantize((np.float32(1.0) - a) * state + a * new, self.state_scale)
        return self.readout(state, x), state
