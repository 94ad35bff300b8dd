"""Symmetric int8 quantization: per-output-channel weights, per-tensor activations.

Scheme (zero point 0 everywhere): weights q = clip(rint(w / scale), -127, 127) with scales
max|row| / 127 per output channel; activations q = clip(rint(v / scale), -128, 127), the whole
range of an int8 tensor with zero point 0 (as TFLite's int8 tensors hold it), with scales
max(|lo|, |hi|) / 127 from ranges calibrated on training data. The state input and output of a
recurrent cell share one scale, so an int8 target feeds its state back without requantizing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QMAX = 127
QMIN_ACT = -128  # activations: the whole int8 range
TANH_SCALE = 1.0 / 128  # the output grid of every int8 TFLite TANH (zero point 0)
# float32 represents every integer below 2**24 exactly, so an int8 x int8 dot product of length K
# accumulates exactly in float32 (fast BLAS) while K * 127 * 127 < 2**24.
_EXACT_F32_K = (1 << 24) // (QMAX * QMAX)


def quantize_per_channel(w: np.ndarray, splits: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """w: float32[O, I] -> (int8[O, I], scale float32[O]). An all-zero row gets scale 1.

    With `splits` (column indices), each block of columns is its own matrix, as in a graph that
    multiplies them in separate fully-connected ops: q holds the blocks side by side and scale is
    float32[O, blocks]."""
    if splits:
        blocks = [quantize_per_channel(b) for b in np.split(w, splits, axis=1)]
        return np.concatenate([q for q, _ in blocks], axis=1), np.stack([s for _, s in blocks], axis=1)
    amax = np.abs(w).max(axis=1)
    scale = np.where(amax > 0, amax / QMAX, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None]), -QMAX, QMAX).astype(np.int8)
    return q, scale


def range_scale(lo: float, hi: float) -> float:
    """The symmetric per-tensor scale covering [lo, hi]."""
    amax = max(abs(float(lo)), abs(float(hi)))
    return amax / QMAX if amax > 0 else 1.0


def quantize(x: np.ndarray, scale: float) -> np.ndarray:
    """The int8 grid values of x as float32 integers (clipped to [-128, 127])."""
    return np.clip(np.rint(x / np.float32(scale)), QMIN_ACT, QMAX).astype(np.float32)


def requantize(x: np.ndarray, scale: float) -> np.ndarray:
    """Round x onto the int8 grid of `scale` and return it in real units (what an int8 tensor holds)."""
    return quantize(x, scale) * np.float32(scale)


@dataclass(frozen=True)
class QLinear:
    """y = (q(x) @ Wq.T) * (in_scale * w_scale): an int8 x int8 -> int32 matmul, requantized per channel.

    Weights are held as integer-valued float32 (float64 when the dot product is too long to
    accumulate exactly in float32), so the product equals the int32 accumulation bit for bit.
    """

    q: np.ndarray        # [O, I] integer-valued
    w_scale: np.ndarray  # float32[O]
    in_scale: float

    @classmethod
    def build(cls, q: np.ndarray, w_scale: np.ndarray, in_scale: float) -> "QLinear":
        dtype = np.float32 if q.shape[1] <= _EXACT_F32_K else np.float64
        return cls(np.ascontiguousarray(q, dtype=dtype), np.asarray(w_scale, np.float32), float(in_scale))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        acc = quantize(x, self.in_scale).astype(self.q.dtype, copy=False) @ self.q.T
        return (acc * (self.w_scale * np.float32(self.in_scale))).astype(np.float32, copy=False)
