"""The MQTT runtime against a real Mosquitto on a loopback port: alerts in NAB's labelled windows,
dead letters, a broker killed mid-stream, a runtime killed and resumed, TLS with a password, status,
hot reload. Every wait is bounded; every process is ended by its PID."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import numpy as np
import pytest

from edge.data import read_csv
from edge.detector import Detector
from edge.errors import RnnEdgeError
from edge.mqtt import BrokerConfig, ConnectRefused
from edge.payload import encode_binary
from edge.replay import replay
from edge.runtime import Runtime, RuntimeConfig, stream_of
from edge.serve import load

from .conftest import ROOT, TAXI, Collector

TRAIN_ROWS = 3000


@pytest.fixture(scope="module")
def taxi():
    return read_csv(TAXI)


@pytest.fixture(scope="module")
def taxi_model(tmp_path_factory, taxi):
    """The demo's model: an int8 ESN trained on nyc_taxi's first 3,000 rows only."""
    from edge.specs import ESNConfig
    from trainer.config import TrainConfig
    from trainer.pipeline import train
    return train(taxi.head(TRAIN_ROWS), TrainConfig(model=ESNConfig(input_size=1), int8=True),
                 tmp_path_factory.mktemp("taxi") / "model")


def _windows(name: str) -> list[tuple[float, float]]:
    w = json.loads((ROOT / "data" / "nab" / "combined_windows.json").read_text())[name]
    parse = lambda s: datetime.fromisoformat(s).replace(tzinfo=timezone.utc).timestamp()  # noqa: E731
    return [(parse(a), parse(b)) for a, b in w]


class Running:
    """A Runtime served in a thread of this process, stopped (and joined) on close."""

    def __init__(self, model, broker, **cfg) -> None:
        cfg.setdefault("client_id", f"rt-{id(self)}")
        loader = cfg.pop("loader", None)
        mqtt = {k: cfg.pop(k) for k in ("protocol", "session_expiry_s") if k in cfg}
        self.rt = Runtime(load(model), BrokerConfig.from_url(broker.url, **mqtt), RuntimeConfig(**cfg), loader=loader)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.rt.subscribed.wait(10), "runtime did not subscribe within 10 s"

    def _run(self) -> None:
        try:
            self.counters = self.rt.run()
        except BaseException as e:  # noqa: BLE001 - reported to the test
            self.error = e

    def processed(self) -> int:
        c = self.rt.engine.counters
        return c["samples"] + c["stale"]

    def wait_processed(self, n: int, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while self.processed() < n and time.monotonic() < end and self.error is None:
            time.sleep(0.02)
        assert self.error is None, self.error
        assert self.processed() >= n, f"processed {self.processed()} of {n} within {timeout} s"

    def close(self) -> None:
        self.rt.stop_event.set()
        self.thread.join(15)
        assert not self.thread.is_alive()


def test_mqtt5_session_outlives_the_runtime_until_it_expires(broker, taxi, taxi_model):
    """MQTT 5: the broker queues QoS 1 samples for a stopped runtime while its session lasts and
    hands them over on restart; once the session expiry has passed, it keeps nothing for it."""
    url = BrokerConfig.from_url(broker.url, protocol="5")
    ts, values = taxi.timestamps[TRAIN_ROWS:], taxi.values[TRAIN_ROWS:]
    r = Running(taxi_model, broker, client_id="rt-v5", protocol="5", session_expiry_s=60)
    replay(ts[:100], values[:100], url, "sensors/v5/taxi")
    r.wait_processed(100)
    r.close()
    replay(ts[100:300], values[100:300], url, "sensors/v5/taxi")  # while it is away
    r = Running(taxi_model, broker, client_id="rt-v5", protocol="5", session_expiry_s=1)
    r.wait_processed(200)
    time.sleep(0.3)
    assert r.processed() == 200  # a fresh engine: exactly the 200 queued while it was away
    r.close()
    time.sleep(2.5)  # the 1 s session expires
    replay(ts[300:350], values[300:350], url, "sensors/v5/taxi")  # nobody is subscribed now
    r = Running(taxi_model, broker, client_id="rt-v5", protocol="5", session_expiry_s=60)
    try:
        time.sleep(1.0)
        assert r.processed() == 0
        replay(ts[350:360], values[350:360], url, "sensors/v5/taxi")
        r.wait_processed(10)
        assert r.processed() == 10
    finally:
        r.close()


def test_stream_ids_come_from_the_wildcard_levels():
    from edge.errors import ConfigError
    for bad, why in (("sensors/#/x", "not a valid MQTT topic filter"), ("$share/g/sensors/+", "shared subscriptions")):
        with pytest.raises(ConfigError, match=why):
            RuntimeConfig(subscribe=(bad,))
    assert stream_of(("sensors/+/+",), "sensors/dev1/taxi") == "dev1/taxi"
    assert stream_of(("site/a/#",), "site/a/b/c") == "b/c"
    assert stream_of(("plant/line1/temp",), "plant/line1/temp") == "temp"


def test_nab_stream_alerts_fall_in_labelled_windows_and_scores_match_offline(broker, collector, taxi, taxi_model):
    """nyc_taxi after the training rows, through the runtime at QoS 1: at least two alerts lie in
    NAB's labelled windows and at most one outside (a Saturday night above anything in the two
    training months), and the published scores equal offline Detector.run bit for bit."""
    r = Running(taxi_model, broker, scores_prefix="scores", ha_discovery=True)
    try:
        ts, values = taxi.timestamps[TRAIN_ROWS:], taxi.values[TRAIN_ROWS:]
        replay(ts, values, BrokerConfig.from_url(broker.url), "sensors/nyc/taxi", rows_per_message=4)
        r.wait_processed(len(ts))
        assert collector.wait_for(lambda: len(collector.json("scores/")) >= len(ts))
    finally:
        r.close()
    offline = Detector(r.rt.served.artifact).run(values, ts)
    scores = sorted(collector.json("scores/nyc/taxi"), key=lambda s: s["ts"])  # QoS 0 promises no order
    np.testing.assert_array_equal([s["ts"] for s in scores], ts)
    np.testing.assert_array_equal([s["score"] for s in scores], offline["score"])
    np.testing.assert_array_equal([s["adaptive"] for s in scores], offline["adaptive"])
    alerts = collector.json("alerts/nyc/taxi")
    raised = [a for a in alerts if a["event"] == "raised"]
    assert len(raised) == int((offline["events"] == 1).sum())
    windows = _windows("realKnownCause/nyc_taxi.csv")
    inside = [a for a in raised if any(lo <= a["ts"] <= hi for lo, hi in windows)]
    assert len(inside) >= 2 and len(raised) - len(inside) <= 1, [a["time"] for a in raised]
    for a in raised:
        assert a["model_id"] == r.rt.served.artifact.model_id and a["source"] == "adaptive"
        assert a["adaptive"] >= a["threshold"] == 0.55
        assert a["channels"][0]["name"] == "value" and a["id"].startswith("nyc/taxi@")
    (config,) = collector.json("homeassistant/binary_sensor/")  # Home Assistant discovery, once per stream
    assert config["device_class"] == "problem" and config["state_topic"].endswith("/ha/nyc/taxi")
    states = [p for t, p in collector.messages if t == config["state_topic"]]
    assert states == [b"ON" if a["event"] == "raised" else b"OFF" for a in alerts]


def test_cli_serves_a_deploy_bundle_on_an_embedded_broker(tmp_path, taxi_model):
    """The README's main command in small: `rnnedge run BUNDLE --replay CSV` with no broker starts
    its own Mosquitto, serves the bundle's int8 TFLite target and prints the alerts it raises."""
    from converters.convert import emit
    from edge.artifact import load_artifact
    from edge.bundle import make_bundle
    art = load_artifact(taxi_model)
    emit(art, "tflite-int8", art.path)
    runtime = {"target": "tflite-int8", "backend": "tflite", "precision": "int8", "interpreter": "litert",
               "delegate": "xnnpack", "mqtt": {"subscribe": "sensors/+/+", "qos": 1, "keepalive_s": 30}}
    bundle = make_bundle(art.path, ["tflite-int8"], "raspberry-pi-4", runtime, tmp_path / "taxi.tar")
    p = _cli("run", str(bundle), "--replay", str(TAXI), "--replay-from-row", str(TRAIN_ROWS), "-q")
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out
    raised = [line for line in out.splitlines() if "  raised  " in line]
    windows = _windows("realKnownCause/nyc_taxi.csv")
    when = [datetime.fromisoformat(line[:19]).replace(tzinfo=timezone.utc).timestamp() for line in raised]
    inside = sum(any(lo <= t <= hi for lo, hi in windows) for t in when)
    assert inside >= 2 and len(raised) - inside <= 1, out
    assert "embedded mosquitto on mqtt://127.0.0.1:" in out and "7320 samples from 1 stream(s)" in out


