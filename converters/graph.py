"""The step graph of a model, written once against a small builder and emitted as ONNX or TFLite.

    inputs:  x float32[B, D], one state tensor per GRU layer (or the reservoir) float32[B, H]
    outputs: y_hat float32[B, D], the new state tensors float32[B, H]

The graph uses only fully-connected, add, sub, mul, logistic and tanh, and a cycle reservoir's
rotation (two strided slices and a concatenation): the op set the TFLite GPU delegate, TFLite Micro
and the Edge TPU all accept. A GRU's three gates are three separate
fully-connected ops rather than one split (SPLIT is not in that set), and a two-layer GRU keeps one
state tensor per layer instead of slicing one [B, 2H] tensor; `edge.targets.split_state` /
`join_state` map the runtime's [B, S] state onto them.
"""

from __future__ import annotations

from typing import Generic, Mapping, Protocol, TypeVar

import numpy as np

from edge.cell import RO_INPUT, RO_STATE
from edge.esn import FC_IN, FC_REC, KEEP, NEW, PREACT, RING, TANH, ring_weight
from edge.gru import N as GRU_N
from edge.quant import pinnable, range_scale
from edge.specs import ESNConfig, GRUConfig, ModelConfig
from edge.targets import INPUT, OUTPUT, state_names, state_widths

T = TypeVar("T")


class Builder(Protocol, Generic[T]):
    """What a format writer implements; T is its tensor handle."""

    def input(self, name: str, width: int) -> T: ...
    def output(self, t: T, name: str, width: int) -> None: ...
    def fc(self, x: T, w: np.ndarray, b: np.ndarray | None) -> T: ...  # x @ w.T + b, w: [O, I]
    def add(self, a: T, b: T) -> T: ...
    def sub(self, a: T, b: T) -> T: ...
    def mul(self, a: T, b: T) -> T: ...
    def scale(self, a: T, c: float) -> T: ...  # a * c
    def sigmoid(self, a: T) -> T: ...
    def tanh(self, a: T) -> T: ...
    def rotate(self, a: T) -> T: ...  # a rolled one place along its last axis: out[:, j] = a[:, j - 1]
    def label(self, t: T, name: str) -> T: ...  # name the tensor t (its int8 grid is pinned by name)


def build(config: ModelConfig, weights: Mapping[str, np.ndarray], g: Builder) -> None:
    """Emit the float32 step graph of `config` into `g`."""
    w = {k: np.asarray(v, np.float32) for k, v in weights.items()}
    x = g.input(INPUT, config.input_size)
    states = [g.input(n, width) for n, width in zip(state_names(config), state_widths(config))]
    top, new = (_gru if isinstance(config, GRUConfig) else _esn)(config, w, g, x, states)
    for name, s, width in zip(state_names(config), new, state_widths(config)):
        g.output(s, f"{name}_out", width)
    k = state_widths(config)[-1]
    r = w["readout.weight"]
    parts = g.label(g.fc(top, r[:, :k], w["readout.bias"]), RO_STATE), g.label(g.fc(x, r[:, k:], None), RO_INPUT)
    g.output(g.add(*parts), OUTPUT, config.input_size)


def int8_grids(art) -> dict[str, float]:
    """The int8 scale (zero point 0) an int8 target pins on each named tensor of the graph: x, y_hat
    and every state tensor on the artifact's ranges (taken over every training step; each state
    input and its output one scale, so the state is fed back without requantizing), and the tensors
    the int8 reference cell sets grids for (`grids()`), so the target rounds where it does."""
    r = art.activation_ranges
    out = {INPUT: range_scale(*r["input"]), OUTPUT: range_scale(*r["output"])}
    for n in state_names(art.config):
        out[n] = out[f"{n}_out"] = range_scale(*r["state"])
    # float32 values a quantizer can be pinned to exactly, as the int8 reference computes with them
    return {name: pinnable(s) for name, s in {**out, **art.cell("int8").grids()}.items()}


def _gru(c: GRUConfig, w: dict, g: Builder, x, states: list):
    # Same equations as edge.gru; per gate, the input- and hidden-side biases of r and z fold into one.
    inp, new = x, []
    for layer, h in enumerate(states):
        wi, wh = (np.split(w[f"weight_{s}_l{layer}"], 3) for s in ("ih", "hh"))
        bi, bh = (np.split(w[f"bias_{s}_l{layer}"], 3) for s in ("ih", "hh"))
        name = lambda t, part: g.label(t, f"{part}_l{layer}")  # noqa: E731  (edge.gru.PARTS)
        r = g.sigmoid(name(g.add(name(g.fc(inp, wi[0], bi[0] + bh[0]), "ir"), name(g.fc(h, wh[0], None), "hr")),
                           "r_pre"))
        z = g.sigmoid(name(g.add(name(g.fc(inp, wi[1], bi[1] + bh[1]), "iz"), name(g.fc(h, wh[1], None), "hz")),
                           "z_pre"))
        rhn = name(g.mul(r, name(g.fc(h, wh[2], bh[2]), "hn")), "rhn")
        n = name(g.tanh(name(g.add(name(g.fc(inp, wi[2], bi[2]), "in"), rhn), "n_pre")), GRU_N)
        inp = g.add(n, name(g.mul(z, name(g.sub(h, n), "hmn")), "zhmn"))
        new.append(inp)
    return inp, new


def _esn(c: ESNConfig, w: dict, g: Builder, x, states: list):
    (s,) = states
    ring = ring_weight(c, w["w"])  # a cycle: one multiply a unit instead of a units x units product
    rec = g.fc(s, w["w"], None) if ring is None else g.scale(g.label(g.rotate(s), RING), float(ring))
    pre = g.label(g.add(g.label(g.fc(x, w["w_in"], w["bias"]), FC_IN), g.label(rec, FC_REC)), PREACT)
    a = np.float32(c.leak)  # the reference computes 1 - a in float32 too
    th = g.label(g.tanh(pre), TANH)
    new = g.add(g.label(g.scale(s, float(np.float32(1.0) - a)), KEEP), g.label(g.scale(th, float(a)), NEW))
    return new, [new]
