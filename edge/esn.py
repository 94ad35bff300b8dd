"""The numpy reference echo-state network: a fixed random reservoir and a trained linear readout.

    s' = (1 - a) s + a tanh(W_in x + W s + b)        y_hat = W_out [s'; x] + b_out

A cycle reservoir's W s is r times s rotated one place (`ring_weight`): the cells and the step
graph compute it so, one multiply a unit where a matrix product takes `units` of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .cell import RO_INPUT, RO_STATE, ConfigShapes, Int8Readout, Readout
from .errors import ArtifactError, ConfigError
from .quant import (ARITHMETICS, TANH_SCALE, Int8Add, Int8FC, calibrated_grids, f32, int8_tanh_table, pinnable,
                    quantize)
from .specs import ESNConfig

# the names the step graph gives the tensors whose int8 grids ESNInt8Cell sets (converters.graph):
# the pre-activation's two fully-connected parts W_in x + b and W s, the pre-activation, its tanh,
# the leaky update's two terms (1 - a) s and a tanh (and the readout's parts, `edge.cell`); a cycle's
# rotated state
FC_IN, FC_REC, PREACT, TANH, KEEP, NEW = "fc_in", "fc_rec", "preact", "tanh", "keep", "new"
RING = "ring"  # a cycle's rotated state, on the state's grid
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
    if c.topology == "cycle":
        w_in = rng.choice((-1.0, 1.0), (c.units, c.input_size)) * c.input_scaling
        w = _ring(c.units, c.spectral_radius)
    else:
        w_in = rng.uniform(-1.0, 1.0, (c.units, c.input_size)) * c.input_scaling
        w = rng.uniform(-1.0, 1.0, (c.units, c.units)) * (rng.random((c.units, c.units)) < c.density)
        radius = float(np.max(np.abs(np.linalg.eigvals(w))))
        if radius == 0.0:
            raise ConfigError(f"ESNConfig: a reservoir of {c.units} units at density {c.density} drew no "
                              "recurrent cycle (spectral radius 0); raise density or units")
        w *= c.spectral_radius / radius
    bias = rng.uniform(-1.0, 1.0, c.units) * c.bias_scaling
    return {"w_in": w_in.astype(np.float32), "w": w.astype(np.float32), "bias": bias.astype(np.float32)}


def _ring(n: int, r: float) -> np.ndarray:
    """W of a cycle of n units: unit i feeds unit i + 1 (the last the first) with the weight r."""
    w = np.zeros((n, n), np.float32)
    w[(np.arange(n) + 1) % n, np.arange(n)] = r
    return w


def ring_weight(config: ESNConfig, w: np.ndarray) -> np.float32 | None:
    """A cycle reservoir's one recurrent weight r (W s = r x s rotated one place), None for a random
    reservoir. A cycle whose W is not that ring (an edited weights file) is refused: its targets
    step the ring, not the matrix."""
    if config.topology != "cycle":
        return None
    r = np.float32(w[1, 0])
    off = int(np.count_nonzero(w != _ring(w.shape[0], r)))
    if r == 0 or off:
        raise ArtifactError(f"a cycle reservoir's recurrent weights must be one ring (unit i feeds unit i + 1 with "
                            f"one nonzero weight); {off} of these differ from the ring of weight {r}")
    return r


def rotate(state: np.ndarray) -> np.ndarray:
    """The state rotated one place along its last axis, out[j] = state[j - 1]: the ring's shift."""
    return np.concatenate((state[..., -1:], state[..., :-1]), axis=-1)  # a third of np.roll's time at B=1