@pytest.mark.skipif(os.environ.get("RNNEDGE_TEST_GPU") != "1",
                    reason="set RNNEDGE_TEST_GPU=1 where LiteRT sees a GPU (Vulkan on Linux)")
def test_a_gpu_bundle_is_served_on_the_gpu_and_alerts_as_on_the_cpu(tmp_path, taxi_model):
    """`rnnedge run BUNDLE --accelerator gpu --replay CSV`: an android-gpu bundle's float16 target
    stepped on LiteRT's GPU accelerator (float16 arithmetic) through the MQTT runtime raises the
    alerts the same target raises on the CPU, within a flip at a threshold's edge."""
    from converters.convert import emit
    from edge.artifact import load_artifact
    from edge.bundle import make_bundle
    emit(load_artifact(taxi_model), "tflite-fp16", taxi_model)
    runtime = {"target": "tflite-fp16", "backend": "tflite", "precision": "float16", "interpreter": "litert",
               "delegate": "gpu", "mqtt": {"subscribe": "sensors/+/+", "qos": 1, "keepalive_s": 30}}
    bundle = make_bundle(taxi_model, ["tflite-fp16"], "android-gpu", runtime, tmp_path / "gpu.tar")
    raised = {}
    for accelerator in ("gpu", "cpu"):
        p = _cli("run", str(bundle), "--replay", str(TAXI), "--replay-from-row", str(TRAIN_ROWS),
                 "--accelerator", accelerator)
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out
        assert "7320 samples from 1 stream(s)" in out, out
        assert ("target tflite-fp16 on litert's GPU accelerator" in out) == (accelerator == "gpu"), out
        raised[accelerator] = [line[:19] for line in out.splitlines() if "  raised  " in line]
    assert raised["gpu"] and len(set(raised["gpu"]) ^ set(raised["cpu"])) <= 1, raised


