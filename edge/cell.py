"""The one step contract every model satisfies on every backend.

    step(x: float32[B, D], state: float32[B, S]) -> (y_hat: float32[B, D], state': float32[B, S])

`y_hat` forecasts the next normalised sample; B streams are stepped together. A whole sequence is
only a loop over the same step (`run`), so batch and streaming cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol

import numpy as np

from .quant import Int8Add, Int8FC

# the names the step graph gives the readout's two fully-connected parts (converters.graph), whose
# int8 grids the int8 cells set from calibrated ranges
RO_STATE, RO_INPUT = "ro_state", "ro_input"


class Cell(Protocol):
    input_size: int
    state_size: int

    def step(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class ConfigShapes:
    """input_size and state_size read off the cell's `config` (for the dataclass cells)."""

    @property
    def input_size(self) -> int:
        return self.config.input_size

    @property
    def state_size(self) -> int:
        return self.config.state_size


def init_state(cell: Cell, batch: int = 1) -> np.ndarray:
    """The zero state for `batch` streams: float32[B, S]."""
    return np.zeros((batch, cell.state_size), np.float32)


def run(cell: Cell, xs: np.ndarray, state: np.ndarray | None = None,
        *, return_states: bool = False):
    """Step `cell` over xs: float32[T, B, D] (or [T, D] for one stream) with the state fed back.

    Returns (y_hat [T, B, D], final state [B, S]), plus the state after every step [T, B, S] when
    return_states is set. y_hat[t] is the forecast of xs[t + 1].
    """
    xs = np.asarray(xs, np.float32)
    single = xs.ndim == 2
    if single:
        xs = xs[:, None, :]
    if state is None:
        state = init_state(cell, xs.shape[1])
    ys = np.empty(xs.shape, np.float32)
    states = np.empty((xs.shape[0], xs.shape[1], cell.state_size), np.float32) if return_states else None
    for t in range(xs.shape[0]):
        ys[t], state = cell.step(xs[t], state)
        if return_states:
            states[t] = state
    if single:
        ys = ys[:, 0]
        states = states[:, 0] if return_states else None
    return (ys, state, states) if return_states else (ys, state)


def sigmoid(x: np.ndarray) -> np.ndarray:
    # The tanh form never overflows, unlike 1 / (1 + exp(-x)).
    return np.float32(0.5) * (np.float32(1.0) + np.tanh(np.float32(0.5) * x))


@dataclass(frozen=True)
class Readout:
    """y = (W[:, :S] s + b) + W[:, S:] x: a linear forecast from the top state and the input, added
    in the step graph's order."""

    weight: np.ndarray  # float32[D, S_top + D]
    bias: np.ndarray    # float32[D]

    def __call__(self, s: np.ndarray, x: np.ndarray) -> np.ndarray:
        state_part, input_part = self.parts(s, x)
        return state_part + input_part

    def parts(self, s: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The two fully-connected outputs the step graph adds: W[:, :S] s + b and W[:, S:] x."""
        k = s.shape[1]
        return s @ self.weight[:, :k].T + self.bias, x @ self.weight[:, k:].T


@dataclass(frozen=True)
class Int8Readout:
    """The int8 readout as a step graph computes it: its state part (W[:, :S] s + b) and input part
    (W[:, S:] x), two fully-connected ops with per-channel int8 weights of their own (`build`'s
    w_scale is float32[D, 2]), each onto its calibrated grid (RO_STATE, RO_INPUT), added onto the
    output's grid. Inputs and output are int8 values (`edge.quant`)."""

    state_part: Int8FC
    input_part: Int8FC
    add: Int8Add

    @classmethod
    def build(cls, q: np.ndarray, w_scale: np.ndarray, bias: np.ndarray, scales: Mapping[str, float],
              arithmetic: str = "xnnpack") -> "Int8Readout":
        """`scales`: the grids of "state" (the top state), "input", RO_STATE, RO_INPUT and "output"."""
        s, k = scales, q.shape[1] - len(bias)
        return cls(Int8FC.build(q[:, :k], w_scale[:, 0], s["state"], s[RO_STATE], bias, arithmetic),
                   Int8FC.build(q[:, k:], w_scale[:, 1], s["input"], s[RO_INPUT], None, arithmetic),
                   Int8Add.build(s[RO_STATE], s[RO_INPUT], s["output"], arithmetic))

    def __call__(self, sq: np.ndarray, xq: np.ndarray) -> np.ndarray:
        return self.add(self.state_part(sq), self.input_part(xq))
