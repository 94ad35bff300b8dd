"""The numpy reference spiking reservoir (a liquid state machine): send-on-delta input spikes,
leaky integrate-and-fire neurons with sparse low-precision synapses, a linear readout on
exponentially filtered spike traces.

Per step (forward Euler, dt = 1 sample), for each stream:
    up_c = x_c - ref_c >= delta_c, down_c = x_c - ref_c <= -delta_c     ref += delta (up - down)
    I = s_in * W_in^q [up; down] + s_rec * W^q s_prev                   (the recurrent edge: one step late)
    v = (1 - 1/tau_mem) v + I;  s = v > threshold;  v = 0 where s       (reset to zero)
    tr = exp(-1/tau_trace) tr + s
    y_hat = W_out [tr; x] + b_out
W_in^q and W^q are int8 (ternary: -1, 0, 1, or full int8) with one power-of-two scale each; the state is
[v; tr; s; ref], float32[B, 3N + D]. `step` sums only the columns of the neurons (and input
channels) that spiked, so the work follows activity, and counts the synaptic operations it did.
`step_dense` is the same arithmetic as dense products (tested identical).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .cell import ConfigShapes, Readout
from .specs import LSMConfig


def weight_shapes(c: LSMConfig) -> dict[str, tuple[int, ...]]:
    return {
        "w_in.q": (c.units, 2 * c.input_size),
        "w_in.scale": (1,),
        "w.q": (c.units, c.units),
        "w.scale": (1,),
        "delta": (c.input_size,),
        "readout.weight": (c.input_size, c.units + c.input_size),
        "readout.bias": (c.input_size,),
    }


def weight_dtypes(c: LSMConfig) -> dict[str, str]:
    return {"w_in.q": "int8", "w.q": "int8"}


def activation_names(c: LSMConfig) -> list[str]:
    return ["input", "state", "output"]


def make_reservoir(c: LSMConfig) -> dict[str, np.ndarray]:
    """Draw the synapses from c.seed: the same config gives the same reservoir bit for bit.
    Recurrent: each pair connected with probability `density` (no self-connections), excitatory or
    inhibitory at random; input: each neuron listens to each up/down channel with probability 1/2."""
    rng = np.random.default_rng(c.seed)
    n, d = c.units, c.input_size
    mask = (rng.random((n, n)) < c.density) & ~np.eye(n, dtype=bool)
    if c.weights == "ternary":
        w = rng.choice(np.array([-1, 1], np.int8), (n, n))
        w_in = rng.choice(np.array([-1, 1], np.int8), (n, 2 * d))
        unit = 1.0
    else:
        w = rng.integers(-127, 128, (n, n)).astype(np.int8)
        w_in = rng.integers(-127, 128, (n, 2 * d)).astype(np.int8)
        unit = 1.0 / 64.0  # an int8 weight's typical magnitude, so both kinds drive alike
    w = (w * mask).astype(np.int8)
    w_in = (w_in * (rng.random((n, 2 * d)) < 0.5)).astype(np.int8)
    fan_in = max(1.0, c.density * n)
    return {"w_in.q": w_in, "w_in.scale": _pow2(c.input_gain * c.threshold * unit),
            "w.q": w, "w.scale": _pow2(c.recurrent_gain * c.threshold * unit / np.sqrt(fan_in))}


def _pow2(x: float) -> np.ndarray:
    """The nearest power of two: a shift on integer hardware, and exact products and sums in float32,
    so that a simulator that folds the scale (and tau_mem / dt) into the weights fires the same
    spikes (exactly when tau_mem is a power of two too)."""
    return np.array([2.0 ** np.round(np.log2(x)) if x > 0 else 0.0], np.float32)


@dataclass(frozen=True)
class LSMCell(ConfigShapes):
    """float32 reference step, event-driven."""

    config: LSMConfig
    w_in: np.ndarray        # int8[N, 2D]
    w_in_scale: np.float32
    w: np.ndarray           # int8[N, N]
    w_scale: np.float32
    delta: np.ndarray       # float32[D], in normalised units
    readout: Readout
    _cols: np.ndarray = field(repr=False, default=None)     # int32[N, N]: W^q's columns as rows
    _in_cols: np.ndarray = field(repr=False, default=None)  # int32[2D, N]
    _fanout: np.ndarray = field(repr=False, default=None)   # int64[N]: nonzero synapses per neuron
    _in_fanout: np.ndarray = field(repr=False, default=None)

    @classmethod
    def from_weights(cls, config: LSMConfig, w: Mapping[str, np.ndarray]) -> "LSMCell":
        f = lambda name: np.ascontiguousarray(w[name], np.float32)  # noqa: E731
        wq, wiq = np.asarray(w["w.q"], np.int8), np.asarray(w["w_in.q"], np.int8)
        return cls(config, wiq, np.float32(w["w_in.scale"][0]), wq, np.float32(w["w.scale"][0]), f("delta"),
                   Readout(f("readout.weight"), f("readout.bias")),
                   np.ascontiguousarray(wq.T, np.int32), np.ascontiguousarray(wiq.T, np.int32),
                   (wq != 0).sum(axis=0), (wiq != 0).sum(axis=0))

    def split(self, state: np.ndarray):
        n = self.config.units
        return state[:, :n], state[:, n:2 * n], state[:, 2 * n:3 * n], state[:, 3 * n:]

    def _encode(self, x: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dz = x - ref
        up, down = dz >= self.delta, dz <= -self.delta
        return np.concatenate([up, down], axis=1), ref + self.delta * (up.astype(np.float32) - down)

    def _lif(self, v, tr, current):
        c = self.config
        v = np.float32(1.0 - 1.0 / c.tau_mem) * v + current
        s = v > np.float32(c.threshold)  # strictly above, as NIR simulators do (Heaviside of v - threshold)
        v = np.where(s, np.float32(0.0), v)
        tr = np.float32(np.exp(-1.0 / c.tau_trace)) * tr + s
        return v, tr, s

    def step(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y, state, _ = self._step(x, state, count=False)
        return y, state

    def step_counted(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`step`, plus the synaptic operations each stream did: int64[B] (one per nonzero synapse
        of a spiking neuron or input channel)."""
        return self._step(x, state, count=True)

    def _step(self, x: np.ndarray, state: np.ndarray, *, count: bool):
        v, tr, s_prev, ref = self.split(state)
        u, ref = self._encode(x, ref)
        b = x.shape[0]
        current = np.empty((b, self.config.units), np.float32)
        ops = np.zeros(b, np.int64)
        for k in range(b):  # the rows of only the neurons and channels that spiked
            on_in, on = np.flatnonzero(u[k]), np.flatnonzero(s_prev[k])
            current[k] = (self._in_cols[on_in].sum(axis=0).astype(np.float32) * self.w_in_scale
                          + self._cols[on].sum(axis=0).astype(np.float32) * self.w_scale)
            if count:
                ops[k] = self._in_fanout[on_in].sum() + self._fanout[on].sum()
        v, tr, s = self._lif(v, tr, current)
        new = np.concatenate([v, tr, s.astype(np.float32), ref], axis=1)
        return self.readout(tr, x), new, ops

    def step_dense(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The same step as dense matrix products (what a GPU or a dense accelerator would run)."""
        v, tr, s_prev, ref = self.split(state)
        u, ref = self._encode(x, ref)
        current = ((u.astype(np.float32) @ self.w_in.T.astype(np.float32)) * self.w_in_scale
                   + (s_prev @ self.w.T.astype(np.float32)) * self.w_scale)
        v, tr, s = self._lif(v, tr, current)
        return self.readout(tr, x), np.concatenate([v, tr, s.astype(np.float32), ref], axis=1)

    def dense_macs(self) -> int:
        """Multiply-accumulates per step of the dense equivalent (input and recurrent products)."""
        n, d = self.config.units, self.config.input_size
        return n * 2 * d + n * n