def test_a_tflite_target_is_served_in_tflite_micro_on_request(taxi_model):
    """`--backend tflite-micro`: the int8 target in a microcontroller's interpreter, stepping the
    recorded stream as the runtime would, its alerts those of the LiteRT-served target."""
    pytest.importorskip("tflite_micro")
    from converters.convert import emit
    from edge.artifact import load_artifact
    from edge.targets import MicroCell
    emit(load_artifact(taxi_model), "tflite-int8", taxi_model)
    micro, lite = load(taxi_model, backend="tflite-micro"), load(taxi_model, backend="litert")
    assert isinstance(micro.detector.cell, MicroCell) and micro.target == "tflite-int8"
    assert "on tflite-micro" in micro.describe()
    rows = read_csv(TAXI)
    part = slice(TRAIN_ROWS, TRAIN_ROWS + 2000)
    got, want = (s.detector.run(rows.values[part], rows.timestamps[part]) for s in (micro, lite))
    assert np.mean(got["active"] == want["active"]) >= 0.99


def test_a_target_changed_after_convert_is_refused_before_an_interpreter_opens_it(tmp_path, taxi_model, taxi):
    """A model directory's target is served only while it matches the sha256 `rnnedge convert`
    recorded in targets.json: an interpreter may abort the process on a malformed model (LiteRT
    does on a near-zero quantization scale) rather than refuse it. Without a record it is served."""
    import shutil

    from converters.convert import convert
    from edge.artifact import load_artifact
    from edge.errors import DigestMismatchError
    model = shutil.copytree(taxi_model, tmp_path / "model")
    convert(load_artifact(model), ["tflite-int8"], taxi.values[TRAIN_ROWS:TRAIN_ROWS + 2000], "taxi")
    assert load(model, backend="litert").target == "tflite-int8"
    path = model / "model.int8.tflite"
    good = path.read_bytes()
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(DigestMismatchError, match="model.int8.tflite: does not match its sha256 in targets.json"):
        load(model, backend="litert")
    path.write_bytes(good)
    (model / "targets.json").unlink()  # no record: prepared in a child process first, then served
    assert load(model, backend="litert").target == "tflite-int8"


