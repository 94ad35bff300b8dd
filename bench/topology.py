"""The ESN reservoir's wiring: a random sparse reservoir against a simple cycle, on NAB.

    .venv/bin/python bench/topology.py [--seeds 0-9] [--forecast-seeds 0,1,2] [--workers 2]

Both at the same hyper-parameters (the defaults: 200 units, spectral radius 0.99, leak 0.3, input
scaling 0.5, bias scaling 0.2). For each topology and reservoir seed:
- the NAB standard score of the int8 ESN as `rnnedge evaluate nab --int8 --topology T --seed S`
  scores it (numpy reference, which computes what its LiteRT target computes), and the score of
  the alerts as deployed;
- at the forecast seeds, the float ESN's one-step forecast RMSE on every file, over repeating the
  last value: on the
  held-out tail of the probationary period (what training sees) and on the scored rest of the file
  (label-free: a forecast's error, not a detection), as the geometric mean over the 57 files where
  persistence errs at all (art_flatline is constant).
Prints two Markdown tables.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.data import read_csv  # noqa: E402
from edge.esn import ESNCell  # noqa: E402
from edge.specs import TOPOLOGIES, ESNConfig  # noqa: E402
from trainer import nab  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.esn import fit_esn  # noqa: E402
from trainer.evaluate import evaluate_nab  # noqa: E402
from trainer.pipeline import fit_normalizer, forecasts, rmse, split_rows  # noqa: E402

DATA = ROOT / "data" / "nab"


def nab_scores(job: tuple[str, int]) -> tuple[str, int, float, float, float]:
    topology, seed = job
    t0 = time.perf_counter()
    cfg = TrainConfig(model=ESNConfig(seed=seed, topology=topology), int8=True, seed=seed)
    with tempfile.TemporaryDirectory(prefix="rnnedge-topology-") as out:
        r = evaluate_nab(str(DATA), cfg, out)
    return topology, seed, r.normalised["standard"], r.alerts["standard"], time.perf_counter() - t0


def forecast_errors(name: str) -> tuple[str, dict[tuple[str, int], tuple[float, float]], tuple[float, float]]:
    """(held-out, scored) RMSE of each (topology, seed) and of persistence on one file."""
    v = read_csv(DATA / "data" / name, on_unordered="keep").values.astype(np.float64)
    n = nab.probation(len(v))
    n_fit = split_rows(n, TrainConfig.val_fraction)
    norm = fit_normalizer(v[:n])
    z = ((v - norm.mean) / norm.std).astype(np.float32)
    persistence = (rmse(z[n_fit:n] - z[n_fit - 1:n - 1]), rmse(z[n:] - z[n - 1:-1]))
    out = {}
    for topology in TOPOLOGIES:
        for seed in FORECAST_SEEDS:
            c = ESNConfig(seed=seed, topology=topology)
            weights, _ = fit_esn(c, z[:n], n_fit, TrainConfig.washout)
            y = forecasts(ESNCell.from_weights(c, weights), z)
            out[topology, seed] = (rmse(z[n_fit:n] - y[n_fit - 1:n - 1]), rmse(z[n:] - y[n - 1:]))
    return name, out, persistence


def seeds(text: str) -> tuple[int, ...]:
    """"0-9" or "0,1,2"."""
    if "-" in text:
        lo, hi = text.split("-")
        return tuple(range(int(lo), int(hi) + 1))
    return tuple(int(s) for s in text.split(","))


def main() -> None:
    global FORECAST_SEEDS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-9", help="reservoir seeds of the NAB scores (default 0-9)")
    ap.add_argument("--forecast-seeds", default="0,1,2",
                    help="reservoir seeds of the forecast errors (default 0,1,2)")
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="processes (default: one per core)")
    args = ap.parse_args()
    nab_seeds, FORECAST_SEEDS = seeds(args.seeds), seeds(args.forecast_seeds)
    corpus = nab.Corpus.load(DATA)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"ESN 200, topologies {', '.join(TOPOLOGIES)}, NAB at reservoir seeds {args.seeds}, "
          f"forecasts at {args.forecast_seeds}\n")
    with mp.get_context("fork").Pool(args.workers) as pool:
        scores = sorted(pool.imap_unordered(nab_scores, [(t, s) for t in TOPOLOGIES for s in nab_seeds]))
        errors = list(pool.imap_unordered(forecast_errors, corpus.names))
    print("| topology | " + " | ".join(f"seed {s}" for s in nab_seeds) + " | mean (min-max) | alerts as deployed, "
          "mean | wall time per run |")
    print("|---|" + "---:|" * (len(nab_seeds) + 3))
    for topology in TOPOLOGIES:
        rows = [r for r in scores if r[0] == topology]
        std = np.array([r[2] for r in rows])
        print(f"| {topology} | " + " | ".join(f"{x:.2f}" for x in std) +
              f" | {std.mean():.2f} ({std.min():.2f}-{std.max():.2f}) | {np.mean([r[3] for r in rows]):.2f} | "
              f"{np.median([r[4] for r in rows]):.0f} s |")
    print("\n| topology | forecast RMSE / persistence's, held-out tail (geometric mean over files) | "
          "same, the scored rest of each file | files where it beats the other topology, held-out tail |")
    print("|---|---:|---:|---:|")
    kept = [(name, e, p) for name, e, p in errors if min(p) > 0]
    ratio = {t: np.array([[[e[t, s][k] / p[k] for k in (0, 1)] for s in FORECAST_SEEDS] for _, e, p in kept])
             for t in TOPOLOGIES}  # [files, seeds, (held-out, scored)]
    for t, other in zip(TOPOLOGIES, TOPOLOGIES[::-1]):
        geo = np.exp(np.log(ratio[t]).mean(axis=0))  # [seeds, 2]
        wins = int(np.sum(ratio[t][:, :, 0].mean(axis=1) < ratio[other][:, :, 0].mean(axis=1)))
        span = lambda k: f"{geo[:, k].mean():.3f} ({geo[:, k].min():.3f}-{geo[:, k].max():.3f})"  # noqa: E731
        print(f"| {t} | {span(0)} | {span(1)} | {wins} of {len(kept)} |")


FORECAST_SEEDS: tuple[int, ...] = ()

if __name__ == "__main__":
    main()
