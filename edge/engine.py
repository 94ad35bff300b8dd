"""The runtime's engine: one detector state per stream, samples of many streams stepped as one batch.

Per-stream state lives in growing arrays, one row (slot) per stream: model state, the forecast of the
next sample, samples seen, the alert machine's counters, the last timestamp. A stream gets a slot on
its first sample. Samples that arrive together are stepped in rounds: round k holds the k-th
waiting sample of every stream, so one `Detector.step` serves all of them and each stream still
sees its samples in order.

Policies, each counted in `Engine.counters`:
- a sample whose timestamp is not after its stream's last one is refused (`stale`);
- a gap longer than `max_gap_s` restarts the stream's model from the zero state (`gaps`): a forecast
  across a hole is meaningless, so the stream re-warms; its alert machine carries on;
- a new stream beyond `max_streams` is refused (`refused_streams`), unless a stream idle for longer
  than `idle_expiry_s` (wall clock) can be expired to make room; `expire()` drops idle streams.

`checkpoint()`/`restore()` carry all of it (one atomic file); `swap()` changes the model between
batches and keeps every stream's alert machine and timestamps.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .alerts import CLEARED, NONE, RAISED, AlertState
from .artifact import atomic_write
from .detector import Detector, DetectorState
from .errors import ConfigError, DataError
from .scoring import Adaptive
from .validation import check_float, check_int

CHECKPOINT_FORMAT = "rnnedge-checkpoint"
# 2: the adaptive score's state gained a column; 3: the daily profile's state; 4: the adaptive
# score's fatigue load; 5: contextual novelty's blocks and memory. Older versions are upgraded on
# restore (no profile learned yet, no load, no memory).
CHECKPOINT_VERSION = 5
EVENT_NAMES = {RAISED: "raised", CLEARED: "cleared"}
_ARRAYS = ("model", "forecast", "seen", "active", "above", "below", "cooldown", "adapt", "extent", "last_ts",
           "season", "profile", "context", "memory")


@dataclass(frozen=True)
class EngineConfig:
    max_streams: int = 4096
    idle_expiry_s: float = 0.0   # 0: streams never expire
    max_gap_s: float = 0.0       # 0: no gap restarts the model
    top_channels: int = 3        # channels named in an alert, by share of the anomaly distance

    def __post_init__(self) -> None:
        check_int("EngineConfig", "max_streams", self.max_streams, 1, 10_000_000)
        check_float("EngineConfig", "idle_expiry_s", self.idle_expiry_s, 0.0, 1e9)
        check_float("EngineConfig", "max_gap_s", self.max_gap_s, 0.0, 1e12)
        check_int("EngineConfig", "top_channels", self.top_channels, 1, 1000)


class Outcome:
    """What one `process` call produced, in processing order. (A plain class with slots: one is
    made per call, and a dataclass with six list factories costs twice as much.)"""

    __slots__ = ("streams", "ts", "scores", "adaptive", "events", "rejected")

    def __init__(self) -> None:
        self.streams: list = []   # per scored sample: stream id
        self.ts: list = []        # its timestamp
        self.scores: list = []    # its calibrated score
        self.adaptive: list = []  # its drift-adaptive score
        self.events: list = []    # alert payloads (dicts) for raise/clear events
        self.rejected: list = []  # (message index, row index, reason) per refused sample


class Engine:
    def __init__(self, detector: Detector, config: EngineConfig = EngineConfig(), *, clock=time.monotonic) -> None:
        self.detector = detector
        self.config = config
        self.clock = clock
        self.features = list(detector.artifact.features)
        self._width = (len(self.features),)
        self.slots: dict[str, int] = {}
        self.counters = {"samples": 0, "stale": 0, "gaps": 0, "refused_streams": 0, "expired": 0,
                         "raised": 0, "cleared": 0}
        self._free: list[int] = []
        self._alloc(16)

    # --- slots -------------------------------------------------------------------------------------
    def _alloc(self, n: int) -> None:
        s, d = self.detector.cell.state_size, self.detector.cell.input_size
        self.model = np.zeros((n, s), np.float32)
        self.forecast = np.zeros((n, d), np.float32)
        self.seen = np.zeros(n, np.int64)
        self.active = np.zeros(n, bool)
        self.above = np.zeros(n, np.int32)
        self.below = np.zeros(n, np.int32)
        self.cooldown = np.zeros(n, np.int32)
        self.adapt = Adaptive.zeros(n)
        self.extent = np.repeat(self.detector.extent[None], n, axis=0)
        self.season, self.profile = self.detector.profile_zeros(n)
        self.context, self.memory = self.detector.context_zeros(n)
        self.last_ts = np.full(n, -np.inf)
        self.last_wall = np.zeros(n)
        self._free = list(range(n - 1, -1, -1))
        self._bind()

    def _bind(self) -> None:
        """The slot arrays as one DetectorState, for `Detector.step_row` to update a row in place."""
        self._rows = DetectorState(self.model, self.forecast, self.seen,
                                   AlertState(self.active, self.above, self.below, self.cooldown),
                                   self.adapt, self.extent, self.season, self.profile, self.context, self.memory)

    def _grow(self) -> None:
        old = {name: getattr(self, name) for name in (*_ARRAYS, "last_wall")}
        n = len(self.seen)
        self._alloc(2 * n)
        for name, a in old.items():
            getattr(self, name)[:n] = a
        self._free = list(range(2 * n - 1, n - 1, -1))

    def _reset(self, i: int, *, whole: bool) -> None:
        """Restart slot i's model from the zero state; with `whole`, everything (a new stream)."""
        self.model[i] = 0.0
        self.forecast[i] = 0.0
        self.seen[i] = 0
        if whole:
            self.active[i] = False
            self.above[i] = self.below[i] = self.cooldown[i] = 0
            self.adapt[i] = Adaptive.zeros(1)[0]
            self.extent[i] = self.detector.extent
            (self.season[i],), (self.profile[i],) = self.detector.profile_zeros(1)
            (self.context[i],), (self.memory[i],) = self.detector.context_zeros(1)
            self.last_ts[i] = -np.inf

    def _slot(self, stream: str, now: float) -> int | None:
        i = self.slots.get(stream)
        if i is not None:
            return i
        if len(self.slots) >= self.config.max_streams and not self.expire(now, limit=1):
            return None
        if not self._free:
            self._grow()
        i = self._free.pop()
        self._reset(i, whole=True)
        self.slots[stream] = i
        return i

    def expire(self, now: float | None = None, *, limit: int | None = None) -> list[str]:
        """Drop streams idle (wall clock) for longer than idle_expiry_s, oldest first; their ids."""
        if not self.config.idle_expiry_s or not self.slots:
            return []
        now = self.clock() if now is None else now
        idle = sorted((self.last_wall[i], s) for s, i in self.slots.items()
                      if now - self.last_wall[i] > self.config.idle_expiry_s)
        gone = [s for _, s in idle[:limit]]
        for s in gone:
            self._free.append(self.slots.pop(s))
        self.counters["expired"] += len(gone)
        return gone

    # --- stepping ----------------------------------------------------------------------------------
    def process(self, messages: list[tuple[str, np.ndarray, np.ndarray]]) -> Outcome:
        """messages: (stream, ts float64[R], values float32[R, D]) in arrival order."""
        out = Outcome()
        now = self.clock()
        if not messages:
            return out
        if len(messages) == 1 and len(messages[0][1]) == 1:  # one sample of one stream: the common case
            stream, ts, x = messages[0]
            t = ts.item()
            i = self.slots.get(stream)
            if i is None and (i := self._slot(stream, now)) is None:
                out.rejected.append((0, 0, self._cap_reason()))
            elif t > self.last_ts.item(i):
                self.last_wall[i] = now
                self._step_row(i, stream, t, x, out)
            else:
                out.rejected.append((0, 0, self._stale(t, self.last_ts[i])))
            return out
        streams, stamps, values = zip(*messages)
        try:  # item() and fromiter: a third of the cost of concatenating one-element arrays
            ts = np.fromiter([t.item() for t in stamps], np.float64, len(stamps))
        except ValueError:  # a message with several samples
            ts = None
        if ts is not None and len(set(streams)) == len(streams):
            self._one_round(streams, ts, values, now, out)  # one sample per stream, vectorised
            return out
        chunks: dict[int, list] = {}  # slot -> [(message index, ts, values)] in arrival order
        names: dict[int, str] = {}
        for m, (stream, ts, values) in enumerate(messages):
            i = self._slot(stream, now)
            if i is None:
                out.rejected.extend((m, r, self._cap_reason()) for r in range(len(ts)))
                continue
            chunks.setdefault(i, []).append((m, ts, values))
            names[i] = stream
        slots = list(chunks)
        self.last_wall[slots] = now
        series = [self._in_order(i, chunks[i], out) for i in slots]
        order = sorted(range(len(slots)), key=lambda k: -len(series[k][0]))  # longest first
        depth = len(series[order[0]][0]) if order else 0
        if not depth:
            return out
        d = len(self.features)
        idx = np.array([slots[k] for k in order], np.intp)
        ts = np.zeros((len(order), depth))
        x = np.zeros((len(order), depth, d), np.float32)
        lengths = np.array([len(series[k][0]) for k in order])
        for row, k in enumerate(order):
            t, v = series[k]
            ts[row, :len(t)], x[row, :len(t)] = t, v
        ordered = [names[slots[k]] for k in order]
        for r in range(depth):
            b = int(np.count_nonzero(lengths > r))  # streams with an r-th sample: a prefix, longest first
            if b > 1:
                self._step(idx[:b], ts[:b, r], x[:b, r], ordered[:b], out)
            else:
                self._step_row(int(idx[0]), ordered[0], float(ts[0, r]), x[:1, r], out)
        return out

    def _in_order(self, i: int, chunks: list, out: Outcome) -> tuple[np.ndarray, np.ndarray]:
        """A stream's waiting samples with every one not after its predecessor refused."""
        ts = np.concatenate([t for _, t, _ in chunks])
        values = np.concatenate([v for _, _, v in chunks])
        if values.ndim != 2 or values.shape[1] != len(self.features) or len(values) != len(ts):
            raise DataError(f"values must be float32[R, {len(self.features)}] ({', '.join(self.features)}) with "
                            f"one timestamp per row, got {list(values.shape)} and {len(ts)} timestamps")
        last = self.last_ts[i]
        if ts[0] > last and (len(ts) == 1 or (np.diff(ts) > 0).all()):
            return ts, values
        keep = []
        origin = [(m, r) for m, t, _ in chunks for r in range(len(t))]
        for k, t in enumerate(ts.tolist()):
            if t <= last:
                out.rejected.append((*origin[k], self._stale(t, last)))
            else:
                keep.append(k)
                last = t
        return ts[keep], values[keep]

    def _cap_reason(self) -> str:
        self.counters["refused_streams"] += 1
        return f"stream cap of {self.config.max_streams} streams reached; raise --max-streams or set --idle-expiry"

    def _stale(self, t: float, last: float) -> str:
        self.counters["stale"] += 1
        return f"timestamp {t!r} is not after the stream's last {float(last)!r}"

    def _one_round(self, names: tuple, ts: np.ndarray, values: tuple, now: float, out: Outcome) -> None:
        slots = list(map(self.slots.get, names))
        if None in slots:
            for m, i in enumerate(slots):
                if i is None:
                    slots[m] = self._slot(names[m], now)
        n = len(names)
        x = None
        if self._width == (1,):  # one channel: item() and fromiter, as for the timestamps
            try:
                x = np.fromiter([v.item() for v in values], np.float32, n)[:, None]
            except ValueError:  # a malformed row, which _step names
                pass
        if x is None:
            x = np.concatenate(values)
        if None in slots:
            keep = [m for m, i in enumerate(slots) if i is not None]
            for m in (m for m, i in enumerate(slots) if i is None):
                out.rejected.append((m, 0, self._cap_reason()))
            ts, x, names, slots = ts[keep], x[keep], [names[m] for m in keep], [slots[m] for m in keep]
        else:
            keep = range(n)
        idx = np.fromiter(slots, np.intp, len(slots))
        last = self.last_ts[idx]
        stale = ts <= last
        if stale.any():
            for k in np.flatnonzero(stale):
                out.rejected.append((keep[k], 0, self._stale(float(ts[k]), last[k])))
            fresh = ~stale
            idx, ts, x = idx[fresh], ts[fresh], x[fresh]
            names = [n for n, ok in zip(names, fresh) if ok]
        self.last_wall[idx] = now
        if len(idx) == 1:
            self._step_row(int(idx[0]), names[0], float(ts[0]), x, out)
        elif len(idx):
            self._step(idx, ts, x, names, out)

    def _check(self, x: np.ndarray) -> None:
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise DataError(f"values must be float32[R, {len(self.features)}] ({', '.join(self.features)}), "
                            f"got {list(x.shape)}")

    def _gap(self, i: int, t: float) -> None:
        """Restart slot i's model when sample t comes more than max_gap_s after the stream's last."""
        last = float(self.last_ts[i])
        if t - last > self.config.max_gap_s and math.isfinite(last):
            self._reset(i, whole=False)
            self.counters["gaps"] += 1

    def _step_row(self, i: int, stream: str, t: float, x: np.ndarray, out: Outcome) -> None:
        """Step one stream (slot i) by one sample x float32[1, D], in place: the one-stream path."""
        if x.shape[1:] != self._width:
            self._check(x)
        if self.config.max_gap_s:
            self._gap(i, t)
        r = self.detector.step_row(self._rows, i, x[0], t)
        self.last_ts[i] = t
        self.counters["samples"] += 1
        out.streams.append(stream)
        out.ts.append(t)
        out.scores.append(r.score)
        out.adaptive.append(r.adaptive)
        if r.event:
            out.events.append(self._alert(stream, t, r.event, x[0], r.forecast, r.score, r.distance,
                                          np.array(r.share), r.adaptive))

    def _step(self, idx: np.ndarray, ts: np.ndarray, x: np.ndarray, names: list[str], out: Outcome) -> None:
        """Step the streams in slots `idx` by one sample each, batched."""
        self._check(x)
        gap = self.config.max_gap_s
        if gap:
            last = self.last_ts[idx]
            jumped = (ts - last > gap) & np.isfinite(last)
            for i in idx[jumped].tolist():
                self._reset(i, whole=False)
            self.counters["gaps"] += int(jumped.sum())
        if self.detector.compiled:  # the scoring state updated in place in the slot arrays
            res, forecast = self.detector.step_slots(self._rows, idx, x, ts)
        else:
            st = DetectorState(self.model[idx], self.forecast[idx], self.seen[idx],
                               AlertState(self.active[idx], self.above[idx], self.below[idx], self.cooldown[idx]),
                               self.adapt[idx], self.extent[idx], self.season[idx], self.profile[idx],
                               self.context[idx], self.memory[idx])
            forecast = st.forecast
            new, res = self.detector.step(st, x, ts)
            self.model[idx], self.forecast[idx], self.seen[idx] = new.model, new.forecast, new.seen
            a = new.alerts
            self.active[idx], self.above[idx], self.below[idx], self.cooldown[idx] = (a.active, a.above, a.below,
                                                                                      a.cooldown)
            self.adapt[idx], self.extent[idx], self.season[idx], self.profile[idx] = (new.adapt, new.extent,
                                                                                     new.season, new.profile)
            self.context[idx], self.memory[idx] = new.context, new.memory
        self.last_ts[idx] = ts
        self.counters["samples"] += len(ts)
        out.streams.extend(names)
        out.ts.extend(ts.tolist())
        out.scores.extend(res.score.tolist())
        out.adaptive.extend(res.adaptive.tolist())
        if res.events.any():
            for b in np.flatnonzero(res.events != NONE):
                out.events.append(self._alert(names[b], float(ts[b]), int(res.events[b]), x[b], forecast[b],
                                              float(res.score[b]), float(res.distance[b]), res.share[b],
                                              float(res.adaptive[b])))

    def _alert(self, stream, ts, event, x, forecast, score, distance, share, adaptive) -> dict:
        name = EVENT_NAMES[event]
        self.counters[name] += 1
        art = self.detector.artifact
        top = np.argsort(-share)[: self.config.top_channels]
        expected = self.detector.normalizer.denormalize(forecast[None, :])[0]
        return {"id": f"{stream}@{ts!r}:{name}", "stream": stream, "ts": ts, "event": name,
                "score": score, "adaptive": adaptive, "source": art.alerts.source,
                "threshold": art.alerts.threshold, "distance": distance,
                "channels": [{"name": self.features[c], "share": round(float(share[c]), 4),
                              "value": float(x[c]), "expected": float(expected[c])} for c in top],
                "model_id": art.model_id, "model_kind": art.config.kind}

    # --- model swap and checkpoints -----------------------------------------------------------------
    def swap(self, detector: Detector) -> None:
        """Serve a new model from the next sample on. Same features required. Every stream's model
        state restarts from zero (a state of another model means nothing) and re-warms, and so do the
        adaptive score's statistics (its surprise is another model's); alert machines, value ranges
        and timestamps carry on, so an open alert is neither lost nor raised again. Each stream's daily
        profile carries on where the new model cuts the same period (a day or a week) into the same
        bins (it describes the stream, not the model); its surprise statistics restart. So does each
        stream's contextual-novelty memory, where the new model cuts the same blocks and windows."""
        new = list(detector.artifact.features)
        if new != self.features:
            raise ConfigError(f"the new model takes features {new}; the streams carry {self.features}")
        if detector.cell.state_size != self.model.shape[1]:
            self.model = np.zeros((len(self.seen), detector.cell.state_size), np.float32)
            self._bind()
        self.model[:] = 0.0
        self.forecast[:] = 0.0
        self.seen[:] = 0
        self.adapt[:] = Adaptive.zeros(len(self.seen))
        season, profile = detector.profile_zeros(len(self.seen))
        old, new = self.detector.daily, detector.daily
        if old is not None and new is not None and old.cuts_like(new):
            profile = self.profile
        self.season, self.profile = season, profile
        old, new = self.detector.context, detector.context
        if old is None or new is None or not old.same_cut(new):
            self.context, self.memory = detector.context_zeros(len(self.seen))
        self.detector = detector
        self._bind()

    def checkpoint(self, path: str | Path, extra: dict | None = None) -> None:
        """Write every stream's state, the counters and `extra` to `path` in one atomic replace."""
        order = sorted(self.slots.items(), key=lambda kv: kv[1])
        idx = np.array([i for _, i in order], np.intp)
        meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                "model_id": self.detector.artifact.model_id, "features": self.features,
                "streams": [s for s, _ in order], "counters": self.counters, "extra": extra or {},
                "written": time.time()}
        buf = io.BytesIO()
        np.savez(buf, meta=np.array(json.dumps(meta)), **{n: getattr(self, n)[idx] for n in _ARRAYS})
        atomic_write(Path(path), buf.getvalue())

    def restore(self, path: str | Path) -> dict | None:
        """Load a checkpoint written for this model; returns its `extra`, or None when there is no
        checkpoint. Refuses (ConfigError) one for another model or a damaged file."""
        path = Path(path)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                arrays = {n: z[n] for n in _ARRAYS if n in z.files}
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(f"{path}: not a readable rnnedge checkpoint ({e})") from None
        version = meta.get("version")
        if meta.get("format") != CHECKPOINT_FORMAT or version not in range(1, CHECKPOINT_VERSION + 1):
            raise ConfigError(f"{path}: not an rnnedge checkpoint of version 1 to {CHECKPOINT_VERSION}")
        old = arrays.get("adapt")
        if version < 4 and old is not None and old.ndim == 2 and old.shape[1] in (4, 5):
            # version 1: no novel sample on record (the fifth column starts at -inf); before 4: no load
            first = [np.full((len(old), 1), -np.inf)] if old.shape[1] == 4 else []
            arrays["adapt"] = np.hstack([old, *first, np.zeros((len(old), 1))])
        if version < 3:  # no daily profile learned yet
            arrays["season"], arrays["profile"] = self.detector.profile_zeros(len(meta.get("streams", ())))
        if version < 5:  # no contextual-novelty memory yet
            arrays["context"], arrays["memory"] = self.detector.context_zeros(len(meta.get("streams", ())))
        missing = [n for n in _ARRAYS if n not in arrays]
        if missing:
            raise ConfigError(f"{path}: checkpoint lacks the arrays {', '.join(missing)}")
        if meta["model_id"] != self.detector.artifact.model_id:
            raise ConfigError(f"{path}: checkpoint of model {meta['model_id']}, serving {self.detector.artifact.model_id}")
        n = len(meta["streams"])
        if (any(len(a) != n for a in arrays.values()) or arrays["model"].shape[1:] != self.model.shape[1:]
                or arrays["adapt"].shape[1:] != self.adapt.shape[1:]
                or arrays["profile"].shape[1:] != self.profile.shape[1:]
                or arrays["memory"].shape[1:] != self.memory.shape[1:]
                or arrays["context"].shape[1:] != self.context.shape[1:]):
            raise ConfigError(f"{path}: checkpoint arrays disagree with its stream list or the model's shapes")
        size = 16
        while size < n:
            size *= 2
        self._alloc(size)
        for name, a in arrays.items():
            getattr(self, name)[:n] = a
        self.last_wall[:n] = self.clock()
        self.slots = {s: k for k, s in enumerate(meta["streams"])}
        self._free = list(range(size - 1, n - 1, -1))
        self.counters.update(meta["counters"])
        return meta["extra"]
