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

from .cell import RO_INPUT, RO_STATE, ConfigShapes, Int8Readout, Readout, sigmoid
from .errors import ConfigError
from .quant import (ARITHMETICS, LOGISTIC_SCALE, LOGISTIC_ZERO, TANH_SCALE, Int8Add, Int8FC, Int8Mul,
                    calibrated_grids, f32, int8_logistic_table, int8_tanh_table, quantize)
from .specs import GRUConfig

# the names the step graph gives each layer's tensors (converters.graph), with the layer's suffix
# "_l{layer}": per gate the input side's fully-connected part (W_i x + b; r's and z's carry both
# sides' biases) and the hidden side's (W_h h; + b_hn for n), r's and z's pre-activations,
# r * (W_hn h + b_hn), n's pre-activation, h - n and z * (h - n), whose int8 grids GRUInt8Cell sets
# from calibrated ranges; and n, on int8 TANH's fixed grid. (r and z lie on int8 LOGISTIC's fixed
# grid, 1/256 with zero point -128.)
PARTS = ("ir", "hr", "r_pre", "iz", "hz", "z_pre", "in", "hn", "rhn", "n_pre", "hmn", "zhmn")
N = "n"
_ADDED_INTO = {"ir": "r_pre", "hr": "r_pre", "iz": "z_pre", "hz": "z_pre", "in": "n_pre", "rhn": "n_pre"}


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
    """Tensors whose ranges int8 needs: input, state, output, each layer's PARTS and the readout's."""
    return ["input", "state", "output", *(f"{p}_l{layer}" for layer in range(c.layers) for p in PARTS),
            RO_STATE, RO_INPUT]


def _layer(gi: np.ndarray, gh: np.ndarray, b_hh: np.ndarray, h: np.ndarray, taps: dict | None, layer: int
           ) -> np.ndarray:
    """One layer's update from gi = W_ih x + b_ih and gh = W_hh h (no bias), in the step graph's order."""
    hidden = h.shape[1]
    i_r, i_z, i_n = np.split(gi, 3, axis=1)
    h_r, h_z, h_n = np.split(gh, 3, axis=1)
    ir, iz, hn = i_r + b_hh[:hidden], i_z + b_hh[hidden:2 * hidden], h_n + b_hh[2 * hidden:]
    r_pre, z_pre = ir + h_r, iz + h_z
    rhn = sigmoid(r_pre) * hn
    n_pre = i_n + rhn
    n = np.tanh(n_pre)
    hmn = h - n
    zhmn = sigmoid(z_pre) * hmn
    if taps is not None:
        values = (ir, h_r, r_pre, iz, h_z, z_pre, i_n, hn, rhn, n_pre, hmn, zhmn)
        taps.update({f"{p}_l{layer}": v for p, v in zip(PARTS, values)})
    return n + zhmn


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
        """`taps`, when given, receives the tensors whose ranges int8 needs (`activation_names`)."""
        hidden = self.config.hidden
        new = np.empty_like(state)
        inp = x
        for layer in range(self.config.layers):
            h = state[:, layer * hidden:(layer + 1) * hidden]
            gi = inp @ self.w_ih[layer].T + self.b_ih[layer]
            inp = new[:, layer * hidden:(layer + 1) * hidden] = _layer(gi, h @ self.w_hh[layer].T, self.b_hh[layer],
                                                                        h, taps, layer)
        if taps is None:
            return self.readout(inp, x), new
        taps[RO_STATE], taps[RO_INPUT] = parts = self.readout.parts(inp, x)
        return parts[0] + parts[1], new


