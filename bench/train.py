"""Training time, forecast error (float, pruned, int8) and artifact sizes on three NAB files.

    .venv/bin/python bench/train.py [--quick]
    .venv/bin/python bench/train.py --devices cpu,cuda [--epochs 15] [--hidden 32,64,128,256]

Forecast error is the one-step RMSE on the held-out tail (the last 20% of the file) in normalised
units, next to the persistence baseline (repeat the last value) of the same rows. GRU rows train
dense, then prune to 50% sparsity (with fine-tuning) and quantize the pruned model; "dense s" is
the dense training time alone. Prints a Markdown table.

With --devices, it instead trains dense GRUs on nyc_taxi (10,320 rows) for a fixed number of epochs
(no early stop) on each device and prints the median seconds per epoch of three runs (after one
warm-up epoch per device, which takes CUDA's start-up), the ratio to the first device named, and the
held-out RMSE each device's model reaches.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.artifact import load_artifact  # noqa: E402
from edge.data import read_csv  # noqa: E402
from edge.specs import ESNConfig, GRUConfig  # noqa: E402
from trainer.config import GRUTrainConfig, PruneConfig, TrainConfig  # noqa: E402
from trainer.pipeline import train  # noqa: E402

NAB = ROOT / "data" / "nab" / "data"
FILES = ["artificialWithAnomaly/art_daily_jumpsup.csv", "realKnownCause/nyc_taxi.csv",
         "realKnownCause/machine_temperature_system_failure.csv"]


def kib(path: Path) -> str:
    return f"{sum(f.stat().st_size for f in path.iterdir()) / 1024:.0f}"


def machine() -> str:
    import torch
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}"
            f"{gpu}, python {platform.python_version()}, torch {torch.__version__}\n")


def by_device(devices: list[str], hiddens: list[int], epochs: int) -> None:
    series = read_csv(NAB / FILES[1], on_unordered="keep")
    print("| GRU | device | s / epoch (median of 3) | vs " + devices[0] + " | held-out RMSE |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        def fit(h: int, device: str, n: int) -> tuple[float, float]:
            cfg = TrainConfig(model=GRUConfig(hidden=h),
                              gru=GRUTrainConfig(epochs=n, patience=n, device=device))
            m = load_artifact(train(series, cfg, Path(tmp) / f"{len(os.listdir(tmp))}")).manifest["metrics"]
            return m["gru"]["seconds"] / m["gru"]["epochs"], m["float_rmse"]

        for device in devices:
            fit(8, device, 1)  # warm-up: CUDA context, cuDNN and allocator start-up
        for h in hiddens:
            base = None
            for device in devices:
                runs = [fit(h, device, epochs) for _ in range(3)]
                per_epoch = statistics.median(r[0] for r in runs)
                base = base or per_epoch
                print(f"| H={h} | {device} | {per_epoch:.3f} | {per_epoch / base:.2f} | {runs[0][1]:.4f} |",
                      flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="first file only, GRU H=32 only")
    ap.add_argument("--devices", help="compare GRU training on these torch devices, e.g. cpu,cuda")
    ap.add_argument("--hidden", default="32,64,128,256", help="GRU widths for --devices (default: 32,64,128,256)")
    ap.add_argument("--epochs", type=int, default=15, help="epochs per run for --devices (default: 15)")
    args = ap.parse_args()
    print(machine())
    if args.devices:
        by_device(args.devices.split(","), [int(h) for h in args.hidden.split(",")], args.epochs)
        return
    files = FILES[:1] if args.quick else FILES
    hiddens = (32,) if args.quick else (32, 64)
    print("| file | rows | model | dense s | total s | persistence | float | pruned 50% | int8 | "
          "weights KiB (float / int8) | artifact KiB |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in files:
            series = read_csv(NAB / name, on_unordered="keep")
            n = len(series.values)
            runs = [("ESN 200", TrainConfig(model=ESNConfig(), int8=True))]
            runs += [(f"GRU H={h}", TrainConfig(model=GRUConfig(hidden=h), int8=True,
                                                prune=PruneConfig(sparsity=0.5))) for h in hiddens]
            for label, cfg in runs:
                out = Path(tmp) / f"{len(os.listdir(tmp))}"
                t0 = time.perf_counter()
                art = load_artifact(train(series, cfg, out))
                total = time.perf_counter() - t0
                m = art.manifest["metrics"]
                pr = art.manifest["pruning"]
                dense_s = m["gru"]["seconds"] if "gru" in m else m["fit_seconds"]
                float_rmse = pr["rmse_before"] if pr else m["float_rmse"]
                pruned = f"{pr['rmse_after']:.4f}" if pr else "n/a"
                params = sum(art.weights[k].size for k in art.weights if not k.endswith((".q", ".scale")))
                q = sum(art.weights[k].nbytes for k in art.weights if k.endswith((".q", ".scale")))
                f_bytes = 4 * params
                q_bytes = q + 4 * sum(art.weights[k].size for k in art.weights
                                      if f"{k}.q" not in art.weights and not k.endswith((".q", ".scale")))
                print(f"| {Path(name).stem} | {n} | {label} | {dense_s:.1f} | {total:.1f} | "
                      f"{m['persistence_rmse']:.4f} | {float_rmse:.4f} | {pruned} | {m['int8_rmse']:.4f} | "
                      f"{f_bytes / 1024:.0f} / {q_bytes / 1024:.0f} | {kib(out)} |", flush=True)


if __name__ == "__main__":
    main()