def test_a_target_litert_would_abort_on_is_refused_not_fatal(tmp_path, taxi_model, monkeypatch):
    """A .tflite file whose int8 FULLY_CONNECTED XNNPACK cannot create (here the readout's input part
    left at ai-edge-quantizer's scale for an empty range, about 4e-12: a requantization scale of 2e9,
    where XNNPACK needs under 256) makes LiteRT abort the process preparing it. `open_target` refuses
    it from its scales before LiteRT prepares it, naming the op and the scales; TFLite Micro, whose
    kernels have no such limit, serves it."""
    from converters import graph, tflite_target
    from converters.convert import emit
    from edge.artifact import load_artifact
    from edge.errors import ArtifactError
    from edge.targets import open_target

    from .conftest import train_small, write_csv
    flat = write_csv(tmp_path / "flat.csv", np.full(600, 45.0, np.float32))
    model = train_small("esn", tmp_path / "model", flat)
    pinned = graph.int8_grids
    monkeypatch.setattr(graph, "int8_grids", lambda a: {n: s for n, s in pinned(a).items() if n != "ro_input"})
    monkeypatch.setattr(tflite_target, "range_scale", lambda lo, hi: 0.0)  # the quantizer's scale, not 1
    monkeypatch.setattr(tflite_target, "pinnable", lambda s: s)
    art = load_artifact(model)
    path, _ = emit(art, "tflite-int8", model)
    with pytest.raises(ArtifactError, match="model.int8.tflite: LiteRT cannot run it, and would abort the process "
                                            "preparing it: its int8 FULLY_CONNECTED 'ro_input' has input scale 1 x "
                                            "weight scale .* / output scale 3.922e-12 = 2.008e\\+09, where XNNPACK "
                                            "needs under 256"):
        load(model, backend="litert")
    if importlib.util.find_spec("tflite_micro") is not None:
        open_target(path, "tflite-int8", art.config, runtime="tflite-micro")


def test_a_target_whose_preparation_kills_the_process_is_refused_not_fatal(tmp_path, taxi_model, monkeypatch):
    """A model directory's target with no record to vouch for it is first prepared in a child
    process: one whose preparation kills that process (as LiteRT aborts on some malformed models,
    past any Python handler) is refused with the signal's name, and the serving process lives on.
    The child here is a process that aborts itself: no known model still kills LiteRT past the
    check above."""
    import shutil

    from converters.convert import emit
    from edge.artifact import load_artifact
    from edge.errors import ArtifactError
    model = shutil.copytree(taxi_model, tmp_path / "model")
    emit(load_artifact(model), "tflite-int8", model)
    child = tmp_path / "aborts"
    child.write_text("#!/bin/sh\nkill -ABRT $$\n")
    child.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(child))
    with pytest.raises(ArtifactError, match="model.int8.tflite: its interpreter killed the process preparing "
                                            "it \\(SIGABRT\\); refused"):
        load(model, backend="litert")
    monkeypatch.undo()
    assert load(model, backend="litert").target == "tflite-int8"


def test_a_microcontrollers_bundle_is_served_in_tflite_micro(tmp_path, taxi_model, monkeypatch):
    """A bundle deployed for esp32-s3 (its interpreter tflite-micro) serves its target in TFLite
    Micro when no backend is asked for: the alerts the microcontroller would raise. Without
    tflite-micro installed it falls back to LiteRT and says so."""
    pytest.importorskip("tflite_micro")
    from converters.convert import emit
    from edge.artifact import load_artifact
    from edge.bundle import make_bundle
    from edge.targets import LiteRTCell, MicroCell
    emit(load_artifact(taxi_model), "tflite-int8", taxi_model)
    runtime = {"target": "tflite-int8", "backend": "tflite", "precision": "int8", "interpreter": "tflite-micro",
               "delegate": "esp-nn", "mqtt": {"subscribe": "sensors/+/+", "qos": 1, "keepalive_s": 30}}
    bundle = make_bundle(taxi_model, ["tflite-int8"], "esp32-s3", runtime, tmp_path / "esp.tar")
    served = load(bundle, workdir=tmp_path)
    assert isinstance(served.detector.cell, MicroCell) and served.backend == "tflite-micro"
    assert "bundle for esp32-s3, target tflite-int8 on tflite-micro" in served.describe()
    assert load(bundle, workdir=tmp_path, backend="litert").backend == "litert"  # asked for: as asked
    monkeypatch.setitem(sys.modules, "tflite_micro.python.tflite_micro", None)  # as if not installed
    with pytest.warns(UserWarning, match="runs on litert here, not on tflite-micro.*needs tflite-micro"):
        served = load(bundle, workdir=tmp_path)
    assert isinstance(served.detector.cell, LiteRTCell) and served.backend == "litert"


