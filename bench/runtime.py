"""The edge runtime's speed and memory, in one run:

  (a) engine samples/s per backend at B=1 (one stream) and per-stream cost at 1,024 streams, next
      to the backend's bare step (the cell the engine calls: interpreter plus its I/O wrapper);
  (b) through Mosquitto: sustained samples/s at QoS 1 with 1 and 32 samples per message (64
      streams, zero loss checked), next to a bare paho subscriber on the same broker and load;
  (c) latency at 2,000 messages/s: arrival to outputs published, inside the runtime, and end to end
      (publish to the score's arrival at a subscriber, two broker hops);
  (d) resident memory of a fresh process serving 1 and 1,024 streams.

    .venv/bin/python bench/runtime.py [--quick]

Model: a GRU H=64 trained briefly on nyc_taxi's first 3,000 rows (timing does not depend on its
quality), int8-calibrated, converted to every target. (a) times are medians of 7 blocks, the bare
step's and the engine's alternating so that load on a shared machine lands on both; the publisher
runs in its own process. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.broker import Mosquitto  # noqa: E402
from edge.data import read_csv  # noqa: E402
from edge.engine import Engine, EngineConfig  # noqa: E402
from edge.mqtt import BrokerConfig  # noqa: E402
from edge.runtime import Runtime, RuntimeConfig  # noqa: E402
from edge.serve import load  # noqa: E402

TAXI = ROOT / "data" / "nab" / "data" / "realKnownCause" / "nyc_taxi.csv"
BACKENDS = [("numpy", None, "float32"), ("numpy", None, "int8"), ("onnx", "onnx", None), ("onnx", "onnx-int8", None),
            ("litert", "tflite", None), ("litert", "tflite-int8", None)]

PUBLISHER = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from edge.mqtt import BrokerConfig, Outbox, client
url, n, rows, streams, rate = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
c = client(BrokerConfig.from_url(url), f"bench-pub-{time.monotonic_ns()}", persistent=False)
c.max_inflight_messages_set(1000)
c.connect("127.0.0.1", int(url.rsplit(":", 1)[1]))
c.loop_start()
time.sleep(0.3)
box = Outbox()
v = 15000.0
topics = [f"sensors/dev{s}/taxi" for s in range(streams)]
if rows == 1:  # ready before the clock starts; paced runs stamp the send time
    payloads = [json.dumps({"ts": float(k // streams), "value": v + (k % 97)}) for k in range(n)]
else:
    payloads = [json.dumps([{"ts": float((k // streams) * rows + r), "value": v + r} for r in range(rows)])
                for k in range(n)]
start = time.monotonic()
for k in range(n):
    payload = payloads[k]
    if rate:
        wait = start + k / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        payload = '{"ts":%r,"value":%r}' % (time.time(), v)
    box.publish(c, topics[k % streams], payload, qos=1)
while len(box):
    time.sleep(0.01)
c.disconnect(); c.loop_stop()
"""


def paired_us(f, g, n: int, repeats: int = 7) -> tuple[float, float]:
    """Median us per call of f and of g, timed in alternating blocks of n calls, so that a burst of
    load on a shared machine lands on both and their ratio holds."""
    runs: tuple[list, list] = ([], [])
    f(), g()
    for _ in range(repeats):
        for h, r in zip((f, g), runs):
            t = time.perf_counter()
            for _ in range(n):
                h()
            r.append((time.perf_counter() - t) / n * 1e6)
    return float(np.median(runs[0])), float(np.median(runs[1]))


def served(model: Path, backend: str, target: str | None, precision: str | None):
    s = load(model, backend=backend, target=target)
    if precision:  # the numpy reference at a chosen precision
        from edge.detector import Detector
        s = type(s)(Detector(s.artifact, precision), "numpy", None, None)
    return s


