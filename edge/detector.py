"""One detector step for B streams: normalise, score the residual of the last forecast (calibrated,
and drift-adaptive), advance the alert machine, step the model. The runtime, the evaluation and
`rnnedge detect` all run this."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .alerts import AlertState, alert_step
from .artifact import Artifact
from .cell import Cell, init_state
from .errors import ArtifactError, DataError
from .scoring import Adaptive


@dataclass
class DetectorState:
    """Everything a stream carries between samples; the caller owns and checkpoints it."""

    model: np.ndarray     # float32[B, S]
    forecast: np.ndarray  # float32[B, D]: the forecast of this sample, made at the previous one
    seen: np.ndarray      # int64[B]: samples stepped since the zero state
    alerts: AlertState
    adapt: np.ndarray     # float64[B, 4]: the adaptive score's running statistics (scoring.Adaptive)
    extent: np.ndarray    # float32[B, 2, D]: the lowest and highest raw value seen (training range included)


@dataclass(frozen=True)
class StepResult:
    score: np.ndarray     # float64[B] in [0, 1]; 0 during warm-up
    distance: np.ndarray  # float32[B]
    share: np.ndarray     # float32[B, D]: each channel's share of the squared distance
    events: np.ndarray    # int8[B]: alerts.RAISED, alerts.CLEARED or alerts.NONE
    adaptive: np.ndarray  # float64[B] in [0, 1): surprise relative to the stream's own recent scores
    first: np.ndarray     # float64[B]: `adaptive` where it starts an episode, damped elsewhere


class Detector:
    """Serves an artifact with the numpy reference cell at `precision` (the artifact's by default),
    or with `cell`, any step function of the same contract (an emitted target's interpreter)."""

    def __init__(self, artifact: Artifact, precision: str | None = None, *, cell: Cell | None = None) -> None:
        self.artifact = artifact
        self.cell = cell if cell is not None else artifact.cell(precision)
        self.normalizer = artifact.normalizer
        self.scorer = artifact.scorer
        self.alert_config = artifact.alerts
        self.warmup = int(artifact.manifest.get("warmup", 0))
        self.adaptive = Adaptive.from_dict(artifact.manifest.get("adaptive") or {})
        d = self.cell.input_size
        ext = artifact.manifest.get("extent")  # the training rows' range; absent in older artifacts
        try:
            self.extent = np.array([ext["min"], ext["max"]], np.float32) if ext else \
                np.array([[np.inf] * d, [-np.inf] * d], np.float32)
        except (KeyError, TypeError, ValueError):
            self.extent = None
        if self.extent is None or self.extent.shape != (2, d):
            raise ArtifactError(f"{artifact.path}/manifest.json: extent must hold min and max of {d} channel(s)")

    def init(self, batch: int = 1) -> DetectorState:
        d = self.cell.input_size
        return DetectorState(init_state(self.cell, batch), np.zeros((batch, d), np.float32),
                             np.zeros(batch, np.int64), AlertState.zeros(batch), Adaptive.zeros(batch),
                             np.repeat(self.extent[None], batch, axis=0))

    def step(self, st: DetectorState, x: np.ndarray) -> tuple[DetectorState, StepResult]:
        """x: float32[B, D] raw sensor values (not normalised)."""
        z = self.normalizer.normalize(x)
        distance, share = self.scorer.distance(z - st.forecast)
        score = self.scorer.score(distance)
        live = st.seen > self.warmup  # else no forecast yet, or one from a cold state
        score[~live] = 0.0
        lo, hi = st.extent[:, 0], st.extent[:, 1]
        novel = ((x < lo) | (x > hi)).any(axis=1)
        extent = np.stack([np.minimum(lo, x), np.maximum(hi, x)], axis=1) if novel.any() else st.extent
        log_surv = self.scorer.log_survival(distance, score)
        adaptive, first, adapt = self.adaptive.step(st.adapt, log_surv, live, novel)
        alerts, events = alert_step(self.alert_config, st.alerts, score)
        forecast, model = self.cell.step(z, st.model)
        return (DetectorState(model, forecast, st.seen + 1, alerts, adapt, extent),
                StepResult(score, distance, share, events, adaptive, first))

    def run(self, values: np.ndarray) -> dict[str, np.ndarray]:
        """Score one recorded stream values float[T, D] sample by sample, as the runtime would."""
        values = np.asarray(values, np.float32)
        if values.ndim != 2 or values.shape[1] != self.cell.input_size:
            raise DataError(f"Detector.run needs values float[T, {self.cell.input_size}] "
                            f"({', '.join(self.artifact.features)}), got shape {list(values.shape)}")
        st = self.init(1)
        out = {"score": np.empty(len(values)), "events": np.empty(len(values), np.int8),
               "distance": np.empty(len(values), np.float32), "adaptive": np.empty(len(values)),
               "first": np.empty(len(values)), "active": np.empty(len(values), bool),
               "forecast": np.empty(values.shape, np.float32)}
        for t in range(len(values)):
            st, r = self.step(st, values[t:t + 1])
            out["score"][t], out["events"][t], out["distance"][t] = r.score[0], r.events[0], r.distance[0]
            out["adaptive"][t], out["first"][t], out["active"][t] = r.adaptive[0], r.first[0], st.alerts.active[0]
            out["forecast"][t] = st.forecast[0]
        out["forecast"] = self.normalizer.denormalize(out["forecast"])  # of the next sample, raw units
        return out