def test_malformed_payloads_are_dead_lettered_and_processing_goes_on(broker, collector, taxi_model):
    r = Running(taxi_model, broker)
    bad = [
        (b"\x00\x01garbage", "not JSON"),
        (b'{"value": 1}', "missing 'ts'"),
        (b'{"ts": 2, "values": [1, 2]}', "list of 1 numbers"),
        (b'{"ts": 2, "value": NaN}', "is nan"),
        (b'{"ts": 2, "value": "high"}', "not a number"),
        (b'{"ts": 2, "temp": 3}', "unknown field"),
        (b'{"ts": 0.5, "value": 3}', "not after the stream's last"),
        (b'[{"ts": 3, "value": 1}, {"ts": 3, "value": 2}]', "row 1: timestamp"),
        (encode_binary(np.array([5.0]), np.ones((1, 2))), "2 channels"),
        (b"[" + b"1," * 40_000 + b"1]", "byte limit"),
    ]
    pub = Collector(broker.port)
    try:
        t = 1.0
        good = 0
        for payload, _ in [(b'{"ts": 1, "value": 5}', None), *bad]:
            pub.client.publish("sensors/d1/x", payload, qos=1).wait_for_publish(5)
            t += 1
            pub.client.publish("sensors/d1/x", json.dumps({"ts": t, "value": 5.0}), qos=1).wait_for_publish(5)
            good += 1
        r.wait_processed(good + 1 + 1)  # the good ones, the first, and the stale one counted by the engine
        dead = f"rnnedge/{r.rt.config.client_id}/deadletter"
        assert collector.wait_for(lambda: len(collector.json(dead)) >= len(bad))
    finally:
        r.close()
        pub.close()
    letters = collector.json(dead)
    assert [any(reason in d["reason"] for d in letters) for _, reason in bad] == [True] * len(bad)
    assert all(d["topic"] == "sensors/d1/x" and ("payload" in d or "payload_base64" in d) for d in letters)
    assert r.counters["dead_lettered"] == len(bad) and r.counters["samples"] == good + 1


def test_a_dead_letter_waits_in_the_outbox_behind_a_dropped_connection(taxi_model):
    """Dead letters take the outbox's path, as alerts do: after a drop they are held, in order,
    until the resends are acknowledged, and counted as unacknowledged."""
    rt = Runtime(load(taxi_model), BrokerConfig.from_url("mqtt://127.0.0.1:1"), RuntimeConfig(client_id="rt-dl"))
    rt.outbox.dropped()
    rt.handle([("sensors/d1/x", b"garbage", time.monotonic())])
    assert rt.counters["dead_lettered"] == 1 and rt.outbox.holding and len(rt.outbox) == 1


def test_a_dead_letter_the_broker_never_had_is_sent_after_a_restart(broker, collector, taxi_model, tmp_path):
    """A dead letter held at a checkpoint (the broker unreachable) is in the checkpoint, and the
    runtime restarted on it sends it once connected, marked resent, with its id."""
    cfg = dict(client_id="rt-dl-restart", checkpoint=str(tmp_path / "state.npz"))
    rt = Runtime(load(taxi_model), BrokerConfig.from_url("mqtt://127.0.0.1:1"), RuntimeConfig(**cfg))
    rt.outbox.dropped()
    rt.handle([("sensors/d1/x", b"\xffgarbage", time.monotonic())])
    rt.checkpoint()  # the process dies here: the broker never got the letter
    r = Running(taxi_model, broker, **cfg)
    try:
        topic = "rnnedge/rt-dl-restart/deadletter"
        assert collector.wait_for(lambda: collector.json(topic), 10)
    finally:
        r.close()
    [letter] = collector.json(topic)
    assert letter["resent"] is True and letter["topic"] == "sensors/d1/x" and len(letter["id"]) == 32
    assert letter["reason"].startswith("not JSON") and letter["payload_base64"] == "/2dhcmJhZ2U=", letter
    assert r.rt.outbox.pending() == []  # acknowledged now: the next checkpoint drops it