@dataclass(frozen=True)
class Int8GRULayer:
    """One layer of the int8 step, op by op as the step graph has it (`edge.quant`'s int8 ops)."""

    ir: Int8FC
    hr: Int8FC
    r_pre: Int8Add
    r: np.ndarray  # int8 LOGISTIC of every int8 pre-activation (+ 128)
    iz: Int8FC
    hz: Int8FC
    z_pre: Int8Add
    z: np.ndarray
    in_: Int8FC
    hn: Int8FC
    rhn: Int8Mul
    n_pre: Int8Add
    n: np.ndarray  # int8 TANH
    hmn: Int8Add  # subtract
    zhmn: Int8Mul
    update: Int8Add

    @classmethod
    def build(cls, w: Mapping[str, np.ndarray], layer: int, s: Mapping[str, float], s_in: float,
              arithmetic: str) -> "Int8GRULayer":
        """`s`: this layer's grids by PARTS name and N, and "state"; s_in: its input's grid."""
        wi, wh = w[f"weight_ih_l{layer}.q"], w[f"weight_hh_l{layer}.q"]
        si, sh = w[f"weight_ih_l{layer}.scale"], w[f"weight_hh_l{layer}.scale"]
        bi, bh = (np.split(np.asarray(w[f"bias_{side}_l{layer}"], np.float32), 3) for side in ("ih", "hh"))
        g = np.split(np.arange(len(si)), 3)  # the rows of r, z and n
        state = s["state"]

        def fc(gate, part, bias=None):
            (q, scale, grid) = (wi, si, s_in) if part[0] == "i" else (wh, sh, state)
            return Int8FC.build(q[g[gate]], scale[g[gate]], grid, s[part], bias, arithmetic)

        add = lambda a, b, out, sub=False: Int8Add.build(a, b, out, arithmetic, sub)  # noqa: E731
        mul = lambda b, out: Int8Mul.build(LOGISTIC_SCALE, LOGISTIC_ZERO, b, out, arithmetic)  # noqa: E731
        return cls(fc(0, "ir", bi[0] + bh[0]), fc(0, "hr"), add(s["ir"], s["hr"], s["r_pre"]),
                   int8_logistic_table(s["r_pre"], arithmetic),
                   fc(1, "iz", bi[1] + bh[1]), fc(1, "hz"), add(s["iz"], s["hz"], s["z_pre"]),
                   int8_logistic_table(s["z_pre"], arithmetic),
                   fc(2, "in", bi[2]), fc(2, "hn", bh[2]), mul(s["hn"], s["rhn"]), add(s["in"], s["rhn"], s["n_pre"]),
                   int8_tanh_table(s["n_pre"], arithmetic),
                   add(state, s[N], s["hmn"], True), mul(s["hmn"], s["zhmn"]), add(s[N], s["zhmn"], state))

    def __call__(self, xq: np.ndarray, hq: np.ndarray) -> np.ndarray:
        table = lambda t, v: t[(v + 128.0).astype(np.intp)]  # noqa: E731
        r = table(self.r, self.r_pre(self.ir(xq), self.hr(hq)))
        z = table(self.z, self.z_pre(self.iz(xq), self.hz(hq)))
        n = table(self.n, self.n_pre(self.in_(xq), self.rhn(r, self.hn(hq))))
        return self.update(n, self.zhmn(z, self.hmn(hq, n)))


@dataclass(frozen=True)
class GRUInt8Cell(ConfigShapes):
    """The int8 step as its tflite-int8 target computes it, bit for bit, on LiteRT's CPU path
    (arithmetic "xnnpack") or in TFLite Micro ("gemmlowp"): per layer, the six fully-connected ops
    (three gates, two sides), the ADDs of r's, z's and n's pre-activations, r * (W_hn h + b_hn) and
    z * (h - n) as int8 MULs of a LOGISTIC's output (zero point -128), h - n as an int8 SUB, and the new
    state n + z * (h - n) as an ADD onto the state's grid; LOGISTIC and TANH from tables; then the
    readout (`edge.cell.Int8Readout`). Every other tensor lies on a grid calibrated on the training
    run (`grids`), zero point 0, which the int8 targets are pinned to."""

    config: GRUConfig
    scales: dict[str, float]  # "input", "state", "output" and the named tensors of the step graph
    layers: tuple[Int8GRULayer, ...]
    readout: Int8Readout

    @classmethod
    def from_weights(cls, config: GRUConfig, w: Mapping[str, np.ndarray],
                     ranges: Mapping[str, tuple[float, float]], arithmetic: str = "xnnpack") -> "GRUInt8Cell":
        """`arithmetic`: "xnnpack" (LiteRT on a CPU) or "gemmlowp" (TFLite Micro), see `edge.quant`."""
        if arithmetic not in ARITHMETICS:
            raise ConfigError(f"int8 arithmetic {arithmetic!r}: choose one of {', '.join(ARITHMETICS)}")
        into = {RO_STATE: "output", RO_INPUT: "output"}  # what each calibrated tensor is added into
        for layer in range(config.layers):
            into.update({f"{p}_l{layer}": f"{q}_l{layer}" for p, q in _ADDED_INTO.items()})
            into[f"zhmn_l{layer}"] = "state"
        s = calibrated_grids(ranges, activation_names(config), into,
                             tanh_inputs=[f"n_pre_l{layer}" for layer in range(config.layers)])
        layers = []
        for layer in range(config.layers):
            s[f"{N}_l{layer}"] = TANH_SCALE
            own = {p: s[f"{p}_l{layer}"] for p in (*PARTS, N)}
            layers.append(Int8GRULayer.build(w, layer, {**own, "state": s["state"]},
                                             s["input"] if layer == 0 else s["state"], arithmetic))
        readout = Int8Readout.build(w["readout.weight.q"], w["readout.weight.scale"], w["readout.bias"], s, arithmetic)
        return cls(config, s, tuple(layers), readout)

    def grids(self) -> dict[str, float]:
        """The int8 scale of each named tensor of the step graph (float32 values)."""
        return {name: scale for name, scale in self.scales.items() if name not in ("input", "state", "output")}

    def step(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hidden, s = self.config.hidden, self.scales
        xq, sq = quantize(x, s["input"]), quantize(state, s["state"])
        new, inp = np.empty_like(sq), xq
        for layer, cell in enumerate(self.layers):
            inp = new[:, layer * hidden:(layer + 1) * hidden] = cell(inp, sq[:, layer * hidden:(layer + 1) * hidden])
        return self.readout(inp, xq) * f32(s["output"]), new * f32(s["state"])
