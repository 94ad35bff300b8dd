"""Symmetric int8 quantization: per-output-channel weights, per-tensor activations.

Scheme (zero point 0 everywhere but on int8 LOGISTIC's fixed output grid, 1/256 with -128):
weights q = clip(rint(w / scale), -127, 127) with scales max|row| / 127 per output channel;
activations q = clip(rint(v / scale), -128, 127), the whole range of an int8 tensor with zero point
0 (as TFLite's int8 tensors hold it), with scales max(|lo|, |hi|) / 127 from ranges calibrated on
training data. The state input and output of a recurrent cell share one scale, so an int8 target
feeds its state back without requantizing.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

QMAX = 127
QMIN_ACT = -128  # activations: the whole int8 range
TANH_SCALE = 1.0 / 128  # the output grid of every int8 TFLite TANH (zero point 0)
LOGISTIC_SCALE, LOGISTIC_ZERO = 1.0 / 256, -128  # the output grid of every int8 TFLite LOGISTIC
ZERO_ROW_SCALE = 1.0 / QMAX  # an all-zero weight row's scale: that of a row whose largest weight is 1
HEADROOM = 1.0  # int8 range of the tensors that grow with the input, x the training range (trainer.quantize)


def quantize_per_channel(w: np.ndarray, splits: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """w: float32[O, I] -> (int8[O, I], scale float32[O]). An all-zero row (a pruned one) gets
    ZERO_ROW_SCALE, so an int32 bias on the grid input scale x weight scale holds its value finely.

    With `splits` (column indices), each block of columns is its own matrix, as in a graph that
    multiplies them in separate fully-connected ops: q holds the blocks side by side and scale is
    float32[O, blocks]."""
    if splits:
        blocks = [quantize_per_channel(b) for b in np.split(w, splits, axis=1)]
        return np.concatenate([q for q, _ in blocks], axis=1), np.stack([s for _, s in blocks], axis=1)
    amax = np.abs(w).max(axis=1)
    scale = np.where(amax > 0, amax / QMAX, ZERO_ROW_SCALE).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None]), -QMAX, QMAX).astype(np.int8)
    return q, scale


def range_scale(lo: float, hi: float) -> float:
    """The symmetric per-tensor scale covering [lo, hi]."""
    amax = max(abs(float(lo)), abs(float(hi)))
    return amax / QMAX if amax > 0 else 1.0


_BOUNDS = {np.dtype(t): (t(QMIN_ACT), t(QMAX)) for t in (np.float32, np.float64, np.int64)}


def saturate(a: np.ndarray) -> np.ndarray:
    """a, a fresh array of int8 grid values, clamped in place to [-128, 127]. On one stream's values
    by np.maximum and np.minimum, which skip np.clip's dispatch through Python (np.clip was a third
    of the int8 GRU step's time at B=1); on a batch by np.clip, whose loop is 6 times faster there."""
    lo, hi = _BOUNDS.get(a.dtype, (QMIN_ACT, QMAX))
    if a.size > 1024:
        return np.clip(a, lo, hi, out=a)
    return np.minimum(np.maximum(a, lo, out=a), hi, out=a)


def quantize(x: np.ndarray, scale: float) -> np.ndarray:
    """The int8 grid values of x as float32 integers (clipped to [-128, 127])."""
    return saturate(np.rint(x / np.float32(scale))).astype(np.float32, copy=False)


# The int8 ops below compute what an int8 TFLite kernel computes, bit for bit, from the same float32
# scales, in one of two arithmetics: "xnnpack", LiteRT's CPU path (float32 requantization, XNNPACK's
# fixed-point ADD), or "gemmlowp", TFLite Micro's reference kernels (31-bit multipliers with rounding
# shifts, TFLite's QuantizeMultiplier and MultiplyByQuantizedMultiplier). An int8 ESN's reference and
# its tflite-int8 target then step alike in either runtime. Values are int8 integers held in float
# arrays (exact), as `quantize` gives them.
ARITHMETICS = ("xnnpack", "gemmlowp")


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real = m 2^(shift - 31), m a 31-bit integer rounded half away
    from zero (from the double `real`)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    m = math.floor(q * (1 << 31) + 0.5)
    if m == 1 << 31:
        m, shift = m // 2, shift + 1
    return m, shift