@pytest.mark.slow
def test_broker_restarted_mid_stream_loses_nothing(tmp_path, taxi, taxi_model):
    """Stop the broker (SIGTERM: it saves its store) halfway through a QoS 1 replay and restart it on
    its persistence file: the runtime (persistent session) and the publisher (resending what was
    not acknowledged) reconnect, and every sample is stepped once. (Not SIGKILL: Mosquitto
    acknowledges a message before it writes its store, so a crash loses what arrived since its
    last save, whatever the runtime does; deploy/mosquitto.conf says so.)"""
    from edge.broker import Mosquitto
    n = 3000
    broker = Mosquitto(workdir=tmp_path / "broker").start()
    ts, values = taxi.timestamps[TRAIN_ROWS:TRAIN_ROWS + n], taxi.values[TRAIN_ROWS:TRAIN_ROWS + n]
    r = Running(taxi_model, broker)
    done = threading.Event()
    errors = []

    def publish():
        try:
            replay(ts, values, BrokerConfig.from_url(broker.url), "sensors/nyc/taxi", speed=300 * 1000, timeout=60)
        except RnnEdgeError as e:
            errors.append(e)
        done.set()

    th = threading.Thread(target=publish, daemon=True)
    th.start()
    try:
        end = time.monotonic() + 20
        while r.processed() < n // 3 and time.monotonic() < end:
            time.sleep(0.01)
        assert 0 < r.processed() < n, "the stop must land mid-stream"
        broker.stop()
        time.sleep(0.5)
        broker.start()
        assert done.wait(90) and not errors, errors
        r.wait_processed(n, timeout=60)
        time.sleep(0.3)
        topic = f"rnnedge/{r.rt.config.client_id}/status"
        late = Collector(broker.port, topic)  # the retained status is the one sent on the reconnect
        try:                                  # (held behind paho's resends, then sent by a tick)
            assert late.wait_for(lambda: late.json(topic) and late.json(topic)[-1]["counters"]["connects"] >= 2, 10)
        finally:
            late.close()
    finally:
        r.close()
        broker.close()
    assert r.counters["samples"] == n, r.counters  # each sample stepped once; a resent duplicate is counted stale
    assert r.counters["connects"] >= 2
    offline = Detector(r.rt.served.artifact).run(values, ts)
    assert r.counters["raised"] == int((offline["events"] == 1).sum())


def test_a_publish_after_a_reconnect_never_overtakes_the_resent_ones(tmp_path):
    """paho resends what the broker had not acknowledged after the CONNACK, from its network thread,
    and a publish made in between (here from on_connect; the runtime's processing thread can hit the
    same window) went out first: a raise unacknowledged at the drop, then its clear, left the retained
    Home Assistant state ON. The outbox holds the clear until the raise is acknowledged."""
    from edge.broker import Mosquitto
    from edge.mqtt import Outbox, client
    broker = Mosquitto(workdir=tmp_path / "broker").start()
    cfg = BrokerConfig.from_url(broker.url)
    outbox, connected, connects = Outbox(), threading.Event(), []

    def on_connect(cl, userdata, flags, reason_code, properties):
        connects.append(reason_code)
        if len(connects) == 2:
            outbox.publish(cl, "ha/state", "OFF", retain=True, item="clear")
        connected.set()

    def on_disconnect(*args):
        connected.clear()
        outbox.dropped()

    c = client(cfg, "outbox-order", persistent=False)
    c.on_connect, c.on_disconnect = on_connect, on_disconnect
    c.reconnect_delay_set(0.05, 0.2)
    cfg.connect(c, persistent=False)
    c.loop_start()
    try:
        assert connected.wait(10)
        os.kill(broker.proc.pid, signal.SIGSTOP)  # frozen: the raise is sent and never acknowledged
        outbox.publish(c, "ha/state", "ON", retain=True, item="raise")
        time.sleep(0.2)
        assert outbox.pending() == ["raise"]
        broker.kill()  # its store never saw the raise: only paho's resend brings it
        end = time.monotonic() + 10
        while connected.is_set() and time.monotonic() < end:
            time.sleep(0.01)
        assert not connected.is_set()
        outbox.publish(c, "alerts/s", "{}", item="later")  # held; the checkpoint still counts it open
        assert outbox.pending() == ["raise", "later"]
        broker.start()
        end = time.monotonic() + 20
        while (len(connects) < 2 or len(outbox)) and time.monotonic() < end:
            outbox.flush(c, connected.is_set())  # the runtime does this on every tick
            time.sleep(0.01)
        assert len(connects) == 2 and len(outbox) == 0, (connects, outbox.pending())
    finally:
        c.disconnect()
        c.loop_stop()
    reader = Collector(broker.port, "ha/#")
    try:
        assert reader.wait_for(lambda: reader.messages, timeout=10)
        assert reader.messages == [("ha/state", b"OFF")]  # the retained state is the last one published
    finally:
        reader.close()
        broker.close()


