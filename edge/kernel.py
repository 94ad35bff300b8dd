"""`Detector.step_row` without the model step, compiled by numba when it is installed
(`pip install 'rnnedge[fast]'`): one stream's normalisation, distance, calibrated score, value
range, adaptive score and alert machine in one native call of about 1 us, instead of about 6 us of
Python float arithmetic. That matters at one stream, where the per-sample cost outside the
interpreter bounds the rate (the README's runtime table).

The arithmetic is `Detector.step_row`'s, operation for operation (float32 normalisation, float64
scoring, channels summed in order), so both equal the batched `Detector.step` to the last bit of
exp/log1p (tested with and without numba). Without numba, or with RNNEDGE_JIT=0 in the environment,
`compiled()` is None and the detector runs the Python floats path.

numba is a compiler, not a pure-Python package, so it stays optional: ~50 MB, and wheels for
x86_64 and aarch64 but not 32-bit ARM. The first call in a process compiles (about 2 s) unless the
on-disk cache (numba's `cache=True`) holds the machine code already.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .alerts import CLEARED, NONE, RAISED

# params, float64: the scalars of scorer, adaptive score and alert machine, in this order
PARAMS = ("warmup", "tail_beta", "novelty_margin", "min_std", "adaptive_warmup", "squash", "horizon",
          "novelty", "novelty_refractory", "decay", "cap", "threshold", "clear_threshold", "raise_after",
          "clear_after", "cooldown", "on_adaptive")
_NEG_INV_LN10 = float(-1.0 / np.log(10.0))


def row_step(i, x, norm, standard, knots, p, forecast, seen, adapt, active, above, below, cooldown, extent,
             z_out, out):
    """Stream i (rows of the state arrays), raw values x float32[D], with the detector's constants
    norm float32[2, D] (mean, std), standard float64[2, D] (the scorer's center, scale), knots
    float64[2, K] (distances, CDF values) and p float64[len(PARAMS)]. Updates the stream's scoring
    state in place (seen, adapt, the alert counters, extent), writes the normalised sample to z_out
    float32[1, D] and (score, distance, adaptive, first, the squared standardised residuals...) to
    out float64[4 + D]; returns the alert event. The model state and forecast are the caller's.
    (Few, packed arguments: each costs numba's dispatcher about 70 ns.)"""
    d_ch = x.shape[0]
    knots_d, knots_p = knots[0], knots[1]
    total = 0.0
    for c in range(d_ch):
        zc = (x[c] - norm[0, c]) / norm[1, c]  # float32, as Normalizer.normalize
        z_out[0, c] = zc
        e = np.float64(zc - forecast[i, c])
        s = (e - standard[0, c]) / standard[1, c]
        out[4 + c] = s * s
        total = out[4 + c] if c == 0 else total + out[4 + c]
    dist = math.sqrt(total / d_ch)
    live = seen[i] > p[0]
    kd_tail, kp_tail, beta = knots_d[-1], knots_p[-1], p[1]
    score = 0.0
    if live:
        if dist > kd_tail:
            score = 1.0 - (1.0 - kp_tail) * math.exp(-(dist - kd_tail) / beta)
        else:
            j = np.searchsorted(knots_d, dist, side="right") - 1  # np.interp's rule
            if j < 0:
                score = knots_p[0]
            elif j == len(knots_d) - 1 or knots_d[j] == dist:
                score = knots_p[j]
            else:
                score = (knots_p[j + 1] - knots_p[j]) / (knots_d[j + 1] - knots_d[j]) * (dist - knots_d[j]) + knots_p[j]
    novel = False
    outside = False
    for c in range(d_ch):
        if x[c] < extent[i, 0, c] or x[c] > extent[i, 1, c]:
            outside = True
    if outside:
        for c in range(d_ch):
            lo, hi, v = np.float64(extent[i, 0, c]), np.float64(extent[i, 1, c]), np.float64(x[c])
            g = p[2] * (hi - lo) if math.isfinite(hi - lo) else 0.0
            if v < lo - g or v > hi + g:
                novel = True
        for c in range(d_ch):
            extent[i, 0, c] = min(extent[i, 0, c], x[c])
            extent[i, 1, c] = max(extent[i, 1, c], x[c])
    adaptive = first = 0.0
    if live:
        if dist > kd_tail:
            surprise = math.log1p(-kp_tail) - (dist - kd_tail) / beta
        else:
            surprise = math.log1p(-min(score, kp_tail))
        m, v, n, peak, last = adapt[i, 0], adapt[i, 1], adapt[i, 2], adapt[i, 3], adapt[i, 4]
        r = min(surprise * _NEG_INV_LN10, p[10])
        dev = r - m
        z = dev / max(math.sqrt(v), p[3]) if n >= p[4] else 0.0
        z = max(z, 0.0)
        adaptive = z / (z + p[5])
        if novel and p[7] != 0.0:
            if n - last > p[8]:
                adaptive = max(adaptive, p[7])
            last = n
        first = adaptive if adaptive > peak else 0.01 * adaptive
        a = max(1.0 / p[6], 1.0 / (n + 1.0))
        adapt[i, 0] = m + a * dev
        adapt[i, 1] = (1.0 - a) * (v + a * dev * dev)
        adapt[i, 2] = n + 1.0
        adapt[i, 3] = max(peak * p[9] if peak > 0 else peak, adaptive)
        adapt[i, 4] = last
    watched = adaptive if p[16] != 0.0 else score
    event = NONE
    hot = watched >= p[11]
    is_active = active[i]
    if not hot and not is_active:
        if above[i] != 0 or below[i] != 0 or cooldown[i] != 0:
            above[i] = 0
            below[i] = 0
            cooldown[i] = max(cooldown[i] - 1, 0)
    elif is_active:
        below[i] = below[i] + 1 if watched < p[12] else 0
        above[i] = 0
        if below[i] >= p[14]:
            active[i] = False
            below[i] = 0
            cooldown[i] = int(p[15])
            event = CLEARED
    else:
        above[i] = above[i] + 1 if hot else 0
        below[i] = 0
        cooldown[i] = max(cooldown[i] - 1, 0)
        if above[i] >= p[13] and cooldown[i] == 0:
            active[i] = True
            above[i] = 0
            event = RAISED
    seen[i] += 1
    out[0], out[1], out[2], out[3] = score, dist, adaptive, first
    return event


_compiled = None


def compiled():
    """`row_step` compiled by numba, or None (numba missing, or RNNEDGE_JIT=0)."""
    global _compiled
    if _compiled is None:
        _compiled = False
        if os.environ.get("RNNEDGE_JIT", "1") != "0":
            try:
                import numba
            except ImportError:
                pass
            else:
                _compiled = numba.njit(cache=True, nogil=True)(row_step)
    return _compiled or None
