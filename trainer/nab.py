"""The Numenta Anomaly Benchmark's scoring rules, vectorised with numpy.

For each file: records before the probationary length min(floor(0.15 n), 750) are not scored.
A record inside a labelled window at index i of a window spanning [left, right] (width w records)
carries the true-positive weight sigma(-(right - i + 1) / w); a record outside carries the
false-positive weight sigma(|i - r| / (w' - 1)) from the end r of the previous window of width w',
or sigma(3) = -1 before any window, where sigma(p) = 2 / (1 + e^{5p}) - 1, and -1 from p >= 3 on.

At a threshold t, the records with anomaly_score >= t are detections. The raw score is
    sum over detected outside records of fp_cost * weight
  + sum over windows of (tp_cost * the earliest detection's weight / sigma(-1), or -fn_cost if none),
and the normalised score is 100 * (raw - null) / (perfect - null), where the null detector misses
every window (-fn_cost each) and the perfect one catches each at its first record (tp_cost each).
One threshold per detector and profile is chosen over the whole corpus (`sweep`): the best raw
score over every distinct anomaly score, the highest such threshold on a tie.

This follows the published description and reproduces Numenta HTM's published scores from its
result files (tests); it is our own code, not NAB's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import DataError


@dataclass(frozen=True)
class Costs:
    tp: float
    fp: float
    fn: float


PROFILES = {
    "standard": Costs(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Costs(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Costs(tp=1.0, fp=0.11, fn=2.0),
}


def probation(n: int) -> int:
    return int(min(math.floor(0.15 * n), 750))


def _sigma(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, np.float64)
    return np.where(p >= 3.0, -1.0, 2.0 / (1.0 + np.exp(np.minimum(5.0 * p, 700.0))) - 1.0)


MAX_TP = float(_sigma(-1.0))


@dataclass(frozen=True)
class FileLabels:
    """What the scorer needs of one file: per record, its sweep weight and its window."""

    name: str
    weight: np.ndarray   # float64[n]: TP weight (unscaled) inside a window, FP weight outside
    window: np.ndarray   # int32[n]: the window's index in the file, -1 outside
    scored: np.ndarray   # bool[n]: after the probationary period

    @property
    def windows(self) -> int:
        """Windows with at least one scored record (the ones that can be hit or missed)."""
        return len(np.unique(self.window[self.scored & (self.window >= 0)]))


def _parse(ts: list[str] | np.ndarray) -> np.ndarray:
    return np.array([np.datetime64(str(t).replace(" ", "T"), "s") for t in ts], "datetime64[s]")


def label_file(name: str, timestamps: np.ndarray, windows: list[tuple[str, str]]) -> FileLabels:
    """timestamps: datetime64[s][n] in file order (as NAB reads it; repeats allowed)."""
    n = len(timestamps)
    weight = np.full(n, -1.0)
    window = np.full(n, -1, np.int32)
    idx = np.arange(n)
    after = 0           # windows are entered in order, each after the previous one's end
    prev_end = prev_width = None
    for k, (start, end) in enumerate(windows):
        s, e = _parse([start, end])
        left = np.flatnonzero((timestamps == s) & (idx >= after))
        if not left.size:
            raise DataError(f"{name}: window {k} starts at {start}, which is not a record of the file")
        left = int(left[0])
        ends = np.flatnonzero(timestamps == e)
        exit_ = ends[ends >= left]
        if not exit_.size:
            raise DataError(f"{name}: window {k} ends at {end}, which is not a record after its start")
        right_first, exit_ = int(ends[0]), int(exit_[0])  # NAB measures from the first record at `end`
        width = float(right_first - left + 1)
        if prev_end is not None:
            gap = idx[after:left]
            weight[after:left] = _sigma(np.abs(prev_end - gap) / (prev_width - 1))
        inside = idx[left:exit_ + 1]
        weight[left:exit_ + 1] = _sigma(-(right_first - inside + 1) / width)
        window[left:exit_ + 1] = k
        prev_end, prev_width, after = exit_, width, exit_ + 1
    if prev_end is not None:
        weight[after:] = _sigma(np.abs(prev_end - idx[after:]) / (prev_width - 1))
    return FileLabels(name, weight, window, idx >= probation(n))


@dataclass(frozen=True)
class Corpus:
    """The NAB data folder: file names in a fixed order and each file's labels."""

    root: Path
    names: list[str]
    labels: dict[str, FileLabels]
    timestamps: dict[str, np.ndarray]

    @classmethod
    def load(cls, root: str | Path) -> "Corpus":
        root = Path(root)
        windows_file = root / "combined_windows.json"
        if not windows_file.is_file():
            raise DataError(f"{root}: no combined_windows.json; point at the NAB folder (data/, labels)")
        windows = json.loads(windows_file.read_text())
        names = sorted(windows)
        labels, stamps = {}, {}
        for name in names:
            path = root / "data" / name
            if not path.is_file():
                raise DataError(f"{path}: listed in combined_windows.json but missing")
            ts = _parse(np.loadtxt(path, delimiter=",", skiprows=1, usecols=0, dtype=str))
            stamps[name] = ts
            labels[name] = label_file(name, ts, windows[name])
        return cls(root, names, labels, stamps)

    def windows(self) -> int:
        return sum(lab.windows for lab in self.labels.values())

    def subset(self, names: list[str]) -> "Corpus":
        """These files alone, in corpus order: normalised against their own windows."""
        wanted = set(names)
        keep = [n for n in self.names if n in wanted]
        return Corpus(self.root, keep, {n: self.labels[n] for n in keep}, {n: self.timestamps[n] for n in keep})


