"""How much of rnnedge's NAB score comes from choosing its scoring settings on the files it scores:
the standard score cross-validated by file.

    .venv/bin/python bench/nab_cv.py [--seeds 0,1,2] [--splits 5] [--float32] [--workers 2] [--out DIR]

The scoring settings (the grid below) were chosen over many sessions by the corpus-wide standard
NAB score: on the labels of the data being scored (docs/nab.md, "What moved the score"). Here every file
is scored by a setting chosen without its labels. The 58 files are split into two halves, each
category split evenly (split 0 alternates the files in name order; the others are drawn at random,
seeded). The setting of the grid with the best standard score on one half (NAB's threshold sweep
and normalisation on that half alone; the defaults win a tie) scores the other half, and the halves
swap. The 58 files, each scored by the setting chosen on the other half, are then scored together
as NAB scores a detector (one corpus-wide threshold): the cross-validated score. Stricter still,
each half at the threshold NAB's sweep chose on the other half: no label of a file chose anything
that scores it. Beside them: the defaults' score, and the grid's best setting on the whole corpus
(the most optimistic choice the grid allows).

The grid holds the values each setting was compared at during development. It cannot undo
choices of structure (that there is a novelty floor, a daily profile, alert fatigue at all), only
of their values; "off" is in the grid for each of them.

Each file's model is trained as `evaluate nab` trains it (the probationary period only) and run
once per reservoir seed and calibration, its forecasts recorded; every setting replays them through
the runtime's own Detector (`ReplayCell`: only the scoring runs again). The replay of the default
setting must reproduce `evaluate nab`'s anomaly scores bit for bit; that is checked first.
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.artifact import load_artifact  # noqa: E402
from edge.data import read_csv  # noqa: E402
from edge.detector import Detector  # noqa: E402
from edge.scoring import Adaptive  # noqa: E402
from edge.specs import ESNConfig  # noqa: E402
from trainer import nab  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.evaluate import score_file  # noqa: E402
from trainer.pipeline import train  # noqa: E402

DATA = ROOT / "data" / "nab"
# each setting's values as compared during development; the first is the default
GRID = {"calibrate_on": ("all", "heldout"),
        "surprise_cap": (20.0, 0.0),
        "novelty": (0.9, 0.7, 0.0),
        "novelty_z": (1.5, 0.0, 2.5),
        "refractory": (200.0, 100.0, 400.0),
        "fatigue": (0.2, 0.0, 0.1, 0.4),
        "profile_weight": (0.6, 0.0, 0.45, 0.8),
        "context_margin": (0.1, -1.0)}  # -1: no contextual novelty


def settings() -> list[dict]:
    """The grid's settings, the defaults first; novelty_z only where there is a novelty floor."""
    out = []
    for values in itertools.product(*GRID.values()):
        s = dict(zip(GRID, values))
        if s["novelty"] == 0.0 and s["novelty_z"] != GRID["novelty_z"][0]:
            continue
        out.append(s)
    return out


def label(s: dict) -> str:
    default = settings()[0]
    diff = [f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in s.items() if v != default[k]]
    return ", ".join(diff) or "the defaults"


class Recorder:
    """A cell that records the forecasts it makes."""

    def __init__(self, cell) -> None:
        self.cell, self.input_size, self.state_size = cell, cell.input_size, cell.state_size
        self.out: list[np.ndarray] = []

    def step(self, x, state):
        y, state = self.cell.step(x, state)
        self.out.append(y.copy())
        return y, state


class ReplayCell:
    """Steps through recorded forecasts float32[T, D]: the state counts the steps."""

    state_size = 1

    def __init__(self, forecasts: np.ndarray) -> None:
        self.forecasts = forecasts
        self.input_size = forecasts.shape[1]

    def step(self, x, state):
        k = int(state[0, 0])
        return self.forecasts[k:k + 1], state + 1


@dataclass
class Recording:
    """One file's trained detector and its forecasts, with the values and timestamps it scored."""

    detector: Detector
    daily: object         # the artifact's daily profile (edge.seasonal.DailyProfile) or None
    context: object       # its contextual novelty (edge.context.ContextNovelty) or None
    forecasts: np.ndarray
    values: np.ndarray
    timestamps: np.ndarray


