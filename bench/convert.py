"""Per target: file size, conversion time, step latency at B=1 and per-stream cost at B=1,024 in its
interpreter next to the numpy reference in the same run, and the parity figures.

    .venv/bin/python bench/convert.py [--quick] [--gpu]

Models: a GRU H=64 (trained briefly on nyc_taxi's first 3,000 rows; the timing does not depend on
the quality) and the default ESN (200 units). Latency is the median of 7 runs of the mean step time
through the same wrapper the runtime uses (quantize/dequantize of int8 inputs included), one
thread. Parity is `verify` on the next 2,000 rows of nyc_taxi. With --gpu, the float TFLite targets
also run on LiteRT's GPU accelerator (rows marked "on gpu"). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from converters.check import step_time_us  # noqa: E402
from converters.convert import emit  # noqa: E402
from converters.verify import verify  # noqa: E402
from edge.artifact import load_artifact  # noqa: E402
from edge.data import read_csv  # noqa: E402
from edge.specs import ESNConfig, GRUConfig  # noqa: E402
from edge.targets import GPU_TARGETS, TARGETS, open_target  # noqa: E402
from trainer.config import GRUTrainConfig, TrainConfig  # noqa: E402
from trainer.pipeline import train  # noqa: E402

TAXI = ROOT / "data" / "nab" / "data" / "realKnownCause" / "nyc_taxi.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer timing steps")
    ap.add_argument("--gpu", action="store_true", help="also run the float TFLite targets on the GPU")
    args = ap.parse_args()
    steps1, steps_b = (200, 5) if args.quick else (1000, 20)
    series = read_csv(TAXI)
    tail = series.values[3000:5000]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"one interpreter thread\n")
    with tempfile.TemporaryDirectory() as tmp:
        models = {
            "GRU H=64": TrainConfig(model=GRUConfig(input_size=1, hidden=64), int8=True,
                                    gru=GRUTrainConfig(epochs=8)),
            "ESN 200": TrainConfig(model=ESNConfig(input_size=1, units=200), int8=True),
        }
        for label, cfg in models.items():
            art = load_artifact(train(series.head(3000), cfg, Path(tmp) / label.replace(" ", "_")))
            print(f"### {label} (model {art.model_id})\n")
            print("| target | bytes | convert s | step B=1 us | x numpy | per stream at B=1024 us | x numpy "
                  "| forecast max err | p99 | alert agree |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for prec in ("float32", "int8"):
                cell = art.cell(prec)
                b1 = step_time_us(cell, steps=steps1, repeats=7)
                bb = step_time_us(cell, batch=1024, steps=steps_b, repeats=7) / 1024
                print(f"| numpy {prec} (reference) | — | — | {b1:.1f} | 1.00 | {bb:.3f} | 1.00 | — | — | — |")
                for name, t in TARGETS.items():
                    if t.reference_precision != prec:
                        continue
                    path, secs = emit(art, name, Path(tmp))
                    for accelerator in ("cpu", "gpu") if args.gpu and name in GPU_TARGETS else ("cpu",):
                        tc = open_target(path, name, art.config, accelerator=accelerator)
                        s1 = step_time_us(tc, steps=steps1, repeats=7)
                        sb = step_time_us(tc, batch=1024, steps=steps_b, repeats=7) / 1024
                        p = verify(art, name, tc, tail)
                        label = f"{name} on gpu" if accelerator == "gpu" else name
                        print(f"| {label} | {path.stat().st_size} | {secs:.2f} | {s1:.1f} | {b1 / s1:.2f} | "
                              f"{sb:.3f} | {bb / sb:.2f} | {p.forecast_max:.1e} | {p.forecast_p99:.1e} | "
                              f"{p.alert_agreement:.2%} |")
            print()
    print("x numpy: the numpy reference's time divided by the target's (above 1: the target is faster); "
          "int8 targets are compared with the numpy int8 reference, float ones with numpy float32.")


if __name__ == "__main__":
    main()
