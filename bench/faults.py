"""Which scoring settings catch which faults: `rnnedge evaluate csv` on synthetic sensor files
whose faults are known, one setting against another.

    .venv/bin/python bench/faults.py

Each file: D channels of slow sines (periods 60-150 rows, a phase each) with Gaussian noise of 0.1
(signal amplitude 1), 2,000 rows, the model (ESN 200, float32, reservoir seed 0) trained on the
first 600. Faults start at row 800 and every 150 rows after (eight in all), each 20 rows long:

- "one channel": one channel, a different one each time, jumps by `size` (in units of the noise);
- "every channel": all D channels jump by `size` / sqrt(D) together (the same Euclidean size,
  spread thin).

Settings, all `evaluate csv` flags: the defaults (RMS of the channels' standardised residuals,
adaptive score with alert fatigue); `--distance max`; `--stat-clip 3 --fatigue 0` (a surprise
teaches the running statistics at most 3 standard deviations, and no fatigue: a fault that repeats
keeps alerting); both; `--alert-on calibrated` (the calibrated score at a 1e-3 false-alarm rate, no
running statistics at all). Metrics as `evaluate csv` prints them, pooled over three files (noise
seeds 0-2): events detected (an alert inside the event), point-wise precision and false-alarm rate
(no point adjustment: the rows while an alert clears after its event count as false alarms).
Prints Markdown tables.
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
from edge.specs import ESNConfig  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.evaluate import evaluate_csv  # noqa: E402

ROWS, TRAIN, FIRST, EVERY, LENGTH, EVENTS, NOISE = 2000, 600, 800, 150, 20, 8, 0.1
SIZES = (6.0, 12.0)
SETTINGS = {
    "defaults": {},
    "--distance max": {"distance": "max"},
    "--stat-clip 3 --fatigue 0": {"adaptive": Adaptive(clip=3.0, fatigue=0.0)},
    "both": {"distance": "max", "adaptive": Adaptive(clip=3.0, fatigue=0.0)},
    "--alert-on calibrated --raise-after 1": {"alert_on": "calibrated", "raise_after": 1},
}


def write(path: Path, d: int, kind: str, size: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(ROWS)[:, None]
    c = np.arange(d)[None, :]
    v = np.sin(2 * np.pi * t / (60 + 90 * c / max(d - 1, 1)) + c) + NOISE * rng.standard_normal((ROWS, d))
    label = np.zeros(ROWS, int)
    for k in range(EVENTS):
        rows = slice(FIRST + k * EVERY, FIRST + k * EVERY + LENGTH)
        if kind == "one channel":
            v[rows, (seed + k) % d] += size * NOISE
        else:
            v[rows] += size * NOISE / np.sqrt(d)
        label[rows] = 1
    t0 = np.datetime64("2024-01-01T00:00:00")
    with open(path, "w") as f:
        f.write("time," + ",".join(f"c{i}" for i in range(d)) + ",anomaly\n")
        for i in range(ROWS):
            f.write(f"{t0 + np.timedelta64(60 * i, 's')}," + ",".join(f"{x:.5f}" for x in v[i]) + f",{label[i]}\n")
    return path


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    base = TrainConfig(model=ESNConfig(seed=0))
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("one channel", "every channel"):
            print(f"\n{kind}: events detected of {3 * EVENTS}, precision, false-alarm rate\n")
            print("| D | size | " + " | ".join(SETTINGS) + " |")
            print("|---:|---:|" + "---|" * len(SETTINGS))
            for d in (4, 16):
                for size in SIZES:
                    files = [write(Path(tmp) / f"f{s}.csv", d, kind, size, s) for s in range(3)]
                    cells = []
                    for how in SETTINGS.values():
                        c = evaluate_csv(files, "anomaly", replace(base, **how), train_rows=TRAIN)[1]
                        m = c.metrics()
                        cells.append(f"{c.detected}, {m['precision']:.2f}, {m['false_alarm_rate']:.3f}")
                    print(f"| {d} | {size:g} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