# gemmlowp's fixed point (fixedpoint/fixedpoint.h) on int64 arrays holding int32 values; a value with
# k integer bits carries 31 - k fractional bits. Written out because no Python package exposes it.
_I32_MAX, _I32_MIN = (1 << 31) - 1, -(1 << 31)


def _srdhm(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul: the fixed-point product, the high 31 bits of 2ab rounded
    half away from zero."""
    ab = a * b
    v = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(v >= 0, v >> 31, -((-v) >> 31))  # C's division: towards zero
    return np.where((a == _I32_MIN) & (np.asarray(b) == _I32_MIN), _I32_MAX, high)


def _rounding_divide_by_pot(x: np.ndarray, e: np.ndarray | int) -> np.ndarray:
    """RoundingDivideByPOT: x / 2^e rounded half away from zero."""
    mask = (np.int64(1) << e) - 1
    return (x >> e) + ((x & mask) > (mask >> 1) + (x < 0))


def _saturating_rounding_multiply_by_pot(x: np.ndarray, e: int) -> np.ndarray:
    if e <= 0:
        return _rounding_divide_by_pot(x, -e)
    limit = (1 << (31 - e)) - 1
    return np.where(x > limit, _I32_MAX, np.where(x < -limit, _I32_MIN, x << e))


def multiply_by_quantized_multiplier(x: np.ndarray, m: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier (its default double rounding) on int64 arrays: x shifted
    left by a positive shift, gemmlowp's SaturatingRoundingDoublingHighMul by m (the product's high
    31 bits, rounded half away from zero), then RoundingDivideByPOT by a negative shift (rounding
    half away from zero). m and shift may be per-channel arrays (the last axis)."""
    m, shift = np.asarray(m, np.int64), np.asarray(shift, np.int64)
    return _rounding_divide_by_pot(_srdhm(x << np.maximum(shift, 0), m), np.maximum(-shift, 0))


def f32(scale: float) -> np.float32:
    """A scale as an int8 tensor stores it (float32): what every op below computes from."""
    return np.float32(scale)


def int8_range(scale: float) -> tuple[np.float32, np.float32] | None:
    """The float32 range [min, max] = [-128 scale, about 127 scale] from which a quantizer computing
    (max - min) / 255 in float32 (as ai-edge-quantizer turns a calibrated range into an int8 scale)
    gets `scale` exactly, with zero point 0; None where no such range exists (about 1 scale in 200:
    just above a power of two, max - min has too coarse a step)."""
    s = f32(scale)
    lo, hi = np.float32(-128) * s, np.float32(127) * s  # lo is exact
    for _ in range(4):
        got = (hi - lo) / np.float32(255)
        if got == s:
            return lo, hi
        hi = np.nextafter(hi, np.float32(np.inf if got < s else -np.inf))
    return None


def pinnable(scale: float) -> float:
    """The smallest float32 scale >= `scale` an int8 target can be pinned to exactly (`int8_range`)."""
    s = f32(scale)
    while int8_range(s) is None:
        s = np.nextafter(s, np.float32(np.inf))
    return float(s)


def _table_inputs(scale: float) -> np.ndarray:
    """Every int8 input's value on grid `scale`, q x scale in float32, as an activation kernel forms
    it to fill its 256-entry table."""
    return np.arange(QMIN_ACT, QMAX + 1, dtype=np.float32) * f32(scale)


TANH_TIE_ULPS = 4.0


def tanh_tie_distance(scale: float) -> float:
    """How close the int8 TANH table on input grid `scale` comes to a rounding tie: the least
    distance, in float32 ulps, between tanh(q x scale) for an int8 q (the product in float32, as the
    kernel forms it) and a value whose 128-fold lies half-way between two int8 outputs. A C library
    whose tanhf errs by less than this gives the kernel's table on that grid exactly."""
    t = np.tanh(_table_inputs(scale).astype(np.float64))
    tie = (np.floor(t * 128.0) + 0.5) / 128.0  # the nearest half-way point of each entry's 128-fold
    decides = (tie * 128.0 >= QMIN_ACT + 0.5) & (tie * 128.0 <= QMAX - 0.5)  # clamping decides the rest
    ulp = np.abs(np.spacing(tie.astype(np.float32))).astype(np.float64)
    return float((np.abs(t - tie) / ulp)[decides].min()) if decides.any() else math.inf


def tie_free(scale: float) -> float:
    """The smallest pinnable scale >= `scale` whose int8 TANH table stays TANH_TIE_ULPS float32 ulps
    from every rounding tie (`tanh_tie_distance`): LiteRT builds that table from the C library's
    tanhf, and at a scale where an entry sits on a tie (0.007268082, input -115: tanh x 128 = 87.5 in
    numpy's float32, 87.49999 in glibc), C libraries that round tanhf differently build different
    tables. About 1 pinnable scale in 300-600 moves, by a relative 6e-7 typically, 2e-5 at most."""
    s = pinnable(scale)
    while tanh_tie_distance(s) < TANH_TIE_ULPS:
        s = pinnable(float(np.nextafter(f32(s), np.float32(np.inf))))
    return s


def calibrated_grids(ranges: Mapping[str, tuple[float, float]], names: Iterable[str],
                     added_into: Mapping[str, str], tanh_inputs: Iterable[str] = ()) -> dict[str, float]:
    """The pinnable int8 grid of each calibrated tensor in `names`. A tensor whose range is empty
    (zero on every training step: a flat series' input times its weights) fits any grid; it takes
    that of the tensor it is added into (`added_into`), as its scale over that one must lie in
    [2^-10, 2^8) for XNNPACK to run the ADD: outside it, LiteRT runs its own kernel, whose rounding
    the reference does not write out. Any other empty range takes `range_scale`'s 1. A TANH's input
    (`tanh_inputs`) takes the next grid whose table no C library's tanhf can round otherwise
    (`tie_free`)."""
    grids: dict[str, float] = {}
    tanh_inputs = set(tanh_inputs)

    def grid(name: str) -> float:
        if name not in grids:
            lo, hi = ranges[name]
            empty = lo == 0.0 and hi == 0.0 and name in added_into
            grids[name] = grid(added_into[name]) if empty else pinnable(range_scale(lo, hi))
            if name in tanh_inputs:
                grids[name] = tie_free(grids[name])
        return grids[name]
    for name in names:
        grid(name)
    return grids


@dataclass(frozen=True)
class Int8FC:
    """An int8 fully-connected op (per-channel int8 weights) as TFLite's int8 kernels compute it: the
    int8 x int8 products and the int32 bias (b / (s_in s_w), rounded in float32 as ai-edge-quantizer
    rounds it) summed exactly, then requantized per channel by s_in s_w / s_out and clamped to int8.
    "xnnpack": the sum converted to float32, times that scale in float32, rounded half to even.
    "gemmlowp": the scale computed in double as a 31-bit multiplier and a shift
    (`multiply_by_quantized_multiplier`)."""

    q: np.ndarray            # [O, I] integer-valued, float32 where every sum is exact in it, else float64
    bias: np.ndarray | None  # [O] int32 values, q's dtype
    mult: np.ndarray         # float32[O] (xnnpack), or int64[2, O]: multipliers and shifts (gemmlowp)
    arithmetic: str = "xnnpack"

    @classmethod
    def build(cls, q: np.ndarray, w_scale: np.ndarray, in_scale: float, out_scale: float,
              bias: np.ndarray | None = None, arithmetic: str = "xnnpack") -> "Int8FC":
        s = f32(in_scale) * np.asarray(w_scale, np.float32)
        bq = None if bias is None else np.clip(np.rint(np.asarray(bias, np.float32) / s), -(2**31 - 1), 2**31 - 1)
        bound = q.shape[1] * QMAX * -QMIN_ACT + (0.0 if bq is None else float(np.abs(bq).max()))
        dtype = np.float32 if bound < 2**24 else np.float64
        if arithmetic == "gemmlowp":
            real = [float(f32(in_scale)) * float(sw) / float(f32(out_scale)) for sw in np.asarray(w_scale, np.float32)]
            mult = np.array([quantize_multiplier(r) for r in real], np.int64).T
        else:
            mult = s / f32(out_scale)
        return cls(np.ascontiguousarray(q, dtype), None if bq is None else bq.astype(dtype), mult, arithmetic)

    def __call__(self, xq: np.ndarray) -> np.ndarray:
        acc = xq.astype(self.q.dtype, copy=False) @ self.q.T
        if self.bias is not None:
            acc += self.bias
        if self.arithmetic == "gemmlowp":
            out = multiply_by_quantized_multiplier(acc.astype(np.int64), self.mult[0], self.mult[1])
            return saturate(out).astype(np.float32)
        return saturate(np.rint(acc.astype(np.float32, copy=False) * self.mult))


@dataclass(frozen=True)
class Int8Add:
    """An int8 ADD of a (scale s_a) and b (s_b) onto s_out as TFLite's int8 kernels compute it.
    "xnnpack" (XNNPACK's qs8 add): each input times a fixed-point multiplier round(s_x / s_out *
    2^shift) (the larger one of 21 bits), plus half of 2^shift, shifted right arithmetically (a
    floor) by shift. "gemmlowp" (TFLite Micro's reference ADD): each input shifted left by 20 and
    scaled by s_x / (2 max(s_a, s_b)), their sum by 2 max(s_a, s_b) / (2^20 s_out), each with
    `multiply_by_quantized_multiplier`. Then clamped to int8. Neither is exact rounding: a sum
    half-way between two steps rounds by which way the multipliers erred. With `subtract`, a - b
    (int8 SUB): each kernel scales b as for an ADD and subtracts it."""

    a_mult: float
    b_mult: float
    shift: int  # xnnpack: the right shift; gemmlowp: the inputs' left shift (20)
    gemmlowp: tuple[tuple[int, int], ...] = ()  # (multiplier, shift) of a, b and the sum; () for xnnpack
    b_sign: int = 1  # -1: a - b

    @classmethod
    def build(cls, a_scale: float, b_scale: float, out_scale: float, arithmetic: str = "xnnpack",
              subtract: bool = False) -> "Int8Add":
        sign = -1 if subtract else 1
        if arithmetic == "gemmlowp":
            twice = 2.0 * float(max(f32(a_scale), f32(b_scale)))
            return cls(0.0, 0.0, 20, (quantize_multiplier(float(f32(a_scale)) / twice),
                                      quantize_multiplier(float(f32(b_scale)) / twice),
                                      quantize_multiplier(twice / ((1 << 20) * float(f32(out_scale))))), sign)
        ra, rb = f32(a_scale) / f32(out_scale), f32(b_scale) / f32(out_scale)
        exponent = int(np.array(max(ra, rb), np.float32).view(np.uint32)) >> 23
        shift = 20 - (exponent - 127)
        mult = [float(np.rint(np.ldexp(r, shift).astype(np.float32))) for r in (ra, rb)]
        return cls(mult[0], mult[1], shift, (), sign)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.gemmlowp:
            (am, ash), (bm, bsh), (om, osh) = self.gemmlowp
            total = (multiply_by_quantized_multiplier(a.astype(np.int64) << self.shift, am, ash)
                     + self.b_sign * multiply_by_quantized_multiplier(b.astype(np.int64) << self.shift, bm, bsh))
            return saturate(multiply_by_quantized_multiplier(total, om, osh)).astype(np.float32)
        # float64 holds every term exactly (|a| <= 128, multipliers < 2^21), and scaling by 2^-shift is exact
        acc = (a.astype(np.float64) * self.a_mult + b.astype(np.float64) * (self.b_sign * self.b_mult)
               + 2.0 ** (self.shift - 1))
        return saturate(np.floor(acc * 2.0 ** -self.shift)).astype(np.float32)


@dataclass(frozen=True)
class Int8Mul:
    """An int8 MUL of a (scale s_a, zero point z_a: a LOGISTIC's output has -128) and b (s_b, zero
    point 0) onto s_out (zero point 0), as TFLite's int8 kernels compute it: the product (a - z_a) b
    exactly, then times s_a s_b / s_out. "xnnpack" (XNNPACK's qs8 multiply): that scale in float32
    ((s_a s_b) / s_out), the product converted to float32, multiplied, rounded half to even.
    "gemmlowp" (TFLite Micro's reference MUL): the scale in double as a 31-bit multiplier and a
    shift (`multiply_by_quantized_multiplier`). Then clamped to int8."""

    a_zero: int
    mult: float | tuple[int, int]  # xnnpack: the float32 scale; gemmlowp: (multiplier, shift)

    @classmethod
    def build(cls, a_scale: float, a_zero: int, b_scale: float, out_scale: float,
              arithmetic: str = "xnnpack") -> "Int8Mul":
        if arithmetic == "gemmlowp":
            return cls(a_zero, quantize_multiplier(float(f32(a_scale)) * float(f32(b_scale)) / float(f32(out_scale))))
        return cls(a_zero, float((f32(a_scale) * f32(b_scale)) / f32(out_scale)))

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        product = (a - np.float32(self.a_zero)) * b  # |product| <= 255 x 128: exact in float32
        if isinstance(self.mult, tuple):
            out = multiply_by_quantized_multiplier(product.astype(np.int64), *self.mult)
            return saturate(out).astype(np.float32)
        return saturate(np.rint(product * np.float32(self.mult)))


def int8_tanh_table(in_scale: float, arithmetic: str = "xnnpack") -> np.ndarray:
    """int8 TANH as a 256-entry table on int8 input + 128 (zero point 0, output grid 1/128), as the
    kernel computes it:
    - "xnnpack" (LiteRT on a CPU): XNNPACK's table, each input value's tanh by the C library's tanhf
      in float32, times 128, rounded half to even, clamped. The C library matters: at an input whose
      tanh x 128 lies on a half in float32 (scale 0.007268082, input -115), numpy's float32 tanh rounds
      to the other side of it than glibc's tanhf, and LiteRT follows glibc. A calibrated TANH input's
      grid avoids such scales (`tie_free`).
    - "gemmlowp" (TFLite Micro): its reference kernel, gemmlowp's fixed-point tanh
      (`_gemmlowp_activation_table`), which differs from the float table by one step on one or two inputs
      at about one input scale in 3,000.
    Both tested against the interpreters at 1,000 input scales (tests/test_converters.py)."""
    if arithmetic == "gemmlowp":
        return _gemmlowp_activation_table(in_scale, "tanh")
    x = _table_inputs(in_scale)
    return np.clip(np.rint(_tanhf(x) * np.float32(1.0 / TANH_SCALE)), QMIN_ACT, QMAX).astype(np.float32)


def int8_logistic_table(in_scale: float, arithmetic: str = "xnnpack") -> np.ndarray:
    """int8 LOGISTIC as a 256-entry table on int8 input + 128 (input zero point 0), onto its fixed
    grid (LOGISTIC_SCALE, zero point LOGISTIC_ZERO: the int8 values, the zero point included):
    - "xnnpack": XNNPACK's table, each input value's sigmoid computed in double, rounded to float32,
      times 256, rounded half to even. (In float32 from expf, as 1 / (1 + e^-x) or split at zero, it
      parts from LiteRT at about one input scale in 1,500.)
    - "gemmlowp": TFLite Micro's reference kernel, gemmlowp's fixed-point logistic
      (`_gemmlowp_activation_table`).
    Tested against the interpreters (tests/test_converters.py)."""
    if arithmetic == "gemmlowp":
        return _gemmlowp_activation_table(in_scale, "logistic")
    x = _table_inputs(in_scale)
    y = np.array([1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v)) for v in x.tolist()],
                 np.float32)
    return np.clip(np.rint(y * np.float32(1.0 / LOGISTIC_SCALE)) + LOGISTIC_ZERO, QMIN_ACT, QMAX).astype(np.float32)


