"""Shared fixtures: the bundled NAB data, small synthetic series, and small trained models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.data import read_csv
from edge.specs import ESNConfig, GRUConfig

ROOT = Path(__file__).resolve().parent.parent
NAB = ROOT / "data" / "nab" / "data"
TAXI = NAB / "realKnownCause" / "nyc_taxi.csv"
DAILY = NAB / "artificialWithAnomaly" / "art_daily_jumpsup.csv"


def write_csv(path: Path, values: np.ndarray, names=("value",), start="2024-01-01T00:00:00", sep=",") -> Path:
    t0 = np.datetime64(start, "s")
    lines = [sep.join(["timestamp", *names])]
    for i, row in enumerate(np.atleast_2d(values.T).T):
        lines.append(sep.join([str(t0 + np.timedelta64(300 * i, "s")).replace("T", " "),
                               *(f"{v:.6f}" for v in np.atleast_1d(row))]))
    path.write_text("\n".join(lines) + "\n")
    return path


def sine_series(n: int = 1200, d: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    phase = np.arange(d)[None, :]
    return (10 + 3 * np.sin(2 * np.pi * t / 48 + phase) + 0.1 * rng.standard_normal((n, d))).astype(np.float32)


@pytest.fixture(scope="session")
def sine_csv(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("data") / "sine.csv", sine_series(1200, 2), names=("a", "b"))


def train_small(kind: str, out: Path, path: Path, *, int8: bool = True, layers: int = 1, **kw):
    """A small model trained on `path` in well under a second (ESN) or a few seconds (GRU)."""
    from trainer.config import GRUTrainConfig, TrainConfig
    from trainer.pipeline import train
    series = read_csv(path)
    d = series.values.shape[1]
    model = (GRUConfig(input_size=d, hidden=8, layers=layers) if kind == "gru"
             else ESNConfig(input_size=d, units=40, seed=3))
    cfg = TrainConfig(model=model, gru=GRUTrainConfig(epochs=kw.pop("epochs", 4), window=32, lanes=8),
                      int8=int8, **kw)
    return train(series, cfg, out)


MODEL_CASES = [("esn", 1), ("gru", 1), ("gru", 2)]


@pytest.fixture(scope="session", params=MODEL_CASES, ids=lambda c: f"{c[0]}{c[1]}")
def small_model(request, tmp_path_factory, sine_csv):
    """(kind, layers, artifact path) for every model kind, trained once per session, int8 included."""
    from edge.artifact import load_artifact
    kind, layers = request.param
    path = train_small(kind, tmp_path_factory.mktemp(f"{kind}{layers}"), sine_csv, layers=layers)
    return load_artifact(path)
