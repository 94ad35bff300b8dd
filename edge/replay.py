"""`rnnedge replay`: publish a recorded stream to a topic as a live sensor would.

Rows go out at their recorded spacing divided by `speed` (speed 100: an hour of data in 36 s), or
as fast as the broker takes them (speed 0), `rows_per_message` per message, JSON or the binary form,
at QoS 0, 1 or 2. At QoS 1 and 2 paho keeps every unacknowledged message and sends it again after a
reconnect, and replay returns only when the broker has acknowledged them all (or `timeout` passes),
so a broker restart during a replay loses nothing the broker persisted. After a reconnect, replay
publishes nothing new until the broker has acknowledged every earlier message: paho sends its
resends from the network thread and a new publish from ours, and a new message that overtook the
resends would reach the subscriber ahead of older samples, which a runtime must refuse as out of
order (it happened to 166 of 3,000 samples across a broker restart).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, RnnEdgeError
from .mqtt import BrokerConfig, Outbox, client
from .payload import encode_binary, encode_json

FORMATS = ("json", "binary")


@dataclass(frozen=True)
class ReplayStats:
    rows: int
    messages: int
    seconds: float
    acknowledged: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("inf")


def replay(ts: np.ndarray, values: np.ndarray, broker: BrokerConfig, topic: str, *, speed: float = 0.0,
           qos: int = 1, rows_per_message: int = 1, fmt: str = "json", client_id: str | None = None,
           timeout: float = 120.0, stop: threading.Event | None = None) -> ReplayStats:
    """Publish rows (ts float64[T] epoch seconds, values float[T, D]) to `topic`."""
    if fmt not in FORMATS:
        raise ConfigError(f"payload format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if speed < 0 or rows_per_message < 1 or qos not in (0, 1, 2):
        raise ConfigError("replay needs speed >= 0, rows_per_message >= 1 and qos 0, 1 or 2")
    if "+" in topic or "#" in topic or not topic:
        raise ConfigError(f"replay topic {topic!r} must be a plain topic, without wildcards")
    encode = encode_json if fmt == "json" else encode_binary
    c = client(broker, client_id or f"rnnedge-replay-{os.getpid()}-{time.monotonic_ns() % 10**6}", persistent=False)
    c.max_inflight_messages_set(1000)
    connected = threading.Event()
    outbox = Outbox()
    refused: list[str] = []

    def on_connect(cl, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            refused.append(str(reason_code))
        else:
            connected.set()

    def on_disconnect(cl, userdata, flags, reason_code, properties):
        connected.clear()
        outbox.dropped()

    c.on_connect = on_connect
    c.on_disconnect = on_disconnect
    try:
        broker.connect(c, persistent=False)
    except OSError as e:
        raise RnnEdgeError(f"replay: cannot reach the broker at {broker.describe()}: {e}") from None
    c.loop_start()
    try:
        deadline = time.monotonic() + 10.0
        while not connected.is_set() and not refused and time.monotonic() < deadline:
            time.sleep(0.01)
        if refused or not connected.is_set():
            raise RnnEdgeError(f"replay: the broker at {broker.describe()} refused the connection: "
                               f"{refused[0] if refused else 'no answer in 10 s'}")
        rows, messages = 0, 0
        start = time.monotonic()
        t0 = float(ts[0]) if len(ts) else 0.0
        for k in range(0, len(ts), rows_per_message):
            if stop is not None and stop.is_set():
                break
            if speed:
                wait = start + (float(ts[k]) - t0) / speed - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            if qos and outbox.holding and not outbox.settle(c, connected, timeout):  # none overtakes the resends
                raise RnnEdgeError(f"replay: lost the broker at {broker.describe()} and it did not take back "
                                   f"the {len(outbox)} unacknowledged message(s) within {timeout:g} s")
            chunk = slice(k, k + rows_per_message)
            outbox.publish(c, topic, encode(ts[chunk], values[chunk]), qos=qos)
            rows += len(ts[chunk])
            messages += 1
        sent = time.monotonic() - start
        deadline = time.monotonic() + timeout
        while len(outbox) and time.monotonic() < deadline:
            outbox.flush(c, connected.is_set())  # a message held by a drop just before it was published
            time.sleep(0.01)
        if len(outbox):
            raise RnnEdgeError(f"replay: the broker acknowledged {messages - len(outbox)} of {messages} "
                               f"messages within {timeout:g} s")
        return ReplayStats(rows, messages, sent, messages if qos else 0)
    finally:
        c.disconnect()
        c.loop_stop()
