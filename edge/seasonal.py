"""A daily (or weekly) profile per stream: what each time of day usually looks like, learned online.

A one-step forecaster misses the anomaly that is an absence: the daily peak that does not come,
a night that stays busy. Each step looks like its predecessor, so the residual stays small. The
profile compares a sample with the same time on earlier days instead.

The period is a day, or a week where the training rows span two weeks (one to visit every time
of the week, one to calibrate against): human-driven series (traffic, trade, logins) repeat by the
week, and a holiday is a weekday that looks like a Sunday, which a day's profile, every day of
which mixes weekdays and weekends, cannot see. The period is cut into `bins` phase bins of `bin_s`
seconds (the training rows' median sampling interval, at least 5 minutes; at least 4 bins a
period, so rows that come once a day get a week's profile of 7 bins or none): bin
k = round((ts mod period_s) / bin_s) mod bins. Per stream and bin the profile holds an exponential
average of the raw values (`alpha`). A sample in a bin its stream
has not visited yet initialises the bin and is not scored. Otherwise its residual
(x - profile[k]) / spread, where spread is the training values' standard deviation per channel, is
scored by the `Scorer` calibrated on the training rows' residuals of the same online rule. Its
surprise -log10(1 - F(d)) is standardised by the stream's own running mean and variance with the
drift-adaptive score's settings (`scoring.Adaptive`: horizon, min_std, warmup, surprise cap), and
`weight` times that z competes with the forecaster's z (the larger counts) before the adaptive
score's squash. The bin then learns the sample, unless the forecaster finds it anomalous (its z
is `gate` or more) or it is novel: an anomaly must not become the new normal for its time of day.
The profile's own z does not gate: a bin that first saw an outlier would otherwise never learn the
normal values that follow, and would flag them every day (NAB's ec2_cpu_utilization_24ae8d did so
on 11 days).

Nothing is learned from the training stream's profile itself: every stream, including one the
model was not trained on, builds its own during its first period, so the channel stays silent
until then. Measured on NAB (README, "what moved the score"): the day's profile catches the missing
daily peaks (art_daily_jumpsdown, art_daily_nojump) that the forecaster misses; the week's, the
holidays of nyc_taxi.

Per-stream state: float64[B, 3] (the surprise's running mean, variance and count) and the profile
float32[B, bins, D] (NaN: bin not visited yet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .artifact import unit_scale
from .errors import ArtifactError, ConfigError
from .scoring import _NEG_INV_LN10, Adaptive, Scorer
from .validation import check_float, check_int

DAY_S, WEEK_S = 86400.0, 7 * 86400.0
MIN_BIN_S = 300.0           # at most 288 bins a day (1.2 kB per stream and channel), 2,016 a week (8 kB)
MIN_BINS = 4                # sampled less often than every 6 hours, a day has no shape to learn (a week
                            # sampled daily has: its 7 days)
MIN_RESIDUALS = 40          # the training rows must revisit bins this often to calibrate a scorer


def phase(ts: np.ndarray, bin_s: float, bins: int, period_s: float) -> np.ndarray:
    """The phase bin of each timestamp (epoch seconds, UTC) float64[B] -> int64[B]."""
    return np.rint(np.mod(ts, period_s) / bin_s).astype(np.int64) % bins


def layout(period_s: float, bins: int, bin_s: float) -> str:
    """'a day in 288 bins of 300 s', 'a week in 336 bins of 1800 s'."""
    return f"a {'week' if period_s == WEEK_S else 'day'} in {bins} bins of {bin_s:g} s"


@dataclass(frozen=True)
class DailyProfile:
    bin_s: float
    bins: int
    spread: np.ndarray   # float64[D]: the unit of the residual, per channel
    scorer: Scorer       # calibrated on the training rows' profile residuals
    alpha: float = 0.25
    weight: float = 0.6
    gate: float = 2.0
    period_s: float = DAY_S

    def __post_init__(self) -> None:
        if self.period_s not in (DAY_S, WEEK_S):
            raise ConfigError(f"DailyProfile: period_s is {self.period_s!r}; this version knows days "
                              f"({DAY_S:g} s) and weeks ({WEEK_S:g} s)")
        check_float("DailyProfile", "bin_s", self.bin_s, MIN_BIN_S, self.period_s / MIN_BINS)
        check_int("DailyProfile", "bins", self.bins, MIN_BINS, int(self.period_s / MIN_BIN_S))
        check_float("DailyProfile", "alpha", self.alpha, 0.0, 1.0, lo_open=True)
        check_float("DailyProfile", "weight", self.weight, 0.0, 100.0, lo_open=True)
        check_float("DailyProfile", "gate", self.gate, 0.0, 1e6, lo_open=True)
        spread = np.asarray(self.spread, np.float64)
        if spread.shape != self.scorer.center.shape or not (np.isfinite(spread) & (spread > 0)).all():
            raise ConfigError(f"DailyProfile: spread must hold one positive value per channel "
                              f"({self.scorer.center.size}), got {spread.tolist()}")
        object.__setattr__(self, "spread", spread)
        object.__setattr__(self, "_spread_list", spread.tolist())

    @classmethod
    def fit(cls, ts: np.ndarray, values: np.ndarray, *, weight: float = 0.6, norm: str = "rms"
            ) -> tuple["DailyProfile | None", str]:
        """From training rows (ts float64[N] epoch seconds, values float[N, D]): the profile's
        settings and its scorer (combining the channels by `norm`, as the forecaster's), or None and
        the reason there is none. A week's profile where the training rows span two weeks (one to
        learn each time of the week, one to calibrate), else a day's."""
        ts, values = np.asarray(ts, np.float64), np.asarray(values, np.float64)
        if len(ts) < 2:
            return None, "fewer than two training rows"
        span = ts[-1] - ts[0]
        if span >= 2 * WEEK_S:
            weekly, _ = cls._fit(ts, values, WEEK_S, weight, norm)
            if weekly is not None:
                return weekly, ""
        if span < DAY_S:
            return None, f"the training rows span {span / 3600:.1f} hours; a daily profile needs a whole day"
        return cls._fit(ts, values, DAY_S, weight, norm)

    @classmethod
    def _fit(cls, ts: np.ndarray, values: np.ndarray, period_s: float, weight: float, norm: str
             ) -> tuple["DailyProfile | None", str]:
        bin_s = max(float(np.median(np.diff(ts))), MIN_BIN_S)
        bins = int(round(period_s / bin_s))
        if bin_s > period_s / MIN_BINS:
            return None, f"rows come every {bin_s / 3600:.1f} hours; a daily profile needs at least {MIN_BINS} a day"
        spread = unit_scale(values)
        alpha = cls.alpha
        profile = np.full((bins, values.shape[1]), np.nan)
        residuals = []
        for k, x in zip(phase(ts, bin_s, bins, period_s).tolist(), values):
            if np.isnan(profile[k, 0]):
                profile[k] = x
            else:
                residuals.append((x - profile[k]) / spread)
                profile[k] += alpha * (x - profile[k])
        if len(residuals) < MIN_RESIDUALS:
            return None, (f"the training rows revisit a time of day {len(residuals)} times; "
                          f"a profile needs {MIN_RESIDUALS}")
        scorer = Scorer.fit(np.array(residuals), norm=norm)
        return cls(bin_s, bins, spread, scorer, weight=weight, period_s=period_s), ""

    def cuts_like(self, other: "DailyProfile") -> bool:
        """Whether `other` cuts the same period into the same bins, so a stream's profile carries over."""
        return (self.period_s, self.bin_s, self.bins) == (other.period_s, other.bin_s, other.bins)

    def describe(self) -> str:
        return layout(self.period_s, self.bins, self.bin_s)

    # --- state ---------------------------------------------------------------------------------------
    def zeros(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """A new stream's state: (running statistics float64[B, 3], profile float32[B, bins, D])."""
        return np.zeros((batch, 3)), np.full((batch, self.bins, self.spread.size), np.nan, np.float32)

    # --- the batched step (numpy) -------------------------------------------------------------------
    def score(self, stats: np.ndarray, profile: np.ndarray, ts: np.ndarray, x: np.ndarray, live: np.ndarray,
              ad: Adaptive) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ts float64[B], raw x float32[B, D]; updates `stats` and `profile` (first visits) in place.
        Returns (weight * z float64[B], the phase bins int64[B], visited bool[B]: the bin had a value)."""
        k = phase(ts, self.bin_s, self.bins, self.period_s)
        rows = np.arange(len(k))
        x64 = x.astype(np.float64)
        known = profile[rows, k].astype(np.float64)
        visited = ~np.isnan(known[:, 0])
        if not visited.all():
            fresh = ~visited
            profile[rows[fresh], k[fresh]] = x[fresh]
        extra = np.zeros(len(k))
        on = visited & live
        if not on.any():
            return extra, k, visited
        d, _ = self.scorer.distance((x64[on] - known[on]) / self.spread)
        r = np.minimum(self.scorer.log_survival(d) * _NEG_INV_LN10, ad._cap)
        z, *new = ad.standardise(stats[on, 0], stats[on, 1], stats[on, 2], r)
        extra[on] = self.weight * np.maximum(z, 0.0)
        stats[on] = np.stack(new, axis=1)
        return extra, k, visited

    def learn(self, profile: np.ndarray, k: np.ndarray, x: np.ndarray, learn: np.ndarray) -> None:
        """The bins k of the streams in `learn` move `alpha` of the way to x, in place."""
        if learn.any():
            rows = np.flatnonzero(learn)
            old = profile[rows, k[rows]].astype(np.float64)
            profile[rows, k[rows]] = old + self.alpha * (x[rows].astype(np.float64) - old)

    def learns(self, own: np.ndarray, novel: np.ndarray, visited: np.ndarray) -> np.ndarray:
        """Which streams' bins learn the sample: visited before, the forecaster's z (`own`, from
        Adaptive.step) under `gate`, not novel."""
        return visited & (own < self.gate) & ~novel

    # --- one stream in Python floats: the same arithmetic in the same order ----------------------------
    def score_one(self, stats: np.ndarray, profile: np.ndarray, t: float, xs: list[float], live: bool,
                  ad: Adaptive) -> tuple[float, int]:
        """`score` for one stream: stats float64[3] and profile float32[bins, D] (its rows), updated in
        place. Returns (weight * z, the bin or -1 when the bin was first visited now)."""
        k = int(round(t % self.period_s / self.bin_s)) % self.bins
        row = profile[k]
        if math.isnan(row[0]):
            row[:] = xs
            return 0.0, -1
        if not live:
            return 0.0, k
        known = row.tolist()
        e = [(v - p) / s for v, p, s in zip(xs, known, self._spread_list)]
        sc = self.scorer
        d, _ = sc.distance_one(e)
        r = min(sc.log_survival_one(d, sc.score_one(d)) * _NEG_INV_LN10, ad._cap)
        z, *new = ad.standardise_one(*stats.tolist(), r)
        stats[:] = new
        return self.weight * max(z, 0.0), k

    def learn_one(self, profile: np.ndarray, k: int, xs: list[float]) -> None:
        row = profile[k]
        row[:] = [p + self.alpha * (v - p) for v, p in zip(xs, row.tolist())]

    # --- the manifest --------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"period_s": self.period_s, "bin_s": self.bin_s, "bins": self.bins, "spread": self.spread.tolist(),
                "alpha": self.alpha, "weight": self.weight, "gate": self.gate, "scorer": self.scorer.to_dict()}

    @classmethod
    def from_dict(cls, d: dict | None, input_size: int) -> "DailyProfile | None":
        if d is None:
            return None
        try:
            return cls(float(d["bin_s"]), d["bins"], np.asarray(d["spread"], np.float64),
                       Scorer.from_dict(d["scorer"], input_size), d["alpha"], d["weight"], d["gate"],
                       float(d["period_s"]))
        except (KeyError, TypeError, ValueError, ConfigError) as e:
            raise ArtifactError(f"manifest.json: daily_profile section: {e}") from None
