"""The alert state machine with hysteresis, vectorised over B streams.

A stream raises after `raise_after` consecutive scores >= threshold, stays raised (one alert per
episode) until `clear_after` consecutive scores < clear_threshold, then ignores further raises for
`cooldown` samples. `source` says which score it watches: the calibrated one (a probability under
the training data's residuals: threshold 1 - false-alarm rate) or the drift-adaptive one
(`scoring.Adaptive`: surprise relative to the stream's own recent history).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import ArtifactError
from .validation import check_choice, check_float, check_int

NONE, RAISED, CLEARED = 0, 1, -1
SOURCES = ("calibrated", "adaptive")


@dataclass(frozen=True)
class AlertConfig:
    threshold: float = 0.999
    clear_threshold: float = 0.99
    raise_after: int = 3
    clear_after: int = 5
    cooldown: int = 0
    source: str = "calibrated"

    def __post_init__(self) -> None:
        check_choice("AlertConfig", "source", self.source, SOURCES)
        check_float("AlertConfig", "threshold", self.threshold, 0.0, 1.0, lo_open=True)
        check_float("AlertConfig", "clear_threshold", self.clear_threshold, 0.0, self.threshold)
        check_int("AlertConfig", "raise_after", self.raise_after, 1, 100_000)
        check_int("AlertConfig", "clear_after", self.clear_after, 1, 100_000)
        check_int("AlertConfig", "cooldown", self.cooldown, 0, 10_000_000)

    @classmethod
    def for_false_alarm_rate(cls, rate: float, **kwargs) -> "AlertConfig":
        """Threshold at score 1 - rate (scores are calibrated probabilities); clear at 1 - 10 rate."""
        check_float("AlertConfig", "false_alarm_rate", rate, 0.0, 0.1, lo_open=True)
        return cls(threshold=1.0 - rate, clear_threshold=1.0 - min(10.0 * rate, 0.5), **kwargs)

    @classmethod
    def on_adaptive(cls, threshold: float, **kwargs) -> "AlertConfig":
        """Watch the adaptive score: raise at `threshold`, clear under half of it."""
        check_float("AlertConfig", "adaptive threshold", threshold, 0.0, 1.0, lo_open=True, hi_open=True)
        return cls(threshold=threshold, clear_threshold=threshold / 2, source="adaptive", **kwargs)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AlertConfig":
        try:
            return cls(**d)
        except (TypeError, ValueError) as e:
            raise ArtifactError(f"manifest.json: alerts section: {e}") from None


@dataclass
class AlertState:
    """Per-stream counters; the caller owns it (the runtime checkpoints it)."""

    active: np.ndarray    # bool[B]
    above: np.ndarray     # int32[B] consecutive scores >= threshold while inactive
    below: np.ndarray     # int32[B] consecutive scores < clear_threshold while active
    cooldown: np.ndarray  # int32[B] samples left before a new raise is allowed

    @classmethod
    def zeros(cls, batch: int) -> "AlertState":
        z = lambda: np.zeros(batch, np.int32)  # noqa: E731
        return cls(np.zeros(batch, bool), z(), z(), z())


def alert_step(cfg: AlertConfig, st: AlertState, scores: np.ndarray) -> tuple[AlertState, np.ndarray]:
    """Advance every stream by one score. Returns the new state and events int8[B] (RAISED, CLEARED, NONE)."""
    hot = scores >= cfg.threshold
    if not hot.any() and not st.active.any():  # the common case, in a few operations: nothing to count
        cooldown = np.maximum(st.cooldown - 1, 0).astype(np.int32) if st.cooldown.any() else st.cooldown.copy()
        zeros = np.zeros(len(scores), np.int32)
        return AlertState(st.active.copy(), zeros, zeros.copy(), cooldown), np.zeros(len(scores), np.int8)
    cool = scores < cfg.clear_threshold
    idle = ~st.active
    above = np.where(idle & hot, st.above + 1, 0).astype(np.int32)
    below = np.where(st.active & cool, st.below + 1, 0).astype(np.int32)
    cooldown = np.where(idle, np.maximum(st.cooldown - 1, 0), st.cooldown).astype(np.int32)
    raised = idle & (above >= cfg.raise_after) & (cooldown == 0)
    cleared = st.active & (below >= cfg.clear_after)
    active = (st.active & ~cleared) | raised
    above[raised] = 0
    below[cleared | raised] = 0
    cooldown[cleared] = cfg.cooldown
    events = np.where(raised, RAISED, np.where(cleared, CLEARED, NONE)).astype(np.int8)
    return AlertState(active, above, below, cooldown), events


def alert_step_one(cfg: AlertConfig, st: AlertState, i: int, score: float) -> int:
    """`alert_step` for stream i alone, in Python scalars, updating st's row i in place. Returns its
    event (RAISED, CLEARED or NONE)."""
    active, above, below, cooldown = bool(st.active[i]), int(st.above[i]), int(st.below[i]), int(st.cooldown[i])
    hot = score >= cfg.threshold
    if not hot and not active:
        if above or below or cooldown:
            st.above[i] = st.below[i] = 0
            st.cooldown[i] = max(cooldown - 1, 0)
        return NONE
    event = NONE
    if active:
        below = below + 1 if score < cfg.clear_threshold else 0
        above = 0
        if below >= cfg.clear_after:
            active, below, cooldown, event = False, 0, cfg.cooldown, CLEARED
    else:
        above = above + 1 if hot else 0
        below = 0
        cooldown = max(cooldown - 1, 0)
        if above >= cfg.raise_after and cooldown == 0:
            active, above, event = True, 0, RAISED
    st.active[i], st.above[i], st.below[i], st.cooldown[i] = active, above, below, cooldown
    return event