RECORDINGS: dict[tuple[str, str], Recording] = {}   # (calibrate_on, file) -> Recording; shared by fork
CORPUS: nab.Corpus | None = None
FOLDS: list[tuple[list[str], list[str]]] = []


def record(args: tuple) -> tuple[tuple[str, str], Recording, np.ndarray]:
    """Train one file's model as `evaluate nab` does, run it, and record its forecasts; also score
    the file with `evaluate nab`'s own function, for the bit-for-bit check of the replay."""
    name, cfg, tmp = args
    series = read_csv(DATA / "data" / name, on_unordered="keep", on_missing="keep")
    model_dir = Path(tmp) / f"{cfg.calibrate_on}-{name.replace('/', '_')}"
    art = load_artifact(train(series.head(nab.probation(len(series.values))), cfg, model_dir))
    rec = Recorder(art.cell())
    det = Detector(art, cell=rec)
    det.run(series.values, series.timestamps)
    reference = score_file(series, cfg, Path(tmp) / "check" / model_dir.name)[0] if cfg == TrainConfig(
        model=cfg.model, int8=cfg.int8) else None
    recording = Recording(det, det.daily, det.context, np.concatenate(rec.out), series.values, series.timestamps)
    return (cfg.calibrate_on, name), recording, reference


def replay(s: dict, names: list[str]) -> dict[str, np.ndarray]:
    """The anomaly scores (`first`) of these files under setting s, from the recorded forecasts."""
    adaptive = Adaptive(**{**Adaptive().to_dict(), **{k: s[k] for k in ("surprise_cap", "novelty", "novelty_z",
                                                                        "refractory", "fatigue")}})
    out = {}
    for name in names:
        r = RECORDINGS[(s["calibrate_on"], name)]
        det = r.detector
        det.daily = replace(r.daily, weight=s["profile_weight"]) if r.daily and s["profile_weight"] else None
        m = s["context_margin"]
        det.context = replace(r.context, margin=m) if r.context and m >= 0 else None
        det.adaptive = adaptive  # recompiles the C step's constants, the profile's included
        det.cell = ReplayCell(r.forecasts)
        out[name] = det.run(r.values, r.timestamps)["first"]
    return out


def normalised(corpus: nab.Corpus, results: dict[str, np.ndarray], profile: str = "standard") -> float:
    return nab.normalise(corpus, nab.sweep(corpus, results, profile)[1], profile)


def grade(i: int) -> tuple[int, float, np.ndarray]:
    """Setting i's standard score on the corpus and on each half of each split: float[splits, 2]."""
    results = replay(settings()[i], CORPUS.names)
    halves = np.array([[normalised(CORPUS.subset(h), results) for h in fold] for fold in FOLDS])
    return i, normalised(CORPUS, results), halves


def folds(corpus: nab.Corpus, count: int) -> list[tuple[list[str], list[str]]]:
    """`count` splits of the files into two halves, each category split evenly (an odd one's extra
    file goes to alternate halves); split 0 alternates the files in name order."""
    rng = np.random.default_rng(20261124)
    out = []
    for k in range(count):
        halves: tuple[list[str], list[str]] = ([], [])
        by_cat: dict[str, list[str]] = {}
        for n in corpus.names:
            by_cat.setdefault(n.split("/")[0], []).append(n)
        odd = 0
        for cat, names in sorted(by_cat.items()):
            order = names if k == 0 else [names[j] for j in rng.permutation(len(names))]
            for j, n in enumerate(order):
                halves[(j + odd) % 2].append(n)
            odd += len(names) % 2
        out.append(halves)
    return out


