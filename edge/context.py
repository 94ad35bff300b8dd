"""Contextual novelty: a level that the stream has not reached with the shape it is in now.

The forecaster calls routine what it was trained on. A burst of spikes no taller than the ones the
training rows showed, a level that rises for an hour but stays inside the training range: each
step is something the model has seen, so its residual stays small, and the value is inside the
range the novelty floor watches. What is new is the level for its context. This channel sees that.

Each channel's values are cut into blocks of `block` samples (`fit`: the training rows make
SHAPES windows of `window` blocks), and each block is reduced to its extreme: the block's
largest or smallest value, whichever lies farther from the running average of block means (the
average halves toward each new block mean), so that a spike survives and a flat stretch gives its
level. The extreme is placed on the training range: (extreme - lo) / span, where lo and span are
the training rows' minimum and width (the manifest's `extent`, not stored twice). Every closed block makes a window of the last `window`
levels; its shape is the window less its minimum, divided by its own width (all zeros for a flat
window), and its level is its last block's. A stream keeps the last `memory` windows it has made.

When a block closes after the stream has made as many blocks as the training rows (`after`, so
that the memory holds at least what training saw), its window is compared with the memory: the
`neighbours` windows nearest in shape (mean absolute difference) give a range of levels, and a
level outside that range by more than `margin` of the training span is novel. The sample that
closes the block is flagged; the flag joins the novelty of values outside everything seen
(`scoring.Adaptive`: the novelty floor, if the forecaster's z is at least `novelty_z`). Then the
window joins the memory, replacing the oldest.

Nothing here knows a stream's future: the memory holds what the stream showed, the range is the
training rows'. A stream's first `after` blocks make no flags.

Measured on NAB (docs/nab.md, "A level new for its shape"), the int8 ESN's standard score rose from
70.27 to 71.6-71.7 (mean over reservoir seeds 0-2) over a grid of neighbours and margins.
Comparing the level with all windows of the memory instead of the nearest in shape gains nothing:
the shape is the context.

Per-stream state: float64[B, D, 6 + window] (samples in the open block, their sum, max and min,
the running average of block means, closed blocks, the last `window` levels) and the memory
float32[B, D, memory, window + 1] (shape, level).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ArtifactError, ConfigError
from .validation import check_float, check_int

SHAPES = 13  # windows of `window` blocks the training rows make: the block is rows // (SHAPES * window)
_COUNT, _SUM, _MAX, _MIN, _AVG, _BLOCKS, _LEVELS = range(7)


@dataclass(frozen=True)
class ContextNovelty:
    block: int           # samples per block
    after: int           # closed blocks before the first judgement: the training rows' blocks
    lo: np.ndarray       # float64[D]: the training rows' minimum per channel
    span: np.ndarray     # float64[D]: their width (1 where the rows were constant)
    window: int = 8
    neighbours: int = 60
    memory: int = 1024
    margin: float = 0.1

    def __post_init__(self) -> None:
        check_int("ContextNovelty", "block", self.block, 1, 10_000_000)
        check_int("ContextNovelty", "after", self.after, 0, 1_000_000_000)
        check_int("ContextNovelty", "window", self.window, 2, 256)
        check_int("ContextNovelty", "neighbours", self.neighbours, 1, 1_000_000)
        check_int("ContextNovelty", "memory", self.memory, self.neighbours, 1_000_000)
        check_float("ContextNovelty", "margin", self.margin, 0.0, 1e6)
        lo, span = np.asarray(self.lo, np.float64), np.asarray(self.span, np.float64)
        if lo.ndim != 1 or lo.shape != span.shape or not (np.isfinite(lo).all() and np.isfinite(span).all()
                                                           and (span > 0).all()):
            raise ConfigError(f"ContextNovelty: lo and span must hold one finite value per channel, span "
                              f"positive; got lo {lo.tolist()}, span {span.tolist()}")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "span", span)
        object.__setattr__(self, "_channels", list(zip(lo.tolist(), span.tolist())))

    @classmethod
    def fit(cls, values: np.ndarray, *, margin: float = 0.1, window: int = 8, neighbours: int = 60,
            memory: int = 1024) -> tuple["ContextNovelty | None", str]:
        """From the training rows float[N, D]: the block that cuts them into SHAPES windows, their
        range; or None and the reason there is none."""
        values = np.asarray(values, np.float64)
        n = len(values)
        block = n // (SHAPES * window)
        if block < 1:
            return None, f"{n} training rows; contextual novelty needs {SHAPES * window}"
        return cls(block, n // block, *_range(values.min(axis=0), values.max(axis=0)), window, neighbours, memory,
                   margin), ""

    def describe(self) -> str:
        return (f"blocks of {self.block} samples, windows of {self.window}, {self.neighbours} neighbours "
                f"of {self.memory}, margin {self.margin:g}")

    def same_cut(self, other: "ContextNovelty") -> bool:
        """Whether `other` makes the same blocks and windows, so a stream's memory carries over."""
        return (self.block, self.window, self.memory, self.lo.tolist(), self.span.tolist()) == (
            other.block, other.window, other.memory, other.lo.tolist(), other.span.tolist())

    # --- state ---------------------------------------------------------------------------------------
    def zeros(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """New streams' state: (float64[B, D, 6 + window], memory float32[B, D, memory, window + 1])."""
        d = self.lo.size
        return (np.zeros((batch, d, _LEVELS + self.window)),
                np.zeros((batch, d, self.memory, self.window + 1), np.float32))

    # --- the steps: the batched one (numpy) and one stream's (Python floats) agree exactly ------------
    def observe(self, head: np.ndarray, memory: np.ndarray, x: np.ndarray, rows: np.ndarray | None = None
                ) -> np.ndarray:
        """Raw x float32[B, D] into the open blocks of the streams in `rows` of head and memory (all
        B of them without rows), updated in place. Returns bool[B]: a block closed on a level new for
        its shape (any channel)."""
        x64 = x.astype(np.float64)
        h = head if rows is None else head[rows]
        first = h[:, :, _COUNT] == 0
        h[:, :, _MAX] = np.where(first, x64, np.maximum(h[:, :, _MAX], x64))
        h[:, :, _MIN] = np.where(first, x64, np.minimum(h[:, :, _MIN], x64))
        h[:, :, _SUM] += x64
        h[:, :, _COUNT] += 1
        flags = np.zeros(len(x), bool)
        for b, c in zip(*np.nonzero(h[:, :, _COUNT] >= self.block)):
            flags[b] |= self._close(h[b, c], memory[b if rows is None else rows[b], c], c)
        if rows is not None:
            head[rows] = h
        return flags

    def observe_one(self, head: np.ndarray, memory: np.ndarray, xs: list[float]) -> bool:
        """`observe` for one stream: head float64[D, 6 + window], memory its rows; xs its raw values.
        edge._rowstep.context_add does the accumulation in C; `close_full` the rest."""
        full = False
        for h, v in zip(head, xs):
            n, total, hi, lo = h[:4].tolist()
            if n == 0:
                hi = lo = v
            h[:4] = n + 1, total + v, max(hi, v), min(lo, v)
            full |= n + 1 >= self.block
        return full and self.close_full(head, memory)

    def close_full(self, head: np.ndarray, memory: np.ndarray) -> bool:
        """Close one stream's full blocks (head float64[D, H], memory its rows): any novel."""
        novel = False
        for c in range(len(head)):
            if head[c, _COUNT] >= self.block:
                novel |= self._close(head[c], memory[c], c)
        return novel

    def _close(self, h: np.ndarray, memory: np.ndarray, c: int) -> bool:
        """Close channel c's block: its extreme joins the window; judge the window, then remember it."""
        _, total, hi, lo, avg, blocks = h[:_LEVELS].tolist()
        mean = total / self.block
        avg = mean if blocks == 0 else (avg + mean) / 2
        extreme = hi if abs(hi - avg) >= abs(lo - avg) else lo
        base, span = self._channels[c]
        w = self.window
        levels = h[_LEVELS:]
        levels[:-1] = levels[1:].copy()
        levels[-1] = (extreme - base) / span
        blocks += 1
        h[:_LEVELS] = 0.0, 0.0, 0.0, 0.0, avg, blocks
        made = int(blocks) - w + 1  # windows made, this one included
        if made < 1:
            return False
        shape = levels - levels.min()
        top = shape.max()
        if top > 0:
            shape = shape / top
        level = float(levels[-1])
        stored = min(made - 1, self.memory)
        novel = False
        if blocks > self.after and stored >= self.neighbours:
            dist = np.abs(memory[:stored, :w] - shape).mean(axis=1)
            near = memory[np.argpartition(dist, self.neighbours - 1)[:self.neighbours], w]
            novel = level < float(near.min()) - self.margin or level > float(near.max()) + self.margin
        slot = memory[(made - 1) % self.memory]
        slot[:w], slot[w] = shape, level
        return novel

    # --- the manifest --------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The manifest's section; the range is the manifest's `extent`, which `from_dict` reads."""
        return {"block": self.block, "after": self.after, "window": self.window, "neighbours": self.neighbours,
                "memory": self.memory, "margin": self.margin}

    @classmethod
    def from_dict(cls, d: dict | None, extent: np.ndarray) -> "ContextNovelty | None":
        """The section `d`, on the training range extent float[2, D] (the manifest's min and max)."""
        if d is None:
            return None
        try:
            return cls(d["block"], d["after"], *_range(*np.asarray(extent, np.float64)), d["window"],
                       d["neighbours"], d["memory"], float(d["margin"]))
        except (KeyError, TypeError, ValueError, ConfigError) as e:
            raise ArtifactError(f"manifest.json: context_novelty section: {e}") from None


def _range(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, span) of a range per channel; a constant channel spans 1."""
    return lo, np.where(hi > lo, hi - lo, 1.0)


def disabled_state(batch: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The state arrays of a model without contextual novelty: empty, of the right ranks."""
    return np.zeros((batch, channels, 0)), np.zeros((batch, channels, 0, 0), np.float32)