def _env(**extra) -> dict:
    """This environment with the checkout first on the path (packages found through PYTHONPATH kept)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def _cli(*args, env: dict | None = None) -> subprocess.Popen:
    env = env or _env()
    return subprocess.Popen([sys.executable, "-m", "edge.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_runtime_sigkilled_resumes_from_checkpoint_without_a_duplicate_alert(broker, collector, tmp_path,
                                                                             taxi, taxi_model):
    ts, values = taxi.timestamps[TRAIN_ROWS:], taxi.values[TRAIN_ROWS:]
    offline = Detector(load(taxi_model).artifact).run(values, ts)
    first_raise = int(np.flatnonzero(offline["events"] == 1)[0])
    cut = first_raise + 20
    csv = tmp_path / "tail.csv"
    csv.write_text("timestamp,value\n" + "".join(f"{t:.0f},{v[0]}\n" for t, v in zip(ts, values)))
    args = ["run", str(taxi_model), "--broker", broker.url, "--client-id", "rt-kill", "--checkpoint",
            str(tmp_path / "state.npz"), "--checkpoint-interval", "0.2", "--scores-prefix", "scores", "-q"]
    status = "rnnedge/rt-kill/status"

    def online() -> bool:
        docs = collector.json(status)
        return bool(docs) and docs[-1]["state"] == "online"

    def replay_rows(a: int, b: int) -> None:
        p = _cli("replay", str(csv), "--broker", broker.url, "--topic", "sensors/nyc/taxi", "--from-row", str(a),
                 "--rows", str(b - a))
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0, out

    def scored(k: int) -> bool:
        return len(collector.json("scores/nyc/taxi")) >= k

    # a SIGKILLed run cannot remove its scratch folder: keep it under tmp_path
    env = _env(TMPDIR=str(tmp_path))
    proc = _cli(*args, env=env)
    try:
        assert collector.wait_for(online, 30), proc.stdout
        replay_rows(0, cut)
        assert collector.wait_for(lambda: scored(cut), 60)
        time.sleep(0.6)  # past a checkpoint interval
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        collector.messages.clear()
        proc = _cli(*args, env=env)
        assert collector.wait_for(lambda: any(d["state"] == "online" for d in collector.json(status)), 30)
        replay_rows(cut, len(ts))
        assert collector.wait_for(lambda: scored(len(ts) - cut), 60)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    later = sorted(collector.json("scores/nyc/taxi"), key=lambda s: s["ts"])
    np.testing.assert_array_equal([s["score"] for s in later], offline["score"][cut:])  # resumed, not re-warmed
    raised = [a["id"] for a in collector.json("alerts/") if a["event"] == "raised"]
    want = int((offline["events"][cut:] == 1).sum())
    assert len(raised) == want and len(set(raised)) == want
    assert all(a["ts"] > ts[cut - 1] for a in collector.json("alerts/"))  # the first episode is not raised again


@pytest.fixture
def tls_broker(tmp_path):
    """Mosquitto with only a TLS listener that wants a username and password."""
    from edge.broker import Mosquitto
    d = tmp_path / "tls"
    d.mkdir()
    ssl = lambda *a: subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)  # noqa: E731
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=rnnedge test CA")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext")
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(d / "passwd"), "edge", "s3cret"], check=True,
                   capture_output=True)
    extra = (f"cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n"
             f"password_file {d}/passwd\n")
    b = Mosquitto(workdir=d / "broker", anonymous=False, extra=extra).start()
    yield b, d
    b.close()


def test_tls_and_password(tls_broker, taxi_model, tmp_path):
    b, d = tls_broker
    (tmp_path / "pw").write_text("s3cret\n")
    url = f"mqtts://127.0.0.1:{b.port}"
    good = BrokerConfig.from_url(url, ca=str(d / "ca.pem"), username="edge", password_file=str(tmp_path / "pw"))
    rt = Runtime(load(taxi_model), good, RuntimeConfig(client_id="rt-tls", subscribe=("sensors/#",)))
    th = threading.Thread(target=rt.run, daemon=True)
    th.start()
    try:
        assert rt.subscribed.wait(15)
        replay(np.array([1.0, 2.0]), np.ones((2, 1)), good, "sensors/a")
        end = time.monotonic() + 10
        while rt.engine.counters["samples"] < 2 and time.monotonic() < end:
            time.sleep(0.02)
        assert rt.engine.counters["samples"] == 2
    finally:
        rt.stop_event.set()
        th.join(10)
    (tmp_path / "bad").write_text("wrong\n")
    bad = BrokerConfig.from_url(url, ca=str(d / "ca.pem"), username="edge", password_file=str(tmp_path / "bad"))
    rt = Runtime(load(taxi_model), bad, RuntimeConfig(client_id="rt-tls-bad"))
    with pytest.raises(ConnectRefused, match="refused the connection.*(password|authori)"):
        rt.run(until=lambda r, end=time.monotonic() + 20: time.monotonic() > end)
    p = _cli("run", str(taxi_model), "--broker", url, "--ca", str(d / "ca.pem"), "--username", "edge",
             "--password-file", str(tmp_path / "bad"), "--duration", "20", "-q")
    out, _ = p.communicate(timeout=40)
    assert p.returncode == 1 and "Error: the broker refused the connection" in out


def test_status_is_retained_with_a_last_will(broker, collector, taxi_model):
    r = Running(taxi_model, broker, client_id="rt-status", status_interval_s=0.2)
    status = "rnnedge/rt-status/status"
    try:
        assert collector.wait_for(lambda: len(collector.json(status)) >= 2, 10)
        doc = collector.json(status)[-1]
        assert doc["state"] == "online" and doc["model_id"] == r.rt.served.artifact.model_id
        assert {"received", "dead_lettered", "dropped", "samples"} <= set(doc["counters"])
    finally:
        r.close()
    assert collector.wait_for(lambda: collector.json(status)[-1]["state"] == "offline", 10)
    late = Collector(broker.port, status)  # retained: a newcomer sees the last state at once
    try:
        assert late.wait_for(lambda: late.json(status), 5) and late.json(status)[-1]["state"] == "offline"
    finally:
        late.close()


def test_hot_reload_drops_no_sample(broker, taxi, taxi_model, tmp_path):
    from edge.specs import ESNConfig
    from trainer.config import TrainConfig
    from trainer.pipeline import train
    other = train(taxi.head(TRAIN_ROWS), TrainConfig(model=ESNConfig(input_size=1, units=60, seed=5)),
                  tmp_path / "other")
    models = iter([other])
    r = Running(taxi_model, broker, loader=lambda: load(next(models)))
    n = 2000
    ts, values = taxi.timestamps[TRAIN_ROWS:TRAIN_ROWS + n], taxi.values[TRAIN_ROWS:TRAIN_ROWS + n]
    th = threading.Thread(target=replay, args=(ts, values, BrokerConfig.from_url(broker.url), "sensors/a/b"),
                          kwargs={"speed": 300 * 2000}, daemon=True)
    th.start()
    try:
        end = time.monotonic() + 20
        while r.processed() < n // 4 and time.monotonic() < end:
            time.sleep(0.01)
        r.rt.reload_event.set()
        th.join(60)
        r.wait_processed(n)
    finally:
        r.close()
    assert r.counters["reloads"] == 1 and r.counters["samples"] == n
    assert r.rt.served.artifact.model_id == load(other).artifact.model_id


def test_embedded_fallback_broker_amqtt(tmp_path, taxi_model, taxi):
    """Without Mosquitto, `rnnedge run` starts amqtt (pure Python) instead; forced here."""
    csv = tmp_path / "part.csv"
    rows = range(TRAIN_ROWS, TRAIN_ROWS + 600)
    csv.write_text("timestamp,value\n" + "".join(f"{taxi.timestamps[k]:.0f},{taxi.values[k, 0]}\n" for k in rows))
    p = _cli("run", str(taxi_model), "--replay", str(csv), "-q", env=_env(RNNEDGE_EMBEDDED_BROKER="amqtt"))
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out
    assert "embedded amqtt on mqtt://127.0.0.1:" in out and "600 samples from 1 stream(s)" in out