@dataclass(frozen=True)
class ESNCell(ConfigShapes):
    """float32 reference step."""

    config: ESNConfig
    w_in: np.ndarray
    w: np.ndarray
    bias: np.ndarray
    readout: Readout
    ring: np.float32 | None = None  # `ring_weight`: W s is ring x rotate(s)

    @classmethod
    def from_weights(cls, config: ESNConfig, w: Mapping[str, np.ndarray]) -> "ESNCell":
        f = lambda name: np.ascontiguousarray(w[name], np.float32)  # noqa: E731
        rec = f("w")
        return cls(config, f("w_in"), rec, f("bias"), Readout(f("readout.weight"), f("readout.bias")),
                   ring_weight(config, rec))

    def reservoir_step(self, x: np.ndarray, state: np.ndarray, taps: dict | None = None) -> np.ndarray:
        a = np.float32(self.config.leak)
        fc_rec = state @ self.w.T if self.ring is None else self.ring * rotate(state)
        fc_in = x @ self.w_in.T + self.bias
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
    """The int8 step as its tflite-int8 target computes it, bit for bit, on LiteRT's CPU path
    (arithmetic "xnnpack") or in TFLite Micro ("gemmlowp"): the four fully-connected ops (W_in x + b
    and W s, the readout's W_s s + b and W_x x), each onto its calibrated grid (a cycle's W s: the
    state rotated, times r onto a grid on which the product is exact), and the three ADDs of
    the step graph (`edge.quant.Int8FC`, `Int8Add`), tanh onto int8 TANH's fixed grid (1/128, as
    every int8 TFLite and TFLite Micro kernel gives it) from a table. The leaky update's two terms
    (1 - a) s and a tanh lie on grids on which they are exact (`grids`), so their int8 values are
    those of s and tanh, and the update is the ADD of the two onto the state's grid. `grids` gives
    the int8 targets every grid, so a target pinned to them rounds where this cell does."""

    config: ESNConfig
    scales: dict[str, float]  # "input", "state", "output" and the named tensors of the step graph
    fc_in: Int8FC
    fc_rec: Int8FC | None  # None: a cycle, W s = r rotate(s), whose int8 values are those of rotate(s)
    preact: Int8Add
    tanh: np.ndarray  # int8 TANH of every int8 pre-activation (+ 128)
    update: Int8Add
    readout: Int8Readout

    @classmethod
    def from_weights(cls, config: ESNConfig, w: Mapping[str, np.ndarray],
                     ranges: Mapping[str, tuple[float, float]], arithmetic: str = "xnnpack") -> "ESNInt8Cell":
        """`arithmetic`: "xnnpack" (LiteRT on a CPU) or "gemmlowp" (TFLite Micro), see `edge.quant`."""
        if arithmetic not in ARITHMETICS:
            raise ConfigError(f"int8 arithmetic {arithmetic!r}: choose one of {', '.join(ARITHMETICS)}")
        s = calibrated_grids(ranges, ("input", "state", "output", PREACT, *PARTS),
                             {FC_IN: PREACT, FC_REC: PREACT, RO_STATE: "output", RO_INPUT: "output"},
                             tanh_inputs=(PREACT,))
        a = np.float32(config.leak)
        s[TANH], s[KEEP], s[NEW] = TANH_SCALE, pinnable((1.0 - a) * s["state"]), pinnable(a * TANH_SCALE)
        ring = ring_weight(config, np.asarray(w["w"], np.float32))
        if ring is not None:  # as KEEP: r x rotate(s) on the grid r x the state's is rotate(s)'s int8 values
            s[FC_REC] = pinnable(ring * s["state"])
        fc = lambda q, scale, s_in, s_out, b=None: Int8FC.build(q, scale, s_in, s_out, b, arithmetic)  # noqa: E731
        add = lambda s_a, s_b, s_out: Int8Add.build(s_a, s_b, s_out, arithmetic)  # noqa: E731
        return cls(config, s,
                   fc(w["w_in.q"], w["w_in.scale"], s["input"], s[FC_IN], w["bias"]),
                   None if ring is not None else fc(w["w.q"], w["w.scale"], s["state"], s[FC_REC]),
                   add(s[FC_IN], s[FC_REC], s[PREACT]),
                   int8_tanh_table(s[PREACT], arithmetic),
                   add(s[KEEP], s[NEW], s["state"]),
                   Int8Readout.build(w["readout.weight.q"], w["readout.weight.scale"], w["readout.bias"], s,
                                     arithmetic))

    def grids(self) -> dict[str, float]:
        """The int8 scale of each named tensor of the step graph (float32 values)."""
        ring = {} if self.fc_rec is not None else {RING: self.scales["state"]}
        return {**ring, **{name: self.scales[name] for name in (FC_IN, FC_REC, PREACT, TANH, KEEP, NEW, RO_STATE,
                                                                  RO_INPUT)}}

    def step(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = self.scales
        xq, sq = quantize(x, s["input"]), quantize(state, s["state"])
        pre = self.preact(self.fc_in(xq), rotate(sq) if self.fc_rec is None else self.fc_rec(sq))
        sq = self.update(sq, self.tanh[(pre + 128.0).astype(np.intp)])
        yq = self.readout(sq, xq)
        return yq * f32(s["output"]), sq * f32(s["state"])
