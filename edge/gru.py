"""The numpy reference GRU, in PyTorch's gate layout so trained weights load unchanged.

Per layer l, with W_ih: [3H, in], W_hh: [3H, H] stacked as (r, z, n):
    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h
The state is [h_1, ..., h_L] concatenated (S = L * H); the forecast reads out [h_L; x].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .cell import ConfigShapes, QReadout, Readout, sigmoid
from .quant import QLinear, range_scale, requantize
from .specs import GRUConfig


def weight_shapes(c: GRUConfig) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(c.layers):
        fan_in = c.input_size if layer == 0 else c.hidden
        shapes[f"weight_ih_l{layer}"] = (3 * c.hidden, fan_in)
        shapes[f"weight_hh_l{layer}"] = (3 * c.hidden, c.hidden)
        shapes[f"bias_ih_l{layer}"] = (3 * c.hidden,)
        shapes[f"bias_hh_l{layer}"] = (3 * c.hidden,)
    shapes["readout.weight"] = (c.input_size, c.hidden + c.input_size)
    shapes["readout.bias"] = (c.input_size,)
    return shapes


def activation_names(c: GRUConfig) -> list[str]:
    """Tensors whose ranges int8 needs: input, state, output and each layer's two matmul outputs."""
    gates = [f"{side}_l{layer}" for layer in range(c.layers) for side in ("gi", "gh")]
    return ["input", "state", "output", *gates]


def _gates(gi: np.ndarray, gh: np.ndarray, h: np.ndarray) -> np.ndarray:
    i_r, i_z, i_n = np.split(gi, 3, axis=1)
    h_r, h_z, h_n = np.split(gh, 3, axis=1)
    r = sigmoid(i_r + h_r)
    z = sigmoid(i_z + h_z)
    n = np.tanh(i_n + r * h_n)
    return n + z * (h - n)


@dataclass(frozen=True)
class GRUCell(ConfigShapes):
    """float32 reference step; see the module docstring for the equations."""

    config: GRUConfig
    w_ih: tuple[np.ndarray, ...]
    w_hh: tuple[np.ndarray, ...]
    b_ih: tuple[np.ndarray, ...]
    b_hh: tuple[np.ndarray, ...]
    readout: Readout

    @classmethod
    def from_weights(cls, config: GRUConfig, w: Mapping[str, np.ndarray]) -> "GRUCell":
        f = lambda name: np.ascontiguousarray(w[name], np.float32)  # noqa: E731
        layers = range(config.layers)
        return cls(config,
                   tuple(f(f"weight_ih_l{i}") for i in layers), tuple(f(f"weight_hh_l{i}") for i in layers),
                   tuple(f(f"bias_ih_l{i}") for i in layers), tuple(f(f"bias_hh_l{i}") for i in layers),
                   Readout(f("readout.weight"), f("readout.bias")))

    def step(self, x: np.ndarray, state: np.ndarray, taps: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`taps`, when given, receives the matmul outputs (gi_l*, gh_l*) for range calibration."""
        hidden = self.config.hidden
        new = np.empty_like(state)
        inp = x
        for layer in range(self.config.layers):
            h = state[:, layer * hidden:(layer + 1) * hidden]
            gi = inp @ self.w_ih[layer].T + self.b_ih[layer]
            gh = h @ self.w_hh[layer].T + self.b_hh[layer]
            if taps is not None:
                taps[f"gi_l{layer}"], taps[f"gh_l{layer}"] = gi, gh
            inp = new[:, layer * hidden:(layer + 1) * hidden] = _gates(gi, gh, h)
        return self.readout(inp, x), new


@dataclass(frozen=True)
class GRUInt8Cell(ConfigShapes):
    """The int8 step: what a full-integer target computes, up to its lookup-table nonlinearities.

    Matmuls are int8 x int8 with exact int32 accumulation, requantized per output channel; each
    matmul output is rounded onto the int8 grid of its calibrated range; the gate arithmetic
    (sigmoid, tanh, the convex update) is float32; the new state is rounded onto the state's int8
    grid every step, because that is what an int8 target feeds back.
    """

    config: GRUConfig
    w_ih: tuple[QLinear, ...]
    w_hh: tuple[QLinear, ...]
    b_ih: tuple[np.ndarray, ...]
    b_hh: tuple[np.ndarray, ...]
    gi_scale: tuple[float, ...]
    gh_scale: tuple[float, ...]
    state_scale: float
    readout: QReadout

    @classmethod
    def from_weights(cls, config: GRUConfig, w: Mapping[str, np.ndarray],
                     ranges: Mapping[str, tuple[float, float]]) -> "GRUInt8Cell":
        s_in, s_state = range_scale(*ranges["input"]), range_scale(*ranges["state"])
        layers = range(config.layers)
        qlin = lambda name, s: QLinear.build(w[f"{name}.q"], w[f"{name}.scale"], s)  # noqa: E731
        return cls(
            config,
            tuple(qlin(f"weight_ih_l{i}", s_in if i == 0 else s_state) for i in layers),
            tuple(qlin(f"weight_hh_l{i}", s_state) for i in layers),
            tuple(np.asarray(w[f"bias_ih_l{i}"], np.float32) for i in layers),
            tuple(np.asarray(w[f"bias_hh_l{i}"], np.float32) for i in layers),
            tuple(range_scale(*ranges[f"gi_l{i}"]) for i in layers),
            tuple(range_scale(*ranges[f"gh_l{i}"]) for i in layers),
            s_state,
            QReadout.build(w["readout.weight.q"], w["readout.weight.scale"], w["readout.bias"],
                           config.hidden, s_state, s_in, range_scale(*ranges["output"])),
        )

    def grids(self) -> dict[str, float]:
        """No grids beyond the input's, state's and output's: the target's gates (three
        fully-connected ops per side) have no counterpart here (see ESNInt8Cell.grids)."""
        return {}

    def step(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hidden = self.config.hidden
        new = np.empty_like(state)
        inp = x
        for layer in range(self.config.layers):
            h = state[:, layer * hidden:(layer + 1) * hidden]
            gi = requantize(self.w_ih[layer](inp) + self.b_ih[layer], self.gi_scale[layer])
            gh = requantize(self.w_hh[layer](h) + self.b_hh[layer], self.gh_scale[layer])
            inp = new[:, layer * hidden:(layer + 1) * hidden] = requantize(_gates(gi, gh, h), self.state_scale)
        return self.readout(inp, x), new