@dataclass(frozen=True)
class FileScore:
    name: str
    score: float
    tp: int
    tn: int
    fp: int
    fn: int
    total: int


def score_file(lab: FileLabels, scores: np.ndarray, costs: Costs, threshold: float) -> FileScore:
    """The raw score of one file's anomaly scores at `threshold`, with NAB's record counts."""
    scores = np.asarray(scores, np.float64)
    if scores.shape != lab.weight.shape:
        raise DataError(f"{lab.name}: {len(scores)} anomaly scores for {len(lab.weight)} records")
    s = lab.scored
    hit = s & (scores >= threshold)
    inside = lab.window >= 0
    fp_part = costs.fp * lab.weight[hit & ~inside].sum()
    win_part = 0.0
    for w in np.unique(lab.window[s & inside]):
        caught = hit & (lab.window == w)
        win_part += costs.tp * lab.weight[caught].max() / MAX_TP if caught.any() else -costs.fn
    tp = int((hit & inside).sum())
    fp = int((hit & ~inside).sum())
    return FileScore(lab.name, float(fp_part + win_part), tp, int((s & ~inside).sum()) - fp, fp,
                     int((s & inside).sum()) - tp, int(s.sum()))


def corpus_score(corpus: Corpus, results: dict[str, np.ndarray], profile: str, threshold: float
                 ) -> tuple[float, list[FileScore]]:
    costs = PROFILES[profile]
    missing = [n for n in corpus.names if n not in results]
    if missing:
        raise DataError(f"no anomaly scores for {len(missing)} corpus file(s), e.g. {missing[0]}")
    rows = [score_file(corpus.labels[n], results[n], costs, threshold) for n in corpus.names]
    return sum(r.score for r in rows), rows


def sweep(corpus: Corpus, results: dict[str, np.ndarray], profile: str) -> tuple[float, float]:
    """The corpus-wide threshold with the best raw score: (threshold, raw score)."""
    costs = PROFILES[profile]
    score, gain, group = [], [], []
    base = 0.0
    offset = 0
    for name in corpus.names:
        lab = corpus.labels[name]
        s = lab.scored
        a = np.asarray(results[name], np.float64)[s]
        w = lab.window[s]
        inside = w >= 0
        score.append(a)
        gain.append(np.where(inside, costs.tp * lab.weight[s] / MAX_TP, costs.fp * lab.weight[s]))
        group.append(np.where(inside, w + offset, -1))
        n_win = len(np.unique(w[inside]))
        base -= costs.fn * n_win
        offset += int(lab.window.max()) + 1 if lab.window.size else 0
    a, g, grp = np.concatenate(score), np.concatenate(gain), np.concatenate(group)
    order = np.argsort(-a, kind="stable")
    a, g, grp = a[order], g[order], grp[order]
    delta = np.where(grp < 0, g, 0.0)
    # a window's part rises to the best weight detected so far: its running maximum, from -fn_cost
    win = np.flatnonzero(grp >= 0)
    by = win[np.argsort(grp[win], kind="stable")]  # each window's records in detection order
    if by.size:
        vals = g[by]
        starts = np.r_[True, grp[by][1:] != grp[by][:-1]]
        seg = np.cumsum(starts) - 1
        run = np.empty_like(vals)
        for k in range(seg[-1] + 1):  # a few hundred windows at most
            m = seg == k
            run[m] = np.maximum.accumulate(np.maximum(vals[m], -costs.fn))
        prev = np.where(starts, -costs.fn, np.r_[-costs.fn, run[:-1]])
        delta[by] = run - prev
    total = base + np.cumsum(delta)
    last = np.r_[a[1:] != a[:-1], True]  # a threshold's score counts every record at or above it
    cand_t, cand_s = np.r_[1.1, a[last]], np.r_[base, total[last]]
    best = int(np.argmax(cand_s))  # the first (highest threshold) on a tie
    return float(cand_t[best]), float(cand_s[best])


def normalise(corpus: Corpus, raw: float, profile: str) -> float:
    costs = PROFILES[profile]
    w = corpus.windows()
    null, perfect = -costs.fn * w, costs.tp * w
    return 100.0 * (raw - null) / (perfect - null)


def read_results(folder: str | Path, detector: str, corpus: Corpus) -> dict[str, np.ndarray]:
    """A detector's NAB-layout result files: <folder>/<category>/<detector>_<name>.csv with an
    anomaly_score column, one row per record of the data file."""
    folder = Path(folder)
    out = {}
    for name in corpus.names:
        cat, base = name.split("/")
        path = folder / cat / f"{detector}_{base}"
        if not path.is_file():
            raise DataError(f"{path}: missing result file for {name}")
        header = path.open().readline().strip().split(",")
        if "anomaly_score" not in header:
            raise DataError(f"{path}: no anomaly_score column (header {header})")
        col = header.index("anomaly_score")
        out[name] = np.loadtxt(path, delimiter=",", skiprows=1, usecols=col, dtype=np.float64, ndmin=1)
    return out
