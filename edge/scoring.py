"""From forecast residuals to a calibrated anomaly score in [0, 1].

residual e = x_t - y_hat_{t-1} (normalised units, float32[B, D])
  -> standardised residuals u_i = (e_i - center_i) / scale_i
  -> distance d = sqrt(mean_i u_i^2), their RMS (norm "rms", the default), or max_i |u_i| (norm
     "max": a fault in one of D channels counts its whole size instead of 1/sqrt(D) of it)
  -> score = F(d), the distribution function of d on normal (training) data: the empirical CDF up
     to a tail quantile, an exponential tail fitted to the exceedances beyond it.

Because the score is a calibrated probability, the threshold for a target per-sample false-alarm
rate r is simply 1 - r; the exponential tail keeps scores distinguishable far beyond anything seen
in calibration (0.999 vs 0.999999) instead of saturating at 1.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from .errors import ArtifactError, ConfigError
from .validation import check_choice, check_float, check_int

_KNOTS = 64
NORMS = ("rms", "max")


def shares(z2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared standardised residuals float64[B, D] -> (their row sums, with the channels added in
    order as the one-stream paths add them; each channel's share of the sum)."""
    total = z2[:, 0].copy()
    for c in range(1, z2.shape[1]):
        total += z2[:, c]
    return total, z2 / np.maximum(total, 1e-300)[:, None]


