"""Does pruning an ESN's reservoir beat drawing a smaller one? Held-out forecast error on NAB files.

    .venv/bin/python bench/esn_prune.py [--seeds 3]

For each file and reservoir seed: the one-step RMSE on the held-out tail (the last 20% of the file,
normalised units) of a reservoir of 200 units, one of 100 units drawn directly, and 100 units
pruned from 200 and from 400 (the least important units removed in 4 steps, the readout refitted
after each). The reservoirs are random (`topology="random"`): a pruned ring has no cycle left.
Importance is either a unit's mean |state| times the norm of its outgoing weights (recurrent and
readout; what the GRU's structured pruning uses) or the rise in the readout's training error when
that unit's feature is dropped (w_i^2 / [(Phi^T Phi + ridge)^-1]_ii, optimal brain surgeon for a
linear readout). Prints a Markdown table and, per pruning, the geometric mean of its RMSE over the
drawn 100-unit reservoir's.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.data import read_csv  # noqa: E402
from edge.esn import make_reservoir  # noqa: E402
from edge.specs import ESNConfig  # noqa: E402
from trainer.esn import fit_readout  # noqa: E402
from trainer.pipeline import fit_normalizer, split_rows  # noqa: E402

NAB = ROOT / "data" / "nab" / "data"
FILES = ["realKnownCause/nyc_taxi.csv", "realKnownCause/ambient_temperature_system_failure.csv",
         "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv", "realTweets/Twitter_volume_AAPL.csv",
         "realTraffic/speed_7578.csv", "realAdExchange/exchange-4_cpc_results.csv"]
WASHOUT = 50


def importance(how: str, weights: dict, phi: np.ndarray, ridge: float, units: int) -> np.ndarray:
    if how == "activity":
        outgoing = np.concatenate([weights["w"], weights["readout.weight"][:, :units]], axis=0)
        return np.abs(phi[:, :units]).mean(axis=0) * np.linalg.norm(outgoing, axis=0)
    penalty = np.full(phi.shape[1], ridge)
    penalty[-1] = 0.0  # the bias is not penalised
    inverse = np.linalg.inv(phi.T @ phi + np.diag(penalty))
    w = np.concatenate([weights["readout.weight"], weights["readout.bias"][:, None]], axis=1)
    return ((w ** 2).sum(axis=0) / np.diag(inverse))[:units]


def pruned_rmse(config: ESNConfig, z: np.ndarray, n_fit: int, keep_n: int, how: str, steps: int = 4) -> float:
    weights, report, phi = fit_readout(config, make_reservoir(config), z, n_fit, WASHOUT)
    before = config.units
    for i in range(1, steps + 1):
        target = before - round((before - keep_n) * i / steps)
        score = importance(how, weights, phi[report["washout"]:n_fit - 1], report["ridge"], config.units)
        keep = np.sort(np.argsort(-score, kind="stable")[:target])
        w = weights["w"][np.ix_(keep, keep)].astype(np.float64)
        w *= config.spectral_radius / np.max(np.abs(np.linalg.eigvals(w)))  # back to the configured radius
        config = replace(config, units=target)
        reservoir = {"w_in": weights["w_in"][keep], "bias": weights["bias"][keep], "w": w.astype(np.float32)}
        weights, report, phi = fit_readout(config, reservoir, z, n_fit, WASHOUT)
    return float(np.sqrt(report["val_mse"]))


def drawn_rmse(config: ESNConfig, z: np.ndarray, n_fit: int) -> float:
    return float(np.sqrt(fit_readout(config, make_reservoir(config), z, n_fit, WASHOUT)[1]["val_mse"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="reservoir seeds per file (default: 3)")
    args = ap.parse_args()
    variants = [("200 units", lambda c, z, n: drawn_rmse(replace(c, units=200), z, n)),
                ("100 drawn", lambda c, z, n: drawn_rmse(replace(c, units=100), z, n)),
                ("200 -> 100, activity", lambda c, z, n: pruned_rmse(replace(c, units=200), z, n, 100, "activity")),
                ("200 -> 100, OBS", lambda c, z, n: pruned_rmse(replace(c, units=200), z, n, 100, "obs")),
                ("400 -> 100, activity", lambda c, z, n: pruned_rmse(replace(c, units=400), z, n, 100, "activity")),
                ("400 -> 100, OBS", lambda c, z, n: pruned_rmse(replace(c, units=400), z, n, 100, "obs"))]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| file | seed | " + " | ".join(name for name, _ in variants) + " |")
    print("|---|---:|" + "---:|" * len(variants))
    table = []
    for f in FILES:
        values = read_csv(NAB / f, on_unordered="keep", on_missing="keep").values
        n_fit = split_rows(len(values), 0.2)
        z = fit_normalizer(values[:n_fit]).normalize(values)
        for seed in range(args.seeds):
            row = [run(ESNConfig(input_size=z.shape[1], seed=seed, topology="random"), z, n_fit) for _, run in variants]
            table.append(row)
            print(f"| {Path(f).stem} | {seed} | " + " | ".join(f"{r:.4f}" for r in row) + " |", flush=True)
    ratio = np.array(table) / np.array(table)[:, 1:2]
    print("\nRMSE over the drawn 100-unit reservoir's, geometric mean over files and seeds "
          "(below 1: better than drawing 100 units):\n")
    for (name, _), col in zip(variants, ratio.T):
        print(f"- {name}: {np.exp(np.mean(np.log(col))):.3f} (lower in {int(np.sum(col < 1))} of {len(col)})")


if __name__ == "__main__":
    main()
