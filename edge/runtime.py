"""The edge runtime: MQTT sensor feeds in, one detector state per stream, scores and alerts out.

    network thread (paho loop) --on_message--> bounded queue --> processing loop (this thread):
        decode + validate -> Engine.process (batched over streams) -> alerts, scores, dead letters
        -> checkpoint on an interval, after every alert event and at shutdown

Topics (defaults; <id> is the client id):
    subscribe        sensors/+/+           stream id = the topic levels from the first wildcard on
    alerts           alerts/<stream>       QoS 1: raise and clear events
    scores           scores/<stream>       QoS 0, only with scores_prefix set: every score
    dead letters     rnnedge/<id>/deadletter   QoS 1: {"id", "reason", "topic", "row", "payload"...}
    status           rnnedge/<id>/status   retained; last will {"state": "offline"}

Delivery: QoS 1 on a persistent session (clean_session=False under a fixed client id), so the broker
queues what arrives while the runtime or the link is down; reconnects back off exponentially with
jitter up to a short ceiling. The hand-off queue is bounded; when it is full the network thread
waits (`block`, the default: TCP pushes back to the broker, which queues), or drops the newest or
oldest message, counted. Alerts are at-least-once: each carries an `id`; one not yet acknowledged
by the broker at a checkpoint is kept in it and sent again after a restart; so is a dead letter,
which carries an `id` too.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import re
import socket
import ssl
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from . import __version__
from .engine import Engine, EngineConfig
from .errors import ConfigError, DataError
from .mqtt import Backoff, BrokerConfig, ConnectRefused, Outbox, client, paho, refusal
from .payload import Decoder, PayloadError
from .serve import Served
from .validation import check_choice, check_float, check_int

OVERFLOW = ("block", "drop-newest", "drop-oldest")
log = logging.getLogger("rnnedge.runtime")


@dataclass(frozen=True)
class RuntimeConfig:
    subscribe: tuple[str, ...] = ("sensors/+/+",)
    qos: int = 1
    client_id: str = f"rnnedge-{socket.gethostname()}"
    alerts_prefix: str = "alerts"
    scores_prefix: str | None = None
    dead_letter_topic: str | None = None   # default rnnedge/<client id>/deadletter
    status_topic: str | None = None        # default rnnedge/<client id>/status
    status_interval_s: float = 10.0
    checkpoint: str | None = None          # file; None: no durability
    checkpoint_interval_s: float = 10.0
    queue_size: int = 10_000
    on_overflow: str = "block"
    max_batch: int = 1024
    max_payload: int = 65_536
    watch: bool = False                    # reload the model when its file or folder changes
    ha_discovery: bool = False
    ha_prefix: str = "homeassistant"
    backoff_ceiling_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.subscribe:
            raise ConfigError("the runtime needs at least one topic filter to subscribe to")
        for f in self.subscribe:
            if f.startswith("$share/"):
                raise ConfigError(f"{f!r}: shared subscriptions hand each message to any runtime of the group, "
                                  "which would split a stream's samples between states; give each runtime its "
                                  "own topic filters instead")
            if not f or "#" in f[:-1] or any(("+" in lv or "#" in lv) and len(lv) > 1 for lv in f.split("/")):
                raise ConfigError(f"{f!r} is not a valid MQTT topic filter ('+' and '#' fill whole levels, "
                                  "'#' only last)")
        check_int("RuntimeConfig", "qos", self.qos, 0, 2)
        check_int("RuntimeConfig", "queue_size", self.queue_size, 1, 10_000_000)
        check_int("RuntimeConfig", "max_batch", self.max_batch, 1, 1_000_000)
        check_int("RuntimeConfig", "max_payload", self.max_payload, 16, 256 * 1024 * 1024)
        check_choice("RuntimeConfig", "on_overflow", self.on_overflow, OVERFLOW)
        check_float("RuntimeConfig", "status_interval_s", self.status_interval_s, 0.1, 86400.0)
        check_float("RuntimeConfig", "checkpoint_interval_s", self.checkpoint_interval_s, 0.05, 86400.0)
        check_float("RuntimeConfig", "backoff_ceiling_s", self.backoff_ceiling_s, 0.1, 3600.0)

    @property
    def dead_letters(self) -> str:
        return self.dead_letter_topic or f"rnnedge/{self.client_id}/deadletter"

    @property
    def status(self) -> str:
        return self.status_topic or f"rnnedge/{self.client_id}/status"


def stream_of(filters: tuple[str, ...], topic: str) -> str:
    """The stream id of `topic`: its levels from the first wildcard of the filter it matches on
    (sensors/+/+ and sensors/dev1/taxi give dev1/taxi); the last level for a filter without one."""
    levels = topic.split("/")
    for f in filters:
        if paho.topic_matches_sub(f, topic):
            flv = f.split("/")
            cut = next((k for k, lv in enumerate(flv) if lv in ("+", "#")), len(levels) - 1)
            return "/".join(levels[cut:])
    return topic


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", s)


class Runtime:
    """Serves `served` to the streams under `config.subscribe` on `broker`. `loader()` gives the
    model again for a reload (SIGHUP, or `watch_path` changing); `on_alert(alert)` is called for
    every event after it is published (the CLI prints it)."""

    def __init__(self, served: Served, broker: BrokerConfig, config: RuntimeConfig = RuntimeConfig(),
                 engine_config: EngineConfig = EngineConfig(), *, loader: Callable[[], Served] | None = None,
                 on_alert: Callable[[dict], None] | None = None, watch_path: str | Path | None = None) -> None:
        self.served, self.loader, self.broker, self.config = served, loader, broker, config
        self.engine = Engine(self.served.detector, engine_config)
        self.decoder = Decoder(self.engine.features, max_bytes=config.max_payload)
        self.on_alert = on_alert
        self.watch_path = Path(watch_path) if watch_path else None
        self.counters = {"received": 0, "dead_lettered": 0, "dropped": 0, "alerts_published": 0,
                         "scores_published": 0, "connects": 0, "checkpoints": 0, "reloads": 0}
        self.latency = deque(maxlen=100_000)  # seconds from a message's arrival to its outputs' publishing
        self.queue: queue.Queue = queue.Queue(config.queue_size)
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.fatal: str | None = None
        self.last_reason: str | None = None
        self._streams: dict[str, str] = {}
        self.outbox = Outbox()      # alerts, dead letters, Home Assistant states and the status, not acknowledged yet
        self._resend: list[dict] = []  # alerts and dead letters from the checkpoint, sent on the first connect
        self._announced: set[str] = set()
        self._started = time.monotonic()
        self._resume()
        self.client = self._client()

    # --- setup -------------------------------------------------------------------------------------
    def _resume(self) -> None:
        path = self.config.checkpoint
        if not path:
            return
        try:
            extra = self.engine.restore(path)
        except ConfigError as e:
            stale = Path(path).with_suffix(".stale")
            Path(path).replace(stale)
            log.warning("%s; kept it as %s and starting every stream from zero", e, stale)
            return
        if extra is not None:
            self._resend = [{"deadletter": {**x["deadletter"], "resent": True}} if "deadletter" in x
                            else {**x, "resent": True} for x in extra.get("outbox", [])]
            letters = sum("deadletter" in x for x in self._resend)
            log.info("resumed %d stream(s) from %s (%d alert(s) and %d dead letter(s) to resend)",
                     len(self.engine.slots), path, len(self._resend) - letters, letters)

    def _client(self):
        c = client(self.broker, self.config.client_id, persistent=self.config.qos > 0)
        c.will_set(self.config.status, json.dumps({"state": "offline", "client_id": self.config.client_id,
                                                   "reason": "connection lost"}), qos=1, retain=True)
        c.max_inflight_messages_set(100)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = lambda *a: self.subscribed.set()
        return c

    # --- network thread ----------------------------------------------------------------------------
    def _on_connect(self, c, userdata, flags, reason_code, properties) -> None:
        msg = refusal(reason_code)
        if msg:
            self.fatal = msg
            return
        if reason_code.is_failure:
            log.warning("broker refused the connection: %s; retrying", reason_code)
            return
        self.counters["connects"] += 1
        self._backoff.reset()
        c.subscribe([(f, self.config.qos) for f in self.config.subscribe])
        if self.counters["connects"] > 1 and not flags.session_present and self.config.qos > 0:
            log.warning("the broker kept no session for %s: messages sent while we were away are lost "
                        "(enable persistence in the broker)", self.config.client_id)
        self.connected.set()
        self._publish_status("online")
        for item in self._resend:
            if "deadletter" in item:
                self.outbox.publish(c, self.config.dead_letters, json.dumps(item["deadletter"]), item=item)
                continue
            self.outbox.publish(c, self._alert_topic(item), json.dumps(item), item=item)
            if self.config.ha_discovery:
                self._ha_state(item)
        self._resend = []

    def _on_disconnect(self, c, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.outbox.dropped()
        self.subscribed.clear()
        if not self.stop_event.is_set():
            log.warning("disconnected from %s (%s); reconnecting", self.broker.describe(), reason_code)

    def _on_message(self, c, userdata, msg) -> None:
        item = (msg.topic, msg.payload, time.monotonic())
        self.counters["received"] += 1
        policy = self.config.on_overflow
        if policy == "block":
            self.queue.put(item)
            return
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.counters["dropped"] += 1
            if policy == "drop-oldest":
                try:
                    self.queue.get_nowait()
                except queue.Empty:
                    pass
                self.queue.put_nowait(item)

    def _network(self) -> None:
        c = self.client
        opened = False
        first = True
        while not self._net_stop.is_set() and not self.fatal:
            try:
                if not opened:
                    if first:
                        self.broker.connect(c, persistent=self.config.qos > 0)
                        first = False
                    else:
                        c.reconnect()
                    opened = True
                rc = c.loop(timeout=0.05)
                if rc != paho.MQTT_ERR_SUCCESS:
                    raise ConnectionError(paho.error_string(rc))
            except (OSError, ssl.SSLError, ValueError) as e:
                opened = False
                self.connected.clear()
                self.outbox.dropped()
                if self.fatal or self._net_stop.is_set() or self.stop_event.is_set():
                    break  # refused, or our own disconnect at shutdown
                delay = self._backoff.next()
                log.warning("broker %s unreachable (%s); next try in %.2f s", self.broker.describe(), e, delay)
                self._net_stop.wait(delay)
        if opened:
            try:
                c.loop(timeout=0.05)
            except OSError:
                pass

    # --- processing --------------------------------------------------------------------------------
    def _stream(self, topic: str) -> str:
        s = self._streams.get(topic)
        if s is None:
            if len(self._streams) > 4 * self.engine.config.max_streams:  # a flood of topics: start over
                self._streams.clear()
            s = self._streams[topic] = stream_of(self.config.subscribe, topic)
        return s

    def _alert_topic(self, alert: dict) -> str:
        return f"{self.config.alerts_prefix}/{alert['stream']}"

    def _dead_letter(self, topic: str, payload: bytes, reason: str, row: int | None = None) -> None:
        self.counters["dead_lettered"] += 1
        self.last_reason = reason
        doc = {"id": uuid.uuid4().hex, "reason": reason, "topic": topic, "received": time.time()}
        if row is not None:
            doc["row"] = row
        try:
            doc["payload"] = payload.decode()
        except UnicodeDecodeError:
            doc["payload_base64"] = base64.b64encode(payload).decode()
        log.debug("dead letter from %s: %s", topic, reason)
        # an outbox item: the checkpoint keeps it until the broker has it, as it keeps alerts
        self.outbox.publish(self.client, self.config.dead_letters, json.dumps(doc), item={"deadletter": doc})

    def handle(self, batch: list[tuple[str, bytes, float]]) -> None:
        """Decode, step and publish one batch of (topic, payload, arrival monotonic time)."""
        messages, origin = [], []
        for topic, payload, arrival in batch:
            try:
                ts, values = self.decoder.decode(payload)
            except PayloadError as e:
                self._dead_letter(topic, payload, str(e))
                continue
            messages.append((self._stream(topic), ts, values))
            origin.append((topic, payload, arrival))
        if not messages:
            return
        try:
            out = self.engine.process(messages)
        except DataError as e:  # the decoder should make this impossible; never lose the loop to it
            for topic, payload, _ in origin:
                self._dead_letter(topic, payload, f"refused by the engine: {e}")
            return
        for m, row, reason in out.rejected:
            self._dead_letter(origin[m][0], origin[m][1], reason, row)
        prefix = self.config.scores_prefix
        if prefix:
            for stream, ts, score, adaptive in zip(out.streams, out.ts, out.scores, out.adaptive):
                self.client.publish(f"{prefix}/{stream}", f'{{"ts":{ts!r},"score":{score!r},"adaptive":{adaptive!r}}}',
                                    qos=0)
            self.counters["scores_published"] += len(out.streams)
        for alert in out.events:
            self._emit(alert)
        now = time.monotonic()
        self.latency.extend(now - a for _, _, a in origin)
        if out.events:
            self.checkpoint()  # an alert's state change is on disk before the next sample

    def _emit(self, alert: dict) -> None:
        alert.update(time=_iso(alert["ts"]), runtime=self.config.client_id, version=__version__)
        self.outbox.publish(self.client, self._alert_topic(alert), json.dumps(alert), item=alert)
        self.counters["alerts_published"] += 1
        if self.config.ha_discovery:
            self._ha_state(alert)
        if self.on_alert:
            self.on_alert(alert)

    # --- Home Assistant discovery -------------------------------------------------------------------
    def _ha_topic(self, stream: str) -> str:
        return f"rnnedge/{self.config.client_id}/ha/{stream}"

    def _ha_state(self, alert: dict) -> None:
        stream = alert["stream"]
        if stream not in self._announced:
            uid = _slug(f"rnnedge_{self.config.client_id}_{stream}")
            cfg = {"name": f"{stream} anomaly", "unique_id": uid, "device_class": "problem",
                   "state_topic": self._ha_topic(stream), "payload_on": "ON", "payload_off": "OFF",
                   "json_attributes_topic": self._alert_topic(alert),
                   "availability_topic": self.config.status, "value_template": "{{ value }}",
                   "availability_template": "{{ value_json.state }}", "payload_available": "online",
                   "payload_not_available": "offline",
                   "device": {"identifiers": [_slug(f"rnnedge_{self.config.client_id}")],
                              "name": f"rnnedge {self.config.client_id}", "sw_version": __version__}}
            self.outbox.publish(self.client, f"{self.config.ha_prefix}/binary_sensor/{uid}/config", json.dumps(cfg),
                                retain=True)
            self._announced.add(stream)
        self.outbox.publish(self.client, self._ha_topic(stream), "ON" if alert["event"] == "raised" else "OFF",
                            retain=True)

    # --- durability, status, reload -----------------------------------------------------------------
    def checkpoint(self) -> None:
        if not self.config.checkpoint:
            return
        self.engine.checkpoint(self.config.checkpoint, {"outbox": self._resend + self.outbox.pending()})
        self.counters["checkpoints"] += 1
        self._last_checkpoint = time.monotonic()

    def health(self) -> dict:
        s = self.served
        lat = sorted(self.latency)
        return {"state": "online", "client_id": self.config.client_id, "model_id": s.artifact.model_id,
                "backend": s.backend, "target": s.target, "streams": len(self.engine.slots),
                "queue": self.queue.qsize(), "queue_size": self.config.queue_size,
                "unacknowledged": len(self.outbox),
                "uptime_s": round(time.monotonic() - self._started, 1), "time": _iso(time.time()),
                "counters": {**self.counters, **self.engine.counters},
                "latency_ms_p50": round(1e3 * lat[len(lat) // 2], 3) if lat else None,
                "latency_ms_p99": round(1e3 * lat[int(0.99 * (len(lat) - 1))], 3) if lat else None,
                "last_dead_letter_reason": self.last_reason}

    def _publish_status(self, state: str) -> None:
        doc = self.health()
        doc["state"] = state
        # through the outbox: a status sent before a drop and resent by paho must not land after this one
        self.outbox.publish(self.client, self.config.status, json.dumps(doc), qos=1, retain=True)
        self._last_status = time.monotonic()

    def _model_mtime(self) -> float:
        p = self.watch_path
        if p is None or not p.exists():
            return 0.0
        return max((f.stat().st_mtime for f in p.iterdir()), default=0.0) if p.is_dir() else p.stat().st_mtime

    def reload(self) -> bool:
        """Load the model again and serve it from the next sample on; on failure keep the old one."""
        if self.loader is None:
            log.error("reload asked for, but this runtime was given no loader")
            return False
        try:
            served = self.loader()
            if served.artifact.model_id != self.served.artifact.model_id:
                self.engine.swap(served.detector)
            else:  # the same model (another target, say): every stream's state still means the same
                self.engine.detector = served.detector
            self.served = served
        except Exception as e:  # noqa: BLE001 - a bad new model must never stop the runtime
            log.error("reload refused, still serving model %s: %s", self.served.artifact.model_id, e)
            return False
        self.counters["reloads"] += 1
        log.info("now serving %s", served.describe())
        self.checkpoint()
        return True

    def _housekeeping(self, now: float) -> None:
        self.outbox.flush(self.client, self.connected.is_set())  # what a reconnect held back
        if self.config.checkpoint and now - self._last_checkpoint >= self.config.checkpoint_interval_s:
            self.checkpoint()
        if self.connected.is_set() and now - self._last_status >= self.config.status_interval_s:
            self._publish_status("online")
        if self.config.watch and now - self._last_watch >= 1.0:
            self._last_watch = now
            m = self._model_mtime()
            if m != self._mtime:
                self._mtime = m
                self.reload_event.set()
        if self.reload_event.is_set():
            self.reload_event.clear()
            self.reload()
        if self.engine.config.idle_expiry_s:
            self.engine.expire(time.monotonic())

    def run(self, *, until: Callable[["Runtime"], bool] | None = None) -> dict:
        """Serve until stop_event is set (SIGTERM in the CLI) or `until(self)` holds; then drain the
        queue, checkpoint, publish status 'offline' and disconnect. Returns the counters."""
        self._backoff = Backoff(ceiling=self.config.backoff_ceiling_s)
        self._net_stop = threading.Event()
        self._last_checkpoint = self._last_status = self._last_watch = time.monotonic()
        self._mtime = self._model_mtime()
        net = threading.Thread(target=self._network, name="rnnedge-mqtt", daemon=True)
        net.start()
        log.info("serving %s; broker %s, subscribed to %s", self.served.describe(), self.broker.describe(),
                 ", ".join(self.config.subscribe))
        try:
            while not self.stop_event.is_set():
                if self.fatal:
                    raise ConnectRefused(self.fatal)
                self._drain(timeout=0.05)
                self._housekeeping(time.monotonic())
                if until is not None and until(self):
                    break
        finally:
            self.stop_event.set()
            self._drain(timeout=0)
            self.outbox.flush(self.client, self.connected.is_set())
            self.checkpoint()
            if self.connected.is_set():
                self._publish_status("offline")
                self.outbox.settle(self.client, self.connected, 2.0)  # held behind resends: a moment for their acks
                self.client.disconnect()
            deadline = time.monotonic() + 2.0
            while self.connected.is_set() and time.monotonic() < deadline:
                time.sleep(0.01)
            self._net_stop.set()
            net.join(5.0)
        return {**self.counters, **self.engine.counters}

    def _drain(self, timeout: float) -> None:
        """Handle what is waiting, in batches of up to max_batch; wait up to `timeout` for the first."""
        while True:
            try:
                batch = [self.queue.get(timeout=timeout) if timeout else self.queue.get_nowait()]
            except queue.Empty:
                return
            while len(batch) < self.config.max_batch:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self.handle(batch)
            if timeout:
                return