@functools.cache
def _libm_tanhf():
    """The C library's tanhf, or None where ctypes cannot find the C maths library."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("m")
    try:
        f = ctypes.CDLL(name).tanhf if name else None
    except (OSError, AttributeError):
        return None
    if f is not None:
        f.restype, f.argtypes = ctypes.c_float, [ctypes.c_float]
    return f


def _tanhf(x: np.ndarray) -> np.ndarray:
    """tanh of float32 values by the C library's tanhf (numpy's float32 tanh where there is none)."""
    f = _libm_tanhf()
    if f is None:
        return np.tanh(x)
    return np.array([f(v) for v in x.tolist()], np.float32)


def _exp_on_negative_values(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """exp(a) for a <= 0 (a with `integer_bits`), with 0 integer bits: gemmlowp's
    exp_on_negative_values (a Taylor expansion on [-1/4, 0) and a barrel shifter of exp(-2^k))."""
    frac = 31 - integer_bits
    quarter = 1 << (frac - 2)
    mod_quarter = (a & (quarter - 1)) - quarter
    x = _saturating_rounding_multiply_by_pot(mod_quarter, integer_bits) + (1 << 28)  # + 1/8
    x2 = _srdhm(x, x)
    x3, x4 = _srdhm(x2, x), _srdhm(x2, x2)
    poly = _saturating_rounding_multiply_by_pot(
        _srdhm(_saturating_rounding_multiply_by_pot(x4, -2) + x3, 715827883) + x2, -1)  # 715827883: 1/3
    result = 1895147668 + _srdhm(np.int64(1895147668), x + poly)  # 1895147668: exp(-1/8)
    remainder = mod_quarter - a
    for exponent, multiplier in ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
                                 (2, 39332535), (3, 720401), (4, 242)):  # exp(-2^exponent)
        if integer_bits > exponent:
            result = np.where(remainder & (1 << (frac + exponent)), _srdhm(result, multiplier), result)
    return np.where(a == 0, _I32_MAX, result)  # (gemmlowp also clamps below -32 for more than 5 integer bits)


def _newton_raphson_reciprocal(half_denominator: np.ndarray) -> np.ndarray:
    """1 / (2 half_denominator) with 2 integer bits, half_denominator in [1/2, 1): gemmlowp's
    Newton-Raphson division (48/17 - 32/17 d, then three refinements)."""
    one = 1 << 29  # with 2 integer bits
    x = 1515870810 + _srdhm(half_denominator, -1010580540)
    for _ in range(3):
        x = x + _saturating_rounding_multiply_by_pot(_srdhm(x, one - _srdhm(half_denominator, x)), 2)
    return x


def _gemmlowp_activation_table(in_scale: float, kind: str) -> np.ndarray:
    """TFLite Micro's int8 TANH or LOGISTIC (reference_integer_ops::Tanh or Logistic, with its
    kernel's Prepare), input zero point 0, for every int8 input: the input rescaled to 4 integer bits
    by a 31-bit multiplier (inputs beyond the radius saturate), then gemmlowp's fixed point on -|a|:
    tanh = -(1 - e^(2a)) / (1 + e^(2a)) onto 1/128; logistic = e^a / (1 + e^a) (one minus it for a
    > 0) onto 1/256 with zero point -128."""
    q, left_shift = math.frexp(float(f32(in_scale)) * (1 << 27))
    multiplier = math.floor(q * (1 << 31) + 0.5)  # TfLiteRound; below 2^31, as a float32 scale has 24 bits
    radius = math.floor(15.0 * (1 << 27) / 2.0 ** left_shift)
    x = np.arange(QMIN_ACT, QMAX + 1, dtype=np.int64)
    a = multiply_by_quantized_multiplier(np.clip(x, 1 - radius, radius - 1), multiplier, left_shift)
    positive = a > 0
    if kind == "tanh":
        e = _exp_on_negative_values(np.where(positive, -a, a), 5)  # e^(2a): 2a has 5 integer bits
        t = _saturating_rounding_multiply_by_pot(_newton_raphson_reciprocal((e + _I32_MAX + 1) >> 1) - (1 << 29), 2)
        t = np.where(a == 0, 0, np.where(positive, t, -t))  # (1 - e) / (1 + e) = 2 / (1 + e) - 1
        out = _rounding_divide_by_pot(t, 31 - 7)
    else:
        e = _exp_on_negative_values(np.where(positive, -a, a), 4)
        t = _saturating_rounding_multiply_by_pot(_newton_raphson_reciprocal((e + _I32_MAX + 1) >> 1), 1)
        t = np.where(a == 0, 1 << 30, np.where(positive, t, _I32_MAX - t))  # 1 / (1 + e^-|a|) for a > 0
        out = _rounding_divide_by_pot(t, 31 - 8) + LOGISTIC_ZERO
    out = np.clip(out, QMIN_ACT, QMAX)
    return np.where(x <= -radius, QMIN_ACT, np.where(x >= radius, QMAX, out)).astype(np.float32)