def engine_table(model: Path, values: np.ndarray, quick: bool) -> None:
    n1, nb = (500, 5) if quick else (3000, 20)
    print("### (a) engine vs bare backend step\n")
    print("| backend | target | bare step B=1 | engine B=1 | engine samples/s B=1 | engine/bare rate "
          "| bare per stream B=1024 | engine per stream, 1,024 streams |")
    print("|---|---|---|---|---|---|---|---|")
    for backend, target, precision in BACKENDS:
        s = served(model, backend, target, precision)
        cell = s.detector.cell
        z = s.detector.normalizer.normalize(values[:1024])  # what the engine hands the cell
        x1, st1 = z[:1], np.zeros((1, cell.state_size), np.float32)
        eng = Engine(s.detector)
        # the messages made before the clock starts, as the payload decoder hands them over
        singles = iter([[("dev/taxi", np.array([float(k)]), values[k % 64:k % 64 + 1])] for k in range(8 * n1 + 1)])
        bare1, e1 = paired_us(lambda: cell.step(x1, st1), lambda: eng.process(next(singles)), n1)
        xb, stb = z, np.zeros((1024, cell.state_size), np.float32)
        engb = Engine(s.detector, EngineConfig(max_streams=2048))
        names = [f"dev{k}/taxi" for k in range(1024)]
        rows = [values[k:k + 1] for k in range(1024)]
        rounds = iter([[(n, np.array([float(t)]), r) for n, r in zip(names, rows)] for t in range(8 * nb + 1)])
        bareb, eb = (v / 1024 for v in paired_us(lambda: cell.step(xb, stb), lambda: engb.process(next(rounds)), nb))
        print(f"| {backend} | {target or 'reference ' + precision} | {bare1:.1f} us | {e1:.1f} us | "
              f"{1e6 / e1:,.0f} | {bare1 / e1:.2f} | {bareb:.2f} us | {eb:.2f} us |")
    print()


def _runtime(model: Path, url: str, **cfg) -> tuple[Runtime, threading.Thread]:
    rt = Runtime(load(model, target="tflite"), BrokerConfig.from_url(url),
                 RuntimeConfig(client_id=f"bench-rt-{time.monotonic_ns()}", qos=1, **cfg))
    th = threading.Thread(target=rt.run, daemon=True)
    th.start()
    assert rt.subscribed.wait(10)
    return rt, th


def _publish(url: str, n: int, rows: int, streams: int, rate: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PUBLISHER, str(ROOT), url, str(n), str(rows), str(streams),
                             str(rate)])


def mqtt_table(model: Path, quick: bool) -> None:
    print("### (b) sustained throughput through Mosquitto, QoS 1, 64 streams\n")
    print("| samples/message | bare paho subscriber msg/s | runtime msg/s | runtime samples/s | runtime/bare "
          "| samples lost |")
    print("|---|---|---|---|---|---|")
    for rows in (1, 32):
        n = (4000 if quick else 20000) // (1 if rows == 1 else 8)
        with Mosquitto(persistence=False) as b:
            # bare subscriber: counts messages, nothing else
            import paho.mqtt.client as paho
            got, stamps = [0], []
            sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-bare", clean_session=False)
            done = threading.Event()

            def on_message(c, u, m):
                got[0] += 1
                if got[0] == 1 or got[0] == n:
                    stamps.append(time.monotonic())
                if got[0] == n:
                    done.set()
            sub.on_message = on_message
            sub.on_connect = lambda c, *a: c.subscribe("sensors/+/+", qos=1)
            sub.connect("127.0.0.1", b.port)
            sub.loop_start()
            time.sleep(0.3)
            p = _publish(b.url, n, rows, 64, 0)
            done.wait(300)
            p.wait(300)
            sub.disconnect()
            sub.loop_stop()
            bare = (n - 1) / (stamps[-1] - stamps[0])
            rt, th = _runtime(model, b.url, max_batch=1024)
            first = [None]
            p = _publish(b.url, n, rows, 64, 0)
            end = time.monotonic() + 600
            while rt.engine.counters["samples"] < n * rows and time.monotonic() < end:
                if first[0] is None and rt.counters["received"]:
                    first[0] = time.monotonic()
                time.sleep(0.001)
            last = time.monotonic()
            p.wait(60)
            rt.stop_event.set()
            th.join(10)
            lost = n * rows - rt.engine.counters["samples"]
            rate = (n - 1) / (last - first[0])
            print(f"| {rows} | {bare:,.0f} | {rate:,.0f} | {rate * rows:,.0f} | {rate / bare:.2f} | {lost} |")
    print()


