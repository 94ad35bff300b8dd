"""One detector step for B streams: normalise, score the residual of the last forecast (calibrated,
and drift-adaptive), advance the alert machine, step the model. The runtime, the evaluation and
`rnnedge detect` all run this. The scoring runs in numpy for a batch (`step`), on scalars for one
stream (`step_row`), and in the optional C extension edge._rowstep for one stream or a round of
streams in place (`step_row`, `step_slots`); all equal to the last bit of exp/log1p (tested)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .alerts import AlertState, alert_step, alert_step_one
from .artifact import Artifact
from .cell import Cell, init_state
from .context import ContextNovelty, disabled_state
from .errors import ArtifactError, DataError
from .scoring import _NEG_INV_LN10, Adaptive, shares
from .seasonal import DailyProfile

try:  # the optional C extension (setup.py): one stream's scoring step in a fraction of a microsecond
    from . import _rowstep
except ImportError:  # not built here: the same arithmetic runs in Python floats (one stream) or numpy
    _rowstep = None

# the scalars edge/_rowstep.c reads, in its order
ROW_PARAMS = ("warmup", "tail_beta", "novelty_margin", "min_std", "adaptive_warmup", "squash", "horizon",
              "novelty", "novelty_refractory", "decay", "cap", "threshold", "clear_threshold", "raise_after",
              "clear_after", "cooldown", "on_adaptive", "neg_inv_ln10", "novelty_z", "fatigue", "fatigue_z",
              "fatigue_decay", "max_norm", "clip")
# the daily profile's scalars, in _rowstep.c's order (a profile of 0 bins in the state: none)
PROFILE_PARAMS = ("period", "bin_s", "alpha", "weight", "gate", "tail_beta", "max_norm")


@dataclass
class DetectorState:
    """Everything a stream carries between samples; the caller owns and checkpoints it."""

    model: np.ndarray     # float32[B, S]
    forecast: np.ndarray  # float32[B, D]: the forecast of this sample, made at the previous one
    seen: np.ndarray      # int64[B]: samples stepped since the zero state
    alerts: AlertState
    adapt: np.ndarray     # float64[B, 5]: the adaptive score's running statistics (scoring.Adaptive)
    extent: np.ndarray    # float32[B, 2, D]: the lowest and highest raw value seen (training range included)
    season: np.ndarray    # float64[B, 3]: the daily profile's surprise statistics (seasonal.DailyProfile)
    profile: np.ndarray   # float32[B, bins, D]: the daily profile (NaN: bin not visited); bins 0 without one
    context: np.ndarray   # float64[B, D, H]: contextual novelty's open blocks and levels; H 0 without it
    memory: np.ndarray    # float32[B, D, M, W + 1]: its windows (context.ContextNovelty), updated in place


@dataclass(frozen=True)
class StepResult:
    score: np.ndarray     # float64[B] in [0, 1]; 0 during warm-up
    distance: np.ndarray  # float64[B]
    share: np.ndarray     # float64[B, D]: each channel's share of the squared distance
    events: np.ndarray    # int8[B]: alerts.RAISED, alerts.CLEARED or alerts.NONE
    adaptive: np.ndarray  # float64[B] in [0, 1): surprise relative to the stream's own recent scores
    first: np.ndarray     # float64[B]: `adaptive` where it starts an episode, damped elsewhere


class RowResult(NamedTuple):
    """`StepResult` of one stream, in Python scalars. share and forecast (the normalised forecast
    this sample was scored against) are filled only on an alert event, the only place they are used."""

    score: float
    distance: float
    event: int
    adaptive: float
    first: float
    share: list | None = None
    forecast: np.ndarray | None = None


class Detector:
    """Serves an artifact with the numpy reference cell at `precision` (the artifact's by default),
    or with `cell`, any step function of the same contract (an emitted target's interpreter).
    One thread at a time: the compiled one-stream step reuses its output buffers."""

    def __init__(self, artifact: Artifact, precision: str | None = None, *, cell: Cell | None = None) -> None:
        self.artifact = artifact
        self.cell = cell if cell is not None else artifact.cell(precision)
        self.normalizer = artifact.normalizer
        self.scorer = artifact.scorer
        self.alert_config = artifact.alerts
        self._on_adaptive = artifact.alerts.source == "adaptive"
        self._one_channel = len(self.normalizer.mean) == 1
        self._mean0, self._std0 = self.normalizer.mean[0], self.normalizer.std[0]  # float32 scalars
        self.warmup = int(artifact.manifest.get("warmup", 0))
        self._adaptive = Adaptive.from_dict(artifact.manifest.get("adaptive") or {})
        self.daily = DailyProfile.from_dict(artifact.manifest.get("daily_profile"), len(self.normalizer.mean))
        self._compiled = None
        d = self.cell.input_size
        ext = artifact.manifest.get("extent")  # the training rows' range; absent in older artifacts
        try:
            self.extent = np.array([ext["min"], ext["max"]], np.float32) if ext else \
                np.array([[np.inf] * d, [-np.inf] * d], np.float32)
        except (KeyError, TypeError, ValueError):
            self.extent = None
        if self.extent is None or self.extent.shape != (2, d):
            raise ArtifactError(f"{artifact.path}/manifest.json: extent must hold min and max of {d} channel(s)")
        section = artifact.manifest.get("context_novelty")
        if section is not None and not ext:
            raise ArtifactError(f"{artifact.path}/manifest.json: context_novelty needs the training rows' extent")
        self.context = ContextNovelty.from_dict(section, [ext["min"], ext["max"]] if ext else None)
        self.use_compiled(True)

    @property
    def adaptive(self) -> Adaptive:
        return self._adaptive

    @adaptive.setter
    def adaptive(self, value: Adaptive) -> None:
        self._adaptive = value
        self.use_compiled(self._compiled is not None)  # the compiled step's constants follow

    @property
    def compiled(self) -> bool:
        """Whether `step_row` runs the C extension edge._rowstep (else Python floats)."""
        return self._compiled is not None

    def use_compiled(self, on: bool) -> None:
        """Score in the C extension when it is built and `on` (`step_row`, `step_slots`), else in
        Python floats (`step_row`) or numpy (`step`)."""
        self._compiled = _rowstep.row_step if on and _rowstep is not None else None
        if self._compiled is None:
            return
        sc, ad, al = self.scorer, self.adaptive, self.alert_config
        values = {"warmup": self.warmup, "tail_beta": sc.tail_beta, "novelty_margin": ad.novelty_margin,
                  "min_std": ad.min_std, "adaptive_warmup": ad.warmup, "squash": ad.squash, "horizon": ad.horizon,
                  "novelty": ad.novelty, "novelty_refractory": ad.novelty_refractory, "decay": ad._decay,
                  "cap": ad._cap, "threshold": al.threshold, "clear_threshold": al.clear_threshold,
                  "raise_after": al.raise_after, "clear_after": al.clear_after, "cooldown": al.cooldown,
                  "on_adaptive": float(self._on_adaptive), "neg_inv_ln10": _NEG_INV_LN10,
                  "novelty_z": ad.novelty_z, "fatigue": ad.fatigue, "fatigue_z": ad.fatigue_z,
                  "fatigue_decay": ad._fatigue_decay, "max_norm": float(sc.norm == "max"),
                  "clip": ad.clip}
        d = self.cell.input_size
        self._consts = (np.array([self.normalizer.mean, self.normalizer.std], np.float32),
                        np.array([sc._center, sc._scale], np.float64), np.array([sc.knots_d, sc.knots_p], np.float64),
                        np.array([values[k] for k in ROW_PARAMS], np.float64))
        pr = self.daily
        if pr is None:  # placeholders of the right shapes; bins 0 turns the profile off
            spreads, knots, pvalues = np.ones((3, d)), np.array([[0.0, 1.0], [0.0, 0.5]]), {}
        else:
            ps = pr.scorer
            spreads, knots = np.array([pr.spread, ps._center, ps._scale]), np.array([ps.knots_d, ps.knots_p])
            pvalues = {"period": pr.period_s, "bin_s": pr.bin_s, "alpha": pr.alpha, "weight": pr.weight,
                       "gate": pr.gate, "tail_beta": ps.tail_beta, "max_norm": float(ps.norm == "max")}
        self._profile_consts = (np.ascontiguousarray(spreads, np.float64), np.ascontiguousarray(knots, np.float64),
                                np.array([pvalues.get(k, 1.0) for k in PROFILE_PARAMS], np.float64))
        self._z, self._z2 = np.zeros((1, d), np.float32), np.zeros(d)  # the step's array outputs, reused

    def init(self, batch: int = 1) -> DetectorState:
        d = self.cell.input_size
        return DetectorState(init_state(self.cell, batch), np.zeros((batch, d), np.float32),
                             np.zeros(batch, np.int64), AlertState.zeros(batch), Adaptive.zeros(batch),
                             np.repeat(self.extent[None], batch, axis=0), *self.profile_zeros(batch),
                             *self.context_zeros(batch))

    def profile_zeros(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """New streams' daily-profile state (statistics, profile); a profile of 0 bins without one."""
        if self.daily is None:
            return np.zeros((batch, 3)), np.zeros((batch, 0, self.cell.input_size), np.float32)
        return self.daily.zeros(batch)

    def context_zeros(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """New streams' contextual-novelty state (open blocks, memory); empty arrays without one."""
        if self.context is None:
            return disabled_state(batch, self.cell.input_size)
        return self.context.zeros(batch)

    def _context(self, st: DetectorState, x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray | bool:
        """Contextual novelty of x float32[B, D] for the streams in `rows` of st (all without), in place."""
        if self.context is None:
            return False
        n = len(st.seen)
        if rows is not None and rows.size and not (0 <= rows.min() and rows.max() < n):
            bad = rows[(rows < 0) | (rows >= n)][0]
            raise IndexError(f"row_step: stream {bad} is out of range for {n} streams")
        return self.context.observe(st.context, st.memory, x, rows)

    def _timestamps(self, ts) -> None:
        if ts is None and self.daily is not None:
            raise DataError(f"{self.artifact.path}: this model scores each sample against its stream's daily "
                            f"profile, so every sample needs its timestamp")

    def step(self, st: DetectorState, x: np.ndarray, ts: np.ndarray | None = None) -> tuple[DetectorState, StepResult]:
        """x: float32[B, D] raw sensor values (not normalised); ts float64[B]: their timestamps
        (epoch seconds), needed by a model with a daily profile. st.context and st.memory are
        updated in place (a memory is tens of kB a stream: a copy every step would cost more than
        the step); the rest of st is left as it was."""
        self._timestamps(ts)
        z = self.normalizer.normalize(x)
        distance, share = self.scorer.distance(z - st.forecast)
        score = self.scorer.score(distance)
        live = st.seen > self.warmup  # else no forecast yet, or one from a cold state
        score[~live] = 0.0
        lo, hi = st.extent[:, 0], st.extent[:, 1]
        outside = ((x < lo) | (x > hi)).any(axis=1)
        novel = outside
        extent = st.extent
        if outside.any():
            lo64, hi64, x64 = lo.astype(np.float64), hi.astype(np.float64), x.astype(np.float64)
            span = hi64 - lo64
            margin = np.where(np.isfinite(span), self.adaptive.novelty_margin * span, 0.0)  # none before a range
            novel = ((x64 < lo64 - margin) | (x64 > hi64 + margin)).any(axis=1)
            extent = np.stack([np.minimum(lo, x), np.maximum(hi, x)], axis=1)
        novel = novel | self._context(st, x)
        log_surv = self.scorer.log_survival(distance, score)
        season, profile, extra = st.season, st.profile, None
        if self.daily is not None:
            season, profile = season.copy(), profile.copy()
            extra, k, visited = self.daily.score(season, profile, np.asarray(ts, np.float64), x, live, self.adaptive)
        adaptive, first, adapt, own = self.adaptive.step(st.adapt, log_surv, live, novel, extra)
        if self.daily is not None:
            self.daily.learn(profile, k, x, self.daily.learns(own, novel, visited))
        alerts, events = alert_step(self.alert_config, st.alerts, adaptive if self._on_adaptive else score)
        forecast, model = self.cell.step(z, st.model)
        return (DetectorState(model, forecast, st.seen + 1, alerts, adapt, extent, season, profile, st.context,
                              st.memory),
                StepResult(score, distance, share, events, adaptive, first))

    def step_row(self, st: DetectorState, i: int, x: np.ndarray, t: float | None = None) -> RowResult:
        """`step` for the stream in row i of st alone, updating that row in place; x: float32[D] raw
        values, t their timestamp. The same arithmetic as `step` on scalars, in one call of the C
        extension edge._rowstep where it is built (`compiled`), else in Python floats; only the cell
        runs in numpy. So one stream, the common case on a device, pays no fixed cost of numpy calls
        on one-element arrays.
        Equal to `step` up to the last bit of exp/log1p, and the two paths to each other exactly
        (tested)."""
        if x.dtype != np.float32 or not x.flags.c_contiguous:  # the C extension reads x as float32[D]
            x = np.ascontiguousarray(x, np.float32)
        if t is None:
            self._timestamps(t)
        ctx, cn = False, self.context
        if cn is not None:
            if self._compiled is not None:  # the accumulation in C; a full block closes in numpy
                if _rowstep.context_add(i, x, st.context, cn.block):
                    ctx = cn.close_full(st.context[i], st.memory[i])
            elif not 0 <= i < len(st.seen):
                raise IndexError(f"row_step: stream {i} is out of range for {len(st.seen)} streams")
            else:
                ctx = cn.observe_one(st.context[i], st.memory[i], x.tolist())
        if self._compiled is None:
            event, score, distance, adaptive, first, z, z2 = self._score_row(st, i, x, t, ctx)
        else:
            a = st.alerts
            z, z2 = self._z, self._z2
            event, score, distance, adaptive, first = self._compiled(
                i, x, *self._consts, st.forecast, st.seen, st.adapt, a.active, a.above, a.below, a.cooldown,
                st.extent, z, z2, 0.0 if t is None else t, *self._profile_consts, st.season, st.profile, ctx)
        share = forecast = None
        if event:  # each channel's share of the squared distance, and the forecast it was scored against
            share = shares(np.asarray(z2, np.float64)[None])[1]
            share, forecast = share[0].tolist(), st.forecast[i].copy()
        y, model = self.cell.step(z, st.model[i:i + 1])
        st.forecast[i], st.model[i] = y, model  # [1, n] into a row: no view made
        return RowResult(score, distance, event, adaptive, first, share, forecast)

    def step_slots(self, st: DetectorState, idx: np.ndarray, x: np.ndarray, ts: np.ndarray | None = None
                   ) -> tuple[StepResult, np.ndarray]:
        """`step_row` for the distinct streams in rows idx of st, one sample each (x float32[B, D] raw,
        ts float64[B] their timestamps), updating those rows in place, in one call of the C extension
        (`compiled` must be true) and one batched model step: no gather and scatter of the scoring
        state. Returns the step's result and the forecasts the samples were scored against. Equal to
        `step_row` exactly (tested)."""
        self._timestamps(ts)
        b, d = x.shape
        z, z2 = np.empty((b, d), np.float32), np.empty((b, d))
        res, events = np.empty((b, 4)), np.empty(b, np.int8)
        a = st.alerts
        ts = np.zeros(b) if ts is None else np.ascontiguousarray(ts, np.float64)
        idx = np.asarray(idx, np.int64)
        ctx = np.zeros(b, bool) | self._context(st, x, idx)
        _rowstep.rows_step(idx, np.ascontiguousarray(x, np.float32), *self._consts,
                           st.forecast, st.seen, st.adapt, a.active, a.above, a.below, a.cooldown, st.extent,
                           z, z2, res, events, ts, *self._profile_consts, st.season, st.profile, ctx)
        forecast = st.forecast[idx]
        y, model = self.cell.step(z, st.model[idx])
        st.model[idx], st.forecast[idx] = model, y
        share = shares(z2)[1] if events.any() else z2  # read only for alert events
        return StepResult(res[:, 0], res[:, 1], share, events, res[:, 2], res[:, 3]), forecast

    def _score_row(self, st: DetectorState, i: int, x: np.ndarray, t: float | None, novel: bool) -> tuple:
        """edge._rowstep.row_step in Python floats (`novel`: the sample is new for its context): updates
        row i's scoring state (seen included) and returns (event, score, distance, adaptive, first,
        z float32[1, D], squared residuals)."""
        norm = self.normalizer
        if self._one_channel:  # float32 scalar arithmetic: the same IEEE operations, a tenth of the calls
            zf = (x[0] - self._mean0) / self._std0
            z = np.array([[zf]], np.float32)
            residual = [float(zf - st.forecast[i, 0])]
        else:
            z = ((x - norm.mean) / norm.std)[None]  # float32[1, D], as Normalizer.normalize computes it
            residual = (z[0] - st.forecast[i]).tolist()
        seen = int(st.seen[i])
        live = seen > self.warmup
        scorer = self.scorer
        distance, z2 = scorer.distance_one(residual)
        score = scorer.score_one(distance) if live else 0.0
        ext = st.extent[i]
        (lo, hi), xs = ext.tolist(), x.tolist()
        if any(v < a or v > b for v, a, b in zip(xs, lo, hi)):
            m = self.adaptive.novelty_margin
            margins = [m * (b - a) if math.isfinite(b - a) else 0.0 for a, b in zip(lo, hi)]
            novel = novel or any(v < a - g or v > b + g for v, a, b, g in zip(xs, lo, hi, margins))
            np.minimum(ext[0], x, out=ext[0])
            np.maximum(ext[1], x, out=ext[1])
        surprise = scorer.log_survival_one(distance, score) if live else 0.0  # unused while warming up
        pr = self.daily
        if pr is None:
            adaptive, first, _ = self.adaptive.advance_one(st.adapt[i], surprise, live, novel)
        else:
            profile = st.profile[i]
            extra, k = pr.score_one(st.season[i], profile, t, xs, live, self.adaptive)
            adaptive, first, own = self.adaptive.advance_one(st.adapt[i], surprise, live, novel, extra)
            if k >= 0 and own < pr.gate and not novel:
                pr.learn_one(profile, k, xs)
        event = alert_step_one(self.alert_config, st.alerts, i, adaptive if self._on_adaptive else score)
        st.seen[i] = seen + 1
        return event, score, distance, adaptive, first, z, z2

    def run(self, values: np.ndarray, timestamps: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Score one recorded stream values float[T, D] (timestamps float[T], epoch seconds) sample by
        sample, as the runtime would."""
        values = np.ascontiguousarray(values, np.float32)
        if values.ndim != 2 or values.shape[1] != self.cell.input_size:
            raise DataError(f"Detector.run needs values float[T, {self.cell.input_size}] "
                            f"({', '.join(self.artifact.features)}), got shape {list(values.shape)}")
        self._timestamps(timestamps)
        ts = [None] * len(values) if timestamps is None else np.asarray(timestamps, np.float64).tolist()
        if len(ts) != len(values):
            raise DataError(f"Detector.run: {len(ts)} timestamps for {len(values)} rows")
        st = self.init(1)
        n = len(values)
        score, distance, adaptive, first = (np.empty(n) for _ in range(4))
        events, active = np.empty(n, np.int8), np.empty(n, bool)
        forecast = np.empty(values.shape, np.float32)
        for t in range(n):
            r = self.step_row(st, 0, values[t], ts[t])
            score[t], distance[t], adaptive[t], first[t], events[t] = r.score, r.distance, r.adaptive, r.first, r.event
            active[t] = st.alerts.active[0]
            forecast[t] = st.forecast[0]
        return {"score": score, "events": events, "distance": distance, "adaptive": adaptive, "first": first,
                "active": active, "forecast": self.normalizer.denormalize(forecast)}  # of the next sample, raw
