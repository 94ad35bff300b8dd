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


def clock(n: int, start: str = "2024-01-01T00:00:00") -> np.ndarray:
    """write_csv's timestamps as epoch seconds: float64[n], every 5 minutes from `start`."""
    return float(np.datetime64(start, "s").astype(np.int64)) + 300.0 * np.arange(n)


def sine_series(n: int = 1200, d: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    phase = np.arange(d)[None, :]
    return (10 + 3 * np.sin(2 * np.pi * t / 48 + phase) + 0.1 * rng.standard_normal((n, d))).astype(np.float32)


@pytest.fixture(scope="session")
def sine_csv(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("data") / "sine.csv", sine_series(1200, 2), names=("a", "b"))


def train_small(kind: str, out: Path, path: Path, *, int8: bool = True, layers: int = 1, **kw):
    """A small model trained on `path` in well under a second (ESN; "esn-random": its random reservoir)
    or a few seconds (GRU)."""
    from trainer.config import GRUTrainConfig, TrainConfig
    from trainer.pipeline import train
    series = read_csv(path)
    d = series.values.shape[1]
    model = (GRUConfig(input_size=d, hidden=8, layers=layers) if kind == "gru"
             else ESNConfig(input_size=d, units=40, seed=3, topology="random" if kind == "esn-random" else "cycle"))
    cfg = TrainConfig(model=model, gru=GRUTrainConfig(epochs=kw.pop("epochs", 4), window=32, lanes=8),
                      int8=int8, **kw)
    return train(series, cfg, out)


# the cycle reservoir's targets rotate the state; a random one's multiply it by W
MODEL_CASES = [("esn", 1), ("esn-random", 1), ("gru", 1), ("gru", 2)]


@pytest.fixture(scope="session", params=MODEL_CASES, ids=lambda c: f"{c[0]}{c[1]}")
def small_model(request, tmp_path_factory, sine_csv):
    """(kind, layers, artifact path) for every model kind, trained once per session, int8 included."""
    from edge.artifact import load_artifact
    kind, layers = request.param
    path = train_small(kind, tmp_path_factory.mktemp(f"{kind}{layers}"), sine_csv, layers=layers)
    return load_artifact(path)


@pytest.fixture
def broker(tmp_path):
    """A real Mosquitto on a free 127.0.0.1 port, persistence on, stopped by its PID afterwards."""
    from edge.broker import Mosquitto
    b = Mosquitto(workdir=tmp_path / "broker").start()
    yield b
    b.close()


class Collector:
    """A plain paho client that records (topic, payload) of everything under `filters` (none: a
    publisher)."""

    def __init__(self, port: int, *filters: str) -> None:
        import threading

        import paho.mqtt.client as paho
        self.messages: list[tuple[str, bytes]] = []
        self._ready = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"collector-{id(self)}")
        self.client.on_connect = (lambda c, *a: c.subscribe([(f, 1) for f in filters])) if filters else \
            (lambda *a: self._ready.set())
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._ready.wait(10), "collector did not subscribe within 10 s"

    def json(self, prefix: str) -> list[dict]:
        import json
        return [json.loads(p) for t, p in list(self.messages) if t.startswith(prefix)]

    def wait_for(self, cond, timeout: float = 30.0) -> bool:
        import time
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            time.sleep(0.02)
        return cond()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def collector(broker):
    c = Collector(broker.port, "alerts/#", "scores/#", "rnnedge/#", "homeassistant/#")
    yield c
    c.close()