SUBSCRIBER = r"""
import json, sys, time
import numpy as np
import paho.mqtt.client as paho
port, n, out, limit = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
lat = []
sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-lat-{time.monotonic_ns()}")
sub.on_message = lambda c, u, m: lat.append(time.time() - json.loads(m.payload)["ts"])
sub.on_connect = lambda c, *a: c.subscribe("scores/#", qos=0)
sub.connect("127.0.0.1", port)
sub.loop_start()
end = time.monotonic() + limit
while len(lat) < n and time.monotonic() < end:
    time.sleep(0.01)
sub.disconnect()
sub.loop_stop()
np.save(out, np.array(lat))
"""


def latency_table(model: Path, quick: bool) -> None:
    n = 6000 if quick else 20000
    print("### (c) latency at 2,000 messages/s (one sample per message, 64 streams, QoS 1)\n")
    print("The publisher and the end-to-end subscriber run in their own processes.\n")
    with Mosquitto(persistence=False) as b, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lat.npy"
        sub = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(b.port), str(n), str(out), "180"])
        time.sleep(0.5)
        rt, th = _runtime(model, b.url, scores_prefix="scores")
        rt.latency.clear()
        p = _publish(b.url, n, 1, 64, 2000.0)
        p.wait(120)
        sub.wait(200)
        rt.stop_event.set()
        th.join(10)
        e2e = np.load(out) * 1e3
    inside = np.array(rt.latency) * 1e3
    print("| measured | messages | p50 | p99 | max |")
    print("|---|---|---|---|---|")
    for name, a in (("arrival to outputs published (in the runtime)", inside),
                    ("publish to score received (end to end, two broker hops)", e2e)):
        print(f"| {name} | {len(a)} | {np.percentile(a, 50):.3f} ms | {np.percentile(a, 99):.3f} ms | "
              f"{a.max():.3f} ms |")
    print()


MEMORY = r"""
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
from edge.serve import load
from edge.engine import Engine, EngineConfig
def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) / 1024
s = load(sys.argv[2], backend=sys.argv[3] if sys.argv[3] != "-" else None, target=sys.argv[4] if sys.argv[4] != "-" else None)
n = int(sys.argv[5])
eng = Engine(s.detector, EngineConfig(max_streams=4096))
x = np.full((1, 1), 15000.0, np.float32)
for t in range(50):
    eng.process([(f"dev{k}/taxi", np.array([float(t)]), x) for k in range(n)])
print(rss())
"""


def memory_table(model: Path) -> None:
    print("### (d) resident memory of a fresh process (Python, numpy, the interpreter, the engine)\n")
    print("| backend | target | 1 stream | 1,024 streams |")
    print("|---|---|---|---|")
    for backend, target in (("numpy", None), ("onnx", "onnx"), ("litert", "tflite"), ("litert", "tflite-int8")):
        r = [float(subprocess.run([sys.executable, "-c", MEMORY, str(ROOT), str(model), backend, target or "-", str(n)],
                                  capture_output=True, text=True, check=True).stdout.split()[-1]) for n in (1, 1024)]
        print(f"| {backend} | {target or 'reference'} | {r[0]:.0f} MB | {r[1]:.0f} MB |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and messages")
    args = ap.parse_args()
    from converters.convert import emit
    from edge.specs import GRUConfig
    from trainer.config import GRUTrainConfig, TrainConfig
    from trainer.pipeline import train
    series = read_csv(TAXI)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"one interpreter thread; model GRU H=64, D=1\n")
    with tempfile.TemporaryDirectory() as tmp:
        model = train(series.head(3000), TrainConfig(model=GRUConfig(input_size=1, hidden=64), int8=True,
                                                     gru=GRUTrainConfig(epochs=2)), Path(tmp) / "gru64")
        from edge.artifact import load_artifact
        art = load_artifact(model)
        for name in ("onnx", "onnx-int8", "tflite", "tflite-int8"):
            emit(art, name, art.path)
        engine_table(model, series.values[3000:], args.quick)
        mqtt_table(model, args.quick)
        latency_table(model, args.quick)
        memory_table(model)


if __name__ == "__main__":
    main()
