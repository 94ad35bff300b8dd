"""`rnnedge evaluate csv` on real multivariate data: NAB's two traffic sensors that report both
occupancy and speed, each joined into one labelled two-channel file.

    .venv/bin/python bench/traffic.py [--out DIR]

NAB's realTraffic folder holds occupancy and speed from the same two Minnesota DOT sensors (6005
and t4013), as separate univariate files with their own labelled windows. Joined on the
timestamps both files hold (an inner join: no row is resampled or filled in), each sensor becomes a
two-channel file whose label is 1 inside either file's windows (sensor 6005: one window per
channel, two days apart; t4013: the same two incidents labelled in both channels). These are the
only real labelled multivariate series bundled here.

Each detector runs as `rnnedge evaluate csv FILE --label-column anomaly` does: one model per file,
trained on the first fifth of its rows, the rest scored online through the runtime's detector;
alerts are the alert machine's active state. "joint" is one model over both channels, its two
standardised residuals combined by their RMS (the default) or by the larger (`--distance max`);
"per channel" is one model per channel (`--columns occupancy`, then speed) with an alert where
either channel's is active, the univariate baseline a joint model has to beat. Metrics are pooled over
the two files: point-wise (no point adjustment; NAB's windows are wide, so point-wise recall is low
by construction), event-wise recall and the mean delay from an event's first row to its first
alert row (5 minutes a row). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.specs import ESNConfig, GRUConfig  # noqa: E402
from trainer.config import GRUTrainConfig, TrainConfig  # noqa: E402
from trainer.evaluate import Counts, count, evaluate_csv  # noqa: E402

NAB = ROOT / "data" / "nab"
SENSORS = ("6005", "t4013")
CHANNELS = ("occupancy", "speed")
SEEDS = (0, 1, 2)


def join(sensor: str, dest: Path) -> Path:
    """Writes <dest>/traffic_<sensor>.csv: timestamp, occupancy, speed, anomaly (1 inside either
    channel's NAB windows) on the timestamps both channels' files hold."""
    windows = json.loads((NAB / "combined_windows.json").read_text())
    values, spans = {}, []
    for ch in CHANNELS:
        name = f"realTraffic/{ch}_{sensor}.csv"
        with open(NAB / "data" / name) as f:
            values[ch] = {r["timestamp"]: r["value"] for r in csv.DictReader(f)}
        spans += [(a[:19], b[:19]) for a, b in windows[name]]  # NAB's '2015-09-16 00:59:00.000000'
    stamps = sorted(set.intersection(*(set(v) for v in values.values())))
    path = dest / f"traffic_{sensor}.csv"
    with open(path, "w") as f:
        f.write(f"timestamp,{','.join(CHANNELS)},anomaly\n")
        for t in stamps:  # one format on both sides, so strings compare as times
            f.write(f"{t},{','.join(values[ch][t] for ch in CHANNELS)},{int(any(a <= t <= b for a, b in spans))}\n")
    return path


def alerts(result: Path) -> tuple[np.ndarray, np.ndarray]:
    a = np.loadtxt(result, delimiter=",", skiprows=1, usecols=(2, 3), dtype=np.int64)
    return a[:, 0].astype(bool), a[:, 1].astype(bool)


MODES = {"joint, RMS": "rms", "joint, larger": "max", "per channel": None}


def run(files: list[Path], cfg: TrainConfig, tmp: Path, mode: str) -> Counts:
    """Pooled counts over `files`: one joint model per file, its channels combined as MODES says,
    or one model per channel with their alerts OR'ed."""
    if MODES[mode]:
        return evaluate_csv(files, "anomaly", replace(cfg, distance=MODES[mode]))[1]
    total = Counts()
    for f in files:
        active = label = None
        for ch in CHANNELS:
            out = tmp / f"{f.stem}_{ch}"
            evaluate_csv([f], "anomaly", cfg, out=out, columns=[ch])
            a, label = alerts(out / f.name)
            active = a if active is None else active | a
        total += count(active, label)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="keep the joined files here (default: a temporary folder)")
    args = ap.parse_args()
    esn, gru = ESNConfig(input_size=2), GRUConfig(input_size=2, hidden=32)
    g = GRUTrainConfig(epochs=60, patience=8)
    runs = [(f"ESN 200 {p}, reservoir seed {k}", TrainConfig(model=replace(esn, seed=k), int8=p == "int8"))
            for p in ("int8", "float32") for k in SEEDS]
    runs += [("GRU H=32 float32", TrainConfig(model=gru, gru=g)),
             ("GRU H=32 int8", TrainConfig(model=gru, gru=g, int8=True))]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(args.out or tmp)
        dest.mkdir(parents=True, exist_ok=True)
        files = [join(s, dest) for s in SENSORS]
        for f in files:
            label = np.loadtxt(f, delimiter=",", skiprows=1, usecols=3)
            edges = np.flatnonzero(np.diff(np.r_[0, label, 0]))
            events = ", ".join(f"{a}-{b - 1}" for a, b in zip(edges[::2], edges[1::2]))
            print(f"{f.name}: {len(label)} rows, trained on the first {len(label) // 5}, events at rows {events}")
        print("\n| detector | models | precision | recall | F1 | false-alarm rate | events detected | "
              "mean delay | wall time |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for label, cfg in runs:
            for mode in MODES:
                t0 = time.perf_counter()
                c = run(files, cfg, Path(tmp), mode)
                m = c.metrics()
                delay = f"{m['mean_delay_rows']:.0f} rows" if c.detected else "-"
                print(f"| {label} | {mode} | {m['precision']:.3f} | "
                      f"{m['recall']:.3f} | {m['f1']:.3f} | {m['false_alarm_rate']:.4f} | {c.detected}/{c.events} | "
                      f"{delay} | {time.perf_counter() - t0:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