@dataclass(frozen=True)
class Scorer:
    center: np.ndarray   # float32[D]
    scale: np.ndarray    # float32[D]
    knots_d: np.ndarray  # float64[K], non-decreasing distances
    knots_p: np.ndarray  # float64[K], their CDF values, last one = the tail quantile
    tail_beta: float     # mean excess of d over knots_d[-1]
    norm: str = "rms"    # how the channels' standardised residuals make one distance: NORMS

    @classmethod
    def fit(cls, residuals: np.ndarray, *, tail_count: int = 10, norm: str = "rms") -> "Scorer":
        """Calibrate on residuals float[N, D] of normal data (N >= 2 * tail_count)."""
        check_choice("Scorer", "norm", norm, NORMS)
        residuals = np.asarray(residuals, np.float64)
        n = residuals.shape[0]
        if n < 2 * tail_count or not np.isfinite(residuals).all():
            raise ConfigError(f"Scorer.fit needs at least {2 * tail_count} finite residual rows; got {n}"
                              + ("" if np.isfinite(residuals).all() else " with NaN/inf"))
        center = residuals.mean(axis=0)
        spread = residuals.std(axis=0)
        scale = np.maximum(spread, 1e-6 * max(1.0, float(spread.max())))
        u2 = ((residuals - center) / scale) ** 2
        d = np.sqrt(u2.max(axis=1) if norm == "max" else u2.mean(axis=1))
        p_tail = min(0.99, 1.0 - tail_count / n)
        knots_p = np.linspace(0.0, p_tail, _KNOTS)
        knots_d = np.maximum.accumulate(np.quantile(d, knots_p))
        excess = d[d > knots_d[-1]] - knots_d[-1]
        beta = float(excess.mean()) if excess.size else max(0.1 * float(knots_d[-1]), 1e-6)
        return cls(center.astype(np.float32), scale.astype(np.float32), knots_d, knots_p, beta, norm)

    def distance(self, residual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """residual float32[B, D] -> (d float64[B], per-channel share of d^2 float64[B, D]).
        In float64, as `fit` calibrated it, with the channels summed in order, so that `distance_one`
        computes the same values bit for bit."""
        z = (residual.astype(np.float64) - self._center) / self._scale
        z2 = z * z
        total, share = shares(z2)
        return np.sqrt(z2.max(axis=1) if self.norm == "max" else total / z.shape[1]), share

    def score(self, d: np.ndarray) -> np.ndarray:
        """d float[B] -> score float64[B] in [0, 1]; higher is more anomalous."""
        d = np.asarray(d, np.float64)
        d_tail, p_tail = self.knots_d[-1], self.knots_p[-1]
        body = np.interp(d, self.knots_d, self.knots_p)
        far = d > d_tail
        if not far.any():
            return body
        tail = 1.0 - (1.0 - p_tail) * np.exp(-np.maximum(d - d_tail, 0.0) / self.tail_beta)
        return np.where(far, tail, body)

    def log_survival(self, d: np.ndarray, score: np.ndarray | None = None) -> np.ndarray:
        """log(1 - score(d)), exact far into the tail where score(d) rounds to 1 in float64: the
        ordering an evaluation over many files needs (log-linear in d beyond the tail knot).
        `score`, when given, is score(d) already computed (saves the interpolation)."""
        d = np.asarray(d, np.float64)
        d_tail, p_tail = self.knots_d[-1], self.knots_p[-1]
        far = d > d_tail
        body = np.log1p(-np.minimum(self.score(d) if score is None else score, p_tail))
        if not far.any():
            return body
        tail = np.log1p(-p_tail) - (d - d_tail) / self.tail_beta
        return np.where(far, tail, body)

    # One stream in Python floats: the arithmetic above in the same order, without the fixed cost of
    # numpy calls on one-element arrays. Equal to the batched methods except where numpy's vectorised
    # exp/log1p and libm's differ in the last bit (tested to 1e-12).
    def distance_one(self, residual: list[float]) -> tuple[float, list[float]]:
        """residual: D floats (float32 values) -> (d, the squared standardised residuals)."""
        if len(residual) == 1:  # one channel, the common case: no loop
            z = (residual[0] - self._center_list[0]) / self._scale_list[0]
            return math.sqrt(z * z / 1), [z * z]
        z2 = [z * z for z in ((e - c) / s for e, c, s in zip(residual, self._center_list, self._scale_list))]
        if self.norm == "max":
            return math.sqrt(max(z2)), z2
        total = z2[0]
        for v in z2[1:]:
            total += v
        return math.sqrt(total / len(z2)), z2

    def score_one(self, d: float) -> float:
        kd, kp = self._knots_d_list, self._knots_p_list
        if d > kd[-1]:
            return 1.0 - (1.0 - kp[-1]) * math.exp(-(d - kd[-1]) / self.tail_beta)
        j = bisect.bisect_right(kd, d) - 1  # np.interp's rule: kd[j] <= d < kd[j + 1]
        if j < 0:
            return kp[0]
        if j == len(kd) - 1 or kd[j] == d:
            return kp[j]
        return (kp[j + 1] - kp[j]) / (kd[j + 1] - kd[j]) * (d - kd[j]) + kp[j]

    def log_survival_one(self, d: float, score: float) -> float:
        d_tail, p_tail = self._knots_d_list[-1], self._knots_p_list[-1]
        if d > d_tail:
            return math.log1p(-p_tail) - (d - d_tail) / self.tail_beta
        return math.log1p(-min(score, p_tail))

    def __post_init__(self) -> None:
        # float64 copies for the batched path and Python lists for the one-stream path, made once
        if self.norm not in NORMS:
            raise ArtifactError(f"manifest.json: a scorer's norm is {self.norm!r}, not one of {', '.join(NORMS)}")
        set_ = object.__setattr__
        set_(self, "_center", self.center.astype(np.float64))
        set_(self, "_scale", self.scale.astype(np.float64))
        set_(self, "_center_list", self._center.tolist())
        set_(self, "_scale_list", self._scale.tolist())
        set_(self, "_knots_d_list", np.asarray(self.knots_d, np.float64).tolist())
        set_(self, "_knots_p_list", np.asarray(self.knots_p, np.float64).tolist())

    def to_dict(self) -> dict:
        return {"center": self.center.tolist(), "scale": self.scale.tolist(),
                "knots_d": self.knots_d.tolist(), "knots_p": self.knots_p.tolist(),
                "tail_beta": self.tail_beta, "norm": self.norm}

    @classmethod
    def from_dict(cls, d: dict, input_size: int) -> "Scorer":
        try:
            s = cls(np.asarray(d["center"], np.float32), np.asarray(d["scale"], np.float32),
                    np.asarray(d["knots_d"], np.float64), np.asarray(d["knots_p"], np.float64),
                    float(d["tail_beta"]), d.get("norm", "rms"))  # artifacts before the norm: RMS
        except (KeyError, TypeError, ValueError) as e:
            raise ArtifactError(f"manifest.json: scorer section is malformed: {e!r}") from None
        for name in ("center", "scale"):
            a = getattr(s, name)
            if a.shape != (input_size,):
                raise ArtifactError(f"manifest.json: scorer.{name} has {a.size} values, "
                                    f"the model has {input_size} input channels")
        if not all(np.isfinite(a).all() for a in (s.center, s.scale, s.knots_d, s.knots_p)):
            raise ArtifactError("manifest.json: scorer holds NaN or infinity")
        if (s.knots_d.shape != s.knots_p.shape or s.knots_d.size < 2 or (np.diff(s.knots_d) < 0).any()
                or (np.diff(s.knots_p) <= 0).any() or (s.scale <= 0).any() or not s.tail_beta > 0):
            raise ArtifactError("manifest.json: scorer knots must be non-decreasing, equally many, and "
                                "scale and tail_beta positive")
        return s


_NEG_INV_LN10 = float(-1.0 / np.log(10.0))


@dataclass(frozen=True)
class Adaptive:
    """A drift-aware surprise score on top of the calibrated one, learned online per stream.

    r = -log10(1 - F(d)), the calibrated surprise (3 at the default alert threshold), is compared
    with its own exponentially weighted mean m and variance v over roughly the last `horizon`
    samples of the stream: z = (r - m) / max(sqrt(v), min_std), scored before r updates m and v.
    `adaptive` = max(z, 0) / (max(z, 0) + squash) in [0, 1). A stream whose residuals grow for good
    (a new regime the short training never saw) stops looking anomalous after a while; a sudden
    change still stands out. A sample beyond every value its stream has shown so far (and the
    training range) by more than `novelty_margin` of that range is novel and scores at least
    `novelty` (0 turns this off); a margin (NAB's HTM detector uses 0.05 and calls it spatial
    tolerance) keeps a slow drift to new highs from being novel at every step. `first` keeps a
    score only where it beats every score of about the last `refractory` samples (a decaying
    peak) and damps it 100-fold elsewhere: the onset of an episode, which is what NAB rewards.
    Novelty is an episode too: a novel sample within `novelty_refractory` samples of the stream's
    previous novel one does not get the novelty floor again (0: every novel sample does). Nor does a
    novel sample whose z (the larger of the channels') is under `novelty_z`: one the forecaster saw
    coming, like the next step of a climb to new highs, is not an anomaly for being new.
    r is capped at `surprise_cap` (0: no cap), in the score and in the statistics: the exponential
    tail is extrapolated from the largest 1% (at least ten) of the calibration residuals, so 10^-20
    and 10^-40 mean the same, "certainly anomalous"; uncapped, one extreme sample inflates v and
    hides the next anomaly for days, and every more extreme sample of one episode counts as a new
    peak.
    A stream whose surprises keep reaching alert level learns that they are its routine (alert
    fatigue): each onset (a sample that beats the decaying peak) whose z reaches `fatigue_z` adds one
    to the stream's load, which decays over about `fatigue_horizon` samples, and z is divided by
    1 + `fatigue` x load before it is squashed (0: off). Bursty streams (tweet volumes, disk writes)
    stop alerting on every burst; a quiet stream's first surprise scores as before. The novelty and
    load rules read the undivided z.
    Within the cap, an episode of surprises still raises v, which is what quiets a burst that keeps
    coming (and what NAB rewards); with `clip` > 0 a surprise teaches m and v at most `clip` of
    their standard deviations, so a fault that repeats keeps its score (0: learned whole).
    Per-stream state: float64[B, 6] (m, v, n, peak, n at the last novel sample, load).
    """

    horizon: float = 8640.0
    min_std: float = 0.1
    warmup: int = 10
    squash: float = 5.0
    refractory: float = 200.0
    novelty: float = 0.9
    novelty_margin: float = 0.0
    novelty_refractory: float = 50.0
    novelty_z: float = 1.5
    surprise_cap: float = 20.0
    fatigue: float = 0.2
    fatigue_z: float = 7.0
    fatigue_horizon: float = 1000.0
    clip: float = 0.0

    def __post_init__(self) -> None:
        check_float("Adaptive", "horizon", self.horizon, 1.0, 1e9)
        check_float("Adaptive", "min_std", self.min_std, 0.0, 1e6, lo_open=True)
        check_int("Adaptive", "warmup", self.warmup, 0, 10_000_000)
        check_float("Adaptive", "squash", self.squash, 0.0, 1e6, lo_open=True)
        check_float("Adaptive", "refractory", self.refractory, 1.0, 1e9)
        check_float("Adaptive", "novelty", self.novelty, 0.0, 1.0, hi_open=True)
        check_float("Adaptive", "novelty_margin", self.novelty_margin, 0.0, 100.0)
        check_float("Adaptive", "novelty_refractory", self.novelty_refractory, 0.0, 1e9)
        check_float("Adaptive", "novelty_z", self.novelty_z, 0.0, 1e6)
        check_float("Adaptive", "surprise_cap", self.surprise_cap, 0.0, 1e6)
        check_float("Adaptive", "fatigue", self.fatigue, 0.0, 1e6)
        check_float("Adaptive", "fatigue_z", self.fatigue_z, 0.0, 1e6)
        check_float("Adaptive", "fatigue_horizon", self.fatigue_horizon, 1.0, 1e9)
        check_float("Adaptive", "clip", self.clip, 0.0, 1e6)
        object.__setattr__(self, "_decay", float(np.exp(-1.0 / self.refractory)))
        object.__setattr__(self, "_fatigue_decay", float(np.exp(-1.0 / self.fatigue_horizon)))
        object.__setattr__(self, "_cap", self.surprise_cap or math.inf)

    COLUMNS = 6

    @staticmethod
    def zeros(batch: int) -> np.ndarray:
        st = np.zeros((batch, Adaptive.COLUMNS))
        st[:, 3:5] = -np.inf
        return st

    def standardise(self, m: np.ndarray, v: np.ndarray, n: np.ndarray, r: np.ndarray) -> tuple:
        """Running statistics (mean, variance, count) float64[B] each: r's z against them (0 while
        fewer than `warmup` samples are in), then r learned. Returns (z, m', v', n'). The daily
        profile (edge.seasonal) keeps its surprise's statistics by the same rule."""
        dev = r - m
        sd = np.maximum(np.sqrt(v), self.min_std)
        warm = n >= self.warmup
        z = np.where(warm, dev / sd, 0.0)
        if self.clip:
            lim = self.clip * sd
            dev = np.where(warm, np.minimum(np.maximum(dev, -lim), lim), dev)
        a = np.maximum(1.0 / self.horizon, 1.0 / (n + 1.0))
        return z, m + a * dev, (1.0 - a) * (v + a * dev * dev), n + 1.0

    def standardise_one(self, m: float, v: float, n: float, r: float) -> tuple[float, float, float, float]:
        """`standardise` for one stream in Python floats, the same arithmetic."""
        dev = r - m
        z = 0.0
        if n >= self.warmup:
            sd = max(math.sqrt(v), self.min_std)
            z = dev / sd
            if self.clip:
                lim = self.clip * sd
                dev = min(max(dev, -lim), lim)
        a = max(1.0 / self.horizon, 1.0 / (n + 1.0))
        return z, m + a * dev, (1.0 - a) * (v + a * dev * dev), n + 1.0

    def step(self, state: np.ndarray, log_survival: np.ndarray, live: np.ndarray, novel: np.ndarray | None = None,
             extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """state float64[B, 6], log_survival = Scorer.log_survival(d) float64[B], live bool[B] (past
        the detector's warm-up; others leave the state as it is and score 0), novel bool[B] (the
        sample lies outside its stream's range so far), extra float64[B]: another channel's z (the
        daily profile's, weighted), which counts where it is larger than this one's.
        Returns (adaptive float64[B], first float64[B], state', own float64[B]: this channel's z, the
        other channel's aside, which gates the daily profile's learning)."""
        if len(state) == 1:
            return self._step_one(state, log_survival, live, novel, extra)
        r = np.minimum(log_survival * _NEG_INV_LN10, self._cap)
        n, peak, last = state[:, 2], state[:, 3], state[:, 4]
        z, *stats = self.standardise(state[:, 0], state[:, 1], n, r)
        everyone = bool(live.all())
        if not everyone:
            z[~live] = 0.0
        own = np.maximum(z, 0.0, out=z)
        if extra is not None:
            z = np.maximum(own, extra)
        load = state[:, 5] * self._fatigue_decay
        damped = z / (1.0 + self.fatigue * load)
        adaptive = damped / (damped + self.squash)
        new_last = last
        if novel is not None and self.novelty and novel.any():
            hit = novel & live
            fresh = hit & (n - last > self.novelty_refractory) & (z >= self.novelty_z)
            adaptive = np.where(fresh, np.maximum(adaptive, self.novelty), adaptive)
            new_last = np.where(hit, n, last)
        first = np.where(adaptive > peak, adaptive, 0.01 * adaptive)
        new = np.empty_like(state)
        new[:, 0], new[:, 1], new[:, 2] = stats
        new[:, 3] = np.maximum(np.where(peak > 0, peak * self._decay, peak), adaptive)
        new[:, 4] = new_last
        new[:, 5] = load + ((adaptive > peak) & (z >= self.fatigue_z))
        if not everyone:  # streams still warming up keep their statistics as they were
            new[~live] = state[~live]
        return adaptive, first, new, own

    def _step_one(self, state, log_survival, live, novel, extra):
        new = state.copy()
        adaptive, first, own = self.advance_one(new[0], float(log_survival[0]), bool(live[0]),
                                                novel is not None and bool(novel[0]),
                                                0.0 if extra is None else float(extra[0]))
        return np.array([adaptive]), np.array([first]), new, np.array([own])

    def advance_one(self, row: np.ndarray, log_survival: float, live: bool, novel: bool,
                    extra: float = 0.0) -> tuple[float, float, float]:
        """`step` for one stream in Python floats, updating its state row float64[6] in place: the
        same float64 arithmetic in the same order (tested bit for bit), without the fixed cost of 30
        numpy calls on one-element arrays. Returns (adaptive, first, own)."""
        if not live:
            return 0.0, 0.0, 0.0
        m, v, n, peak, last, load = row.tolist()
        own, m, v, n_next = self.standardise_one(m, v, n, min(log_survival * _NEG_INV_LN10, self._cap))
        own = max(own, 0.0)
        z = max(own, extra)
        load *= self._fatigue_decay
        damped = z / (1.0 + self.fatigue * load)
        adaptive = damped / (damped + self.squash)
        if novel and self.novelty:
            if n - last > self.novelty_refractory and z >= self.novelty_z:
                adaptive = max(adaptive, self.novelty)
            last = n
        first = adaptive if adaptive > peak else 0.01 * adaptive
        if adaptive > peak and z >= self.fatigue_z:
            load += 1.0
        row[:] = (m, v, n_next, max(peak * self._decay if peak > 0 else peak, adaptive), last, load)
        return adaptive, first, own

    def to_dict(self) -> dict:
        return {"horizon": self.horizon, "min_std": self.min_std, "warmup": self.warmup, "squash": self.squash,
                "refractory": self.refractory, "novelty": self.novelty, "novelty_margin": self.novelty_margin,
                "novelty_refractory": self.novelty_refractory, "novelty_z": self.novelty_z,
                "surprise_cap": self.surprise_cap, "fatigue": self.fatigue, "fatigue_z": self.fatigue_z,
                "fatigue_horizon": self.fatigue_horizon, "clip": self.clip}

    @classmethod
    def from_dict(cls, d: dict) -> "Adaptive":
        """The manifest's section; one written before `surprise_cap`, `novelty_z`, `fatigue` or `clip`
        existed scores as it did: uncapped, every novel sample floored, no fatigue, no clipping."""
        try:
            return cls(**{"surprise_cap": 0.0, "novelty_z": 0.0, "fatigue": 0.0, "clip": 0.0, **d})
        except (TypeError, ConfigError) as e:
            raise ArtifactError(f"manifest.json: scorer.adaptive section: {e}") from None