def main() -> None:
    global CORPUS, FOLDS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2", help="reservoir seeds, comma-separated (default 0,1,2)")
    ap.add_argument("--splits", type=int, default=5, help="splits of the corpus into halves (default 5)")
    ap.add_argument("--float32", action="store_true", help="the float32 ESN instead of the int8 one")
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="processes (default: one per core)")
    ap.add_argument("--out", help="also save each seed's scores per setting (whole corpus, halves) as .npz here")
    args = ap.parse_args()
    CORPUS = nab.Corpus.load(DATA)
    FOLDS = folds(CORPUS, args.splits)
    grid = settings()
    precision = "float32" if args.float32 else "int8"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"ESN 200 {precision}; {len(grid)} settings, {args.splits} splits\n")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        t0 = time.perf_counter()
        RECORDINGS.clear()
        model = ESNConfig(input_size=1, seed=seed)
        with tempfile.TemporaryDirectory(prefix="rnnedge-nabcv-") as tmp, \
                mp.get_context("fork").Pool(args.workers) as pool:
            jobs = [(n, TrainConfig(model=model, int8=not args.float32, calibrate_on=c), tmp)
                    for c in GRID["calibrate_on"] for n in CORPUS.names]
            for key, rec, reference in pool.imap_unordered(record, jobs):
                RECORDINGS[key] = rec
                if reference is not None:  # the defaults' model
                    got = replay(grid[0], [key[1]])[key[1]]
                    if not np.array_equal(got, reference):
                        raise SystemExit(f"{key[1]}: the replay differs from evaluate nab's scores "
                                         f"(max {np.abs(got - reference).max():.3g}); nothing compared")
        t1 = time.perf_counter()
        with mp.get_context("fork").Pool(args.workers) as pool:
            graded = sorted(pool.imap_unordered(grade, range(len(grid)), chunksize=4))
        whole = np.array([g[1] for g in graded])
        halves = np.array([g[2] for g in graded])            # [settings, splits, 2]
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            np.savez(Path(args.out) / f"nab_cv_{precision}_seed{seed}.npz", whole=whole, halves=halves,
                     settings=np.array([label(s) for s in grid]))
        cv, strict, picks = [], [], []
        for k, halves_k in enumerate(FOLDS):
            chosen = [int(np.argmax(halves[:, k, f])) for f in (0, 1)]  # argmax: the first (defaults) on a tie
            picks.append(chosen)
            # each half scored by the setting chosen on the other half; NAB's sweep over all 58 files,
            # and (strict) each half at the threshold the sweep chose on the other half
            own = [replay(grid[c], h) for c, h in zip(chosen, halves_k)]
            other = [replay(grid[c], h) for c, h in zip(chosen, halves_k[::-1])]
            cv.append(normalised(CORPUS, {**other[0], **other[1]}))
            raw = sum(nab.corpus_score(CORPUS.subset(h_other), res_other, "standard",
                                       nab.sweep(CORPUS.subset(h), res, "standard")[0])[0]
                      for h, res, h_other, res_other in zip(halves_k, own, halves_k[::-1], other))
            strict.append(nab.normalise(CORPUS, raw, "standard"))
        best = int(np.argmax(whole))
        rows.append((seed, whole[0], np.mean(cv), min(cv), max(cv), np.mean(strict), min(strict), max(strict),
                     whole[best], label(grid[best])))
        print(f"seed {seed}: recorded in {t1 - t0:.0f} s, {len(grid)} settings graded in "
              f"{time.perf_counter() - t1:.0f} s", flush=True)
        print("| split | chosen on half A (scores half B) | chosen on half B (scores half A) | cross-validated | "
              "threshold from the other half too |")
        print("|---|---|---|---:|---:|")
        for k, (ca, cb) in enumerate(picks):
            print(f"| {k} | {label(grid[ca])} | {label(grid[cb])} | {cv[k]:.2f} | {strict[k]:.2f} |")
        print(flush=True)
    print("| reservoir seed | defaults, corpus-tuned | cross-validated, mean (min-max) over splits | "
          "threshold from the other half too | grid's best on the corpus | its setting |")
    print("|---|---:|---:|---:|---:|---|")
    for seed, default, *r, best, what in rows:
        print(f"| {seed} | {default:.2f} | {r[0]:.2f} ({r[1]:.2f}-{r[2]:.2f}) | {r[3]:.2f} ({r[4]:.2f}-{r[5]:.2f}) | "
              f"{best:.2f} | {what} |")
    r = np.array([row[1:9] for row in rows], float)
    print(f"| mean | {r[:, 0].mean():.2f} | {r[:, 1].mean():.2f} | {r[:, 4].mean():.2f} | {r[:, 7].mean():.2f} | |")


if __name__ == "__main__":
    main()
