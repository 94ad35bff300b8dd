"""The spiking reservoir next to the rate ESN and the GRU: NAB score, synaptic operations per step,
multiply-accumulates per step, stored size and step time, in one run.

    .venv/bin/python bench/neuromorphic.py [--quick]

SynOps, MACs and step times are measured on nyc_taxi (trained on its first 3,000 rows, stepped
over the remaining 7,320, B=1, median of 5 timing runs). SynOps: one per nonzero synapse of an
input channel or neuron that spiked (what event-driven hardware does); MACs: the dense products a
CPU or GPU runs, and the nonzero ones of them. NAB: `rnnedge evaluate nab`, all 58 files (--quick
skips it). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.artifact import load_artifact, weight_shapes  # noqa: E402
from edge.data import read_csv  # noqa: E402
from edge.specs import ESNConfig, GRUConfig, LSMConfig  # noqa: E402
from trainer.config import GRUTrainConfig, TrainConfig  # noqa: E402
from trainer.evaluate import evaluate_nab  # noqa: E402
from trainer.pipeline import train  # noqa: E402

TAXI = ROOT / "data" / "nab" / "data" / "realKnownCause" / "nyc_taxi.csv"


def ring(art) -> bool:
    """A cycle reservoir: its W is stepped as a rotation and one multiply a unit, in every target."""
    return art.config.kind == "esn" and art.config.topology == "cycle"


def macs(art) -> tuple[int, int]:
    """(dense, nonzero) multiply-accumulates per step of the model's products, readout included (a
    cycle's W: one multiply a unit)."""
    shapes = weight_shapes(art.config)
    mats = [n for n, s in shapes.items() if len(s) == 2]
    dense = sum(art.config.units if ring(art) and n == "w" else int(np.prod(shapes[n])) for n in mats)
    nonzero = sum(int(np.count_nonzero(art.weights[n])) for n in mats)
    return dense, nonzero


def step_us(fn, z: np.ndarray, s0: np.ndarray, repeats: int = 5) -> float:
    runs = []
    for _ in range(repeats):
        s = s0
        t = time.perf_counter()
        for k in range(len(z)):
            s = fn(z[k:k + 1], s)[1]
        runs.append((time.perf_counter() - t) / len(z) * 1e6)
    return float(np.median(runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the NAB runs")
    args = ap.parse_args()
    series = read_csv(TAXI)
    models = [(f"LSM {n} ternary", TrainConfig(model=LSMConfig(input_size=1, units=n))) for n in (100, 250, 500, 1000)]
    models += [("LSM 250 ternary, input gain 0.4", TrainConfig(model=LSMConfig(input_size=1, units=250, input_gain=0.4))),
               ("LSM 250 ternary, recurrent gain 2", TrainConfig(model=LSMConfig(input_size=1, units=250,
                                                                                  recurrent_gain=2.0))),
               ("LSM 500 int8 synapses", TrainConfig(model=LSMConfig(input_size=1, units=500, weights="int8"))),
               ("ESN 200 float32", TrainConfig(model=ESNConfig(input_size=1))),
               ("ESN 200 int8", TrainConfig(model=ESNConfig(input_size=1), int8=True)),
               ("ESN 200 int8, random reservoir", TrainConfig(model=ESNConfig(input_size=1, topology="random"),
                                                              int8=True)),
               ("GRU H=32 float32", TrainConfig(model=GRUConfig(input_size=1, hidden=32),
                                                gru=GRUTrainConfig(epochs=60, patience=8)))]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| model | NAB standard | spikes/step | SynOps/step | MACs/step dense (nonzero) | stored weights "
          "| step B=1 | dense step B=1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, cfg in models:
            art = load_artifact(train(series.head(3000), cfg, Path(tmp) / label.replace(" ", "_")))
            cell = art.cell()
            z = art.normalizer.normalize(series.values[3000:])
            s0 = np.zeros((1, cell.state_size), np.float32)
            dense, nonzero = macs(art)
            stepped = [n for n in weight_shapes(art.config) if not (ring(art) and n == "w")]  # a ring's one weight
            size = sum(art.weights[n].nbytes for n in stepped)  # as stored (LSM: int8)
            if art.precision == "int8":  # served as int8: one byte per quantized weight
                size -= 3 * sum(art.weights[f"{n}.q"].size for n in stepped if f"{n}.q" in art.weights)
            spikes = synops = "—"
            t_dense = "—"
            if art.config.kind == "lsm":
                n = art.config.units
                s, ops, sp = s0, [], []
                for k in range(len(z)):
                    _, s, o = cell.step_counted(z[k:k + 1], s)
                    ops.append(int(o[0]))
                    sp.append(float(s[0, 2 * n:3 * n].sum()))
                spikes, synops = f"{np.mean(sp):.0f} ({100 * np.mean(sp) / n:.1f}%)", f"{np.mean(ops):,.0f}"
                t_dense = f"{step_us(cell.step_dense, z[:2000], s0):.1f} us"
            t = step_us(cell.step, z[:2000], s0)
            nab = "—"
            if not args.quick:
                nab = f"{evaluate_nab(ROOT / 'data' / 'nab', cfg, Path(tmp) / ('nab_' + label.replace(' ', '_'))).normalised['standard']:.1f}"
            print(f"| {label} | {nab} | {spikes} | {synops} | {dense:,} ({nonzero:,}) | {size / 1024:.0f} KiB "
                  f"| {t:.1f} us | {t_dense} |", flush=True)


if __name__ == "__main__":
    main()
