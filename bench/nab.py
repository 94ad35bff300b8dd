"""NAB scores of rnnedge's detectors, strictly online, next to the published ones, with wall times.

    .venv/bin/python bench/nab.py [--quick] [--out DIR]

Each detector: `rnnedge evaluate nab` over all 58 files (train on each file's probationary period
only, score the rest online through the runtime's detector, one corpus-wide threshold per
profile). The ESN also runs at 100 units, the size pruning half its reservoir would reach (as
well as pruning does: bench/esn_prune.py), and at reservoir seeds 0-2: the seed alone moves its
score (by 0.5 points for the default cycle reservoir, by up to 3.5 for a random one), so the table
ends with their mean and range. --quick runs the ESN rows
only. The int8 ESN (at the same seeds) and the int8 GRU also run as a device runs them: each file's
model converted to the full-integer TFLite target and stepped in LiteRT (`--backend tflite`), and
in TFLite Micro's interpreter as a microcontroller steps it (`--backend tflite-micro`). Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.scoring import Adaptive  # noqa: E402
from edge.specs import ESNConfig, GRUConfig  # noqa: E402
from trainer.config import GRUTrainConfig, PruneConfig, TrainConfig  # noqa: E402
from trainer.evaluate import evaluate_nab  # noqa: E402

SEEDS = (0, 1, 2)  # reservoir seeds of the ESN rows
# Standard-profile scores from NAB's scoreboard; the other profiles only where we hold the result
# files (Numenta HTM, data/nab/reference, reproduced by tests/test_nab.py).
DEVICES = {"tflite": "ESN 200 int8 target in LiteRT", "tflite-micro": "ESN 200 int8 target in TFLite Micro"}
PUBLISHED = [("ARTime", 74.9, None, None), ("Numenta HTM", 70.1, 63.1, 74.3), ("CAD OSE", 69.9, None, None),
             ("KNN CAD", 58.0, None, None), ("Random", 16.8, None, None), ("Null", 0.0, 0.0, 0.0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the ESN rows only")
    ap.add_argument("--out", help="keep the result files here (default: a temporary folder)")
    args = ap.parse_args()
    esn = ESNConfig(input_size=1)
    gru = GRUConfig(input_size=1, hidden=32)
    runs = [("ESN 200 float32", TrainConfig(model=esn)), ("ESN 200 int8", TrainConfig(model=esn, int8=True)),
            ("ESN 200 int8, alerts on the calibrated score", TrainConfig(model=esn, int8=True, alert_on="calibrated")),
            ("ESN 200 int8, surprise not capped", TrainConfig(model=esn, int8=True, adaptive=Adaptive(surprise_cap=0.0))),
            ("ESN 200 int8, scorer calibrated on the held-out tail only",
             TrainConfig(model=esn, int8=True, calibrate_on="heldout"))]
    # half the reservoir: what pruning it would reach, as well as pruning does (bench/esn_prune.py)
    runs += [(f"ESN 100 {p}", TrainConfig(model=replace(esn, units=100), int8=p == "int8")) for p in ("float32", "int8")]
    # the spread that comes from the random reservoir alone
    runs += [(f"ESN 200 {p}, reservoir seed {k}", TrainConfig(model=replace(esn, seed=k), int8=p == "int8"))
             for p in ("float32", "int8") for k in SEEDS[1:]]
    # the device's view: each file's model converted to the full-integer TFLite target, stepped in LiteRT
    # (a Raspberry Pi's CPU path) and in TFLite Micro (a microcontroller's reference kernels)
    runs += [(f"{name}, reservoir seed {k}" if k else name, TrainConfig(model=replace(esn, seed=k), int8=True),
              backend) for backend, name in DEVICES.items() for k in SEEDS]
    if not args.quick:
        g = GRUTrainConfig(epochs=60, patience=8)
        prune = PruneConfig(sparsity=0.5, steps=2, finetune_epochs=4)
        gru_int8 = TrainConfig(model=gru, gru=g, int8=True, prune=prune)
        runs += [("GRU H=32 float32", TrainConfig(model=gru, gru=g)),
                 ("GRU H=32 pruned 50%", TrainConfig(model=gru, gru=g, prune=prune)),
                 ("GRU H=32 pruned 50% int8", gru_int8),
                 # the device's view: equal to the int8 row in LiteRT, as the ESN's are
                 ("GRU H=32 pruned 50% int8 target in LiteRT", gru_int8, "tflite"),
                 ("GRU H=32 pruned 50% int8 target in TFLite Micro", gru_int8, "tflite-micro")]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| detector | standard | reward_low_FP_rate | reward_low_FN_rate | standard, alerts as deployed | wall time |")
    print("|---|---:|---:|---:|---:|---:|")
    scores = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        for label, cfg, *backend in runs:
            r = evaluate_nab(ROOT / "data" / "nab", cfg, out / label.replace(" ", "_").replace(",", ""),
                             backend=backend[0] if backend else "numpy")
            n = r.normalised
            scores[label] = [n["standard"], n["reward_low_FP_rate"], n["reward_low_FN_rate"], r.alerts["standard"]]
            print(f"| rnnedge {label} (ours, strictly online) | {n['standard']:.1f} | {n['reward_low_FP_rate']:.1f} | "
                  f"{n['reward_low_FN_rate']:.1f} | {r.alerts['standard']:.1f} | {r.seconds:.0f} s |", flush=True)
    for name in ("ESN 200 float32", "ESN 200 int8", *DEVICES.values()):  # seed 0 is the plain row
        rows = np.array([scores[name]] + [scores[f"{name}, reservoir seed {k}"] for k in SEEDS[1:]])
        cells = " | ".join(f"{m:.1f} ({lo:.1f}-{hi:.1f})" for m, lo, hi in zip(rows.mean(0), rows.min(0), rows.max(0)))
        print(f"| rnnedge {name}, mean (min-max) over reservoir seeds {SEEDS[0]}-{SEEDS[-1]} | {cells} | |")
    for name, *published in PUBLISHED:
        print(f"| {name} (published) | " + " | ".join("—" if v is None else f"{v:.1f}" for v in published) + " | | |")


if __name__ == "__main__":
    main()
