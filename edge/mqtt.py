"""Broker addresses, credentials and paho-mqtt 2.x clients (callback API v2), shared by the runtime
and replay.

    mqtt://host[:1883]   plain TCP          mqtts://host[:8883]   TLS (system CAs unless --ca)

Credentials: the username from --username or RNNEDGE_MQTT_USERNAME, the password from a file
(--password-file, first line) or RNNEDGE_MQTT_PASSWORD, never from the command line, where `ps`
would show it.
"""

from __future__ import annotations

import os
import random
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError, RnnEdgeError
from .validation import check_choice, check_int

try:
    import paho.mqtt.client as paho
except ImportError:  # pragma: no cover - paho-mqtt is a core dependency
    paho = None


class ConnectRefused(RnnEdgeError):
    """The broker refused the connection for a reason retrying cannot fix (credentials, rights)."""


@dataclass(frozen=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    ca: str | None = None          # CA bundle for the broker's certificate
    cert: str | None = None        # client certificate (mutual TLS) ...
    key: str | None = None         # ... and its key
    username: str | None = None
    password: str | None = None
    keepalive: int = 30
    protocol: str = "3.1.1"        # or "5"
    session_expiry_s: int = 86400  # MQTT 5: how long the broker keeps a persistent session after a disconnect

    def __post_init__(self) -> None:
        check_choice("BrokerConfig", "protocol", self.protocol, PROTOCOLS)
        check_int("BrokerConfig", "session_expiry_s", self.session_expiry_s, 0, 2**32 - 1)

    @classmethod
    def from_url(cls, url: str, *, ca=None, cert=None, key=None, username=None, password_file=None,
                 keepalive: int = 30, protocol: str = "3.1.1", session_expiry_s: int = 86400) -> "BrokerConfig":
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ConfigError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        if not parts.hostname:
            raise ConfigError(f"broker URL {url!r} names no host")
        tls = parts.scheme in ("mqtts", "ssl") or bool(ca or cert)
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ConfigError(f"broker URL {url!r}: the port is not a number in 1-65535") from None
        if bool(cert) != bool(key):
            raise ConfigError("a client certificate needs both --cert and --key")
        for flag, f in (("--ca", ca), ("--cert", cert), ("--key", key), ("--password-file", password_file)):
            if f and not Path(f).is_file():
                raise ConfigError(f"{flag} {f}: no such file")
        username = username or os.environ.get("RNNEDGE_MQTT_USERNAME") or parts.username
        password = os.environ.get("RNNEDGE_MQTT_PASSWORD")
        if password_file:
            lines = Path(password_file).read_text().splitlines()
            password = lines[0] if lines else ""
        if parts.password:
            raise ConfigError(f"broker URL {parts.scheme}://{parts.hostname}: put the password in "
                              "--password-file or RNNEDGE_MQTT_PASSWORD, not in the URL")
        if password is not None and not username:
            raise ConfigError("a password was given without a username (--username or RNNEDGE_MQTT_USERNAME)")
        return cls(parts.hostname, port, tls, ca, cert, key, username, password, keepalive, protocol, session_expiry_s)

    def describe(self) -> str:
        who = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{who}{self.host}:{self.port}"

    def connect(self, c: "paho.Client", *, persistent: bool):
        """Open client c's connection: MQTT 5 asks for a session that outlives the connection by
        session_expiry_s when persistent (and none otherwise); MQTT 3.1.1 set it in `client`."""
        if self.protocol != "5":
            return c.connect(self.host, self.port, self.keepalive)
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s if persistent else 0
        return c.connect(self.host, self.port, self.keepalive, clean_start=not persistent, properties=props)


PROTOCOLS = ("3.1.1", "5")


def client(broker: BrokerConfig, client_id: str, *, persistent: bool) -> "paho.Client":
    """A paho client for MQTT 3.1.1 (what Mosquitto, EMQX, HiveMQ and AWS IoT all speak) or 5. A
    persistent session (3.1.1: clean_session=False under a fixed client id; 5: clean_start=False
    and a session expiry interval, see BrokerConfig.connect) makes the broker queue QoS 1 messages
    while we are away."""
    if broker.protocol == "5":
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    else:
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent,
                        protocol=paho.MQTTv311)
    if broker.username:
        c.username_pw_set(broker.username, broker.password)
    if broker.tls:
        c.tls_set(ca_certs=broker.ca, certfile=broker.cert, keyfile=broker.key, cert_reqs=ssl.CERT_REQUIRED)
    return c


def refusal(reason_code) -> str | None:
    """The message for a CONNACK that retrying cannot fix, or None for a success or a transient one."""
    if not reason_code.is_failure:
        return None
    text = str(reason_code)
    if reason_code.value in (0x04, 0x05, 0x86, 0x87, 0x8C) or "password" in text.lower() or "authori" in text.lower():
        return f"the broker refused the connection: {text} (check the username and password file)"
    if reason_code.value in (0x01, 0x02, 0x84, 0x85):
        return f"the broker refused the connection: {text}"
    return None


class Backoff:
    """Jittered exponential delays: base, 2 base, 4 base ... up to `ceiling`, each times U(0.5, 1.5),
    so that a fleet reconnecting after a broker restart does not arrive in lockstep."""

    def __init__(self, base: float = 0.2, ceiling: float = 10.0, *, rng: random.Random | None = None) -> None:
        self.base, self.ceiling, self.rng = base, ceiling, rng or random.Random()
        self.attempt = 0

    def next(self) -> float:
        d = min(self.ceiling, self.base * 2 ** self.attempt)
        self.attempt = min(self.attempt + 1, 30)
        return d * self.rng.uniform(0.5, 1.5)

    def reset(self) -> None:
        self.attempt = 0


class Outbox:
    """QoS 1/2 publishes the broker has not acknowledged yet, each with an item of ours (the
    runtime checkpoints its open alerts). paho keeps such a message, even one published while
    disconnected, and sends it again after a reconnect; its MQTTMessageInfo turns published on the
    acknowledgement.

    Order across a reconnect: paho resends from its network thread after the CONNACK, and a
    publish from another thread in between goes out first, so a clear could reach subscribers
    before its raise, and a retained OFF be overwritten by the late ON. So once told the
    connection `dropped`, the outbox holds new QoS 1/2 publishes, in order, until `flush` finds
    the client connected again and every earlier message acknowledged; then it sends them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: list = []    # (MQTTMessageInfo, item) sent, not acknowledged
        self._held: list = []    # (topic, payload, qos, retain, item) waiting for the resends
        self._dropped = False
        self._flushing = False

    def dropped(self) -> None:
        """The connection was lost: hold what is published from now on until `flush` succeeds."""
        with self._lock:
            self._dropped = True

    @property
    def holding(self) -> bool:
        with self._lock:
            return self._holding()

    def _holding(self) -> bool:  # under the lock
        return self._dropped or self._flushing or bool(self._held)

    def _unacknowledged(self) -> list:  # under the lock: drops the acknowledged ones, returns the rest
        self._open = [(i, x) for i, x in self._open if not _acknowledged(i)]
        return self._open

    def publish(self, c, topic: str, payload, qos: int = 1, retain: bool = False, item: object = None):
        """Send, or hold while earlier messages await their resend (then returns None)."""
        if qos:
            with self._lock:
                if self._holding():
                    self._held.append((topic, payload, qos, retain, item))
                    return None
        return self._send(c, topic, payload, qos, retain, item)

    def flush(self, c, connected: bool) -> int:
        """Send what is held, in order, once `connected` and every message sent before the drop is
        acknowledged; returns how many were sent. Call it from the thread that publishes."""
        with self._lock:
            if not connected or not (self._dropped or self._held) or self._flushing or self._unacknowledged():
                return 0
            held, self._held = self._held, []
            self._dropped, self._flushing = False, True
        try:
            for k, m in enumerate(held):
                self._send(c, *m)
        except BaseException:
            with self._lock:
                self._held[:0] = held[k:]  # keep the unsent ones, in front of anything held since
            raise
        finally:
            with self._lock:
                self._flushing = False
        return len(held)

    def settle(self, c, connected: threading.Event, timeout: float) -> bool:
        """`flush` until nothing is held any more (True) or `timeout` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while True:
            self.flush(c, connected.is_set())
            if not self.holding:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def _send(self, c, topic, payload, qos, retain, item):
        info = c.publish(topic, payload, qos=qos, retain=retain)
        if qos:
            _acknowledged(info)  # raises at once when paho could not even queue it
            with self._lock:
                self._open.append((info, item))
        return info

    def pending(self) -> list:
        """The items of what is not acknowledged yet, held ones included, in publishing order."""
        with self._lock:
            items = [x for _, x in self._unacknowledged()] + [m[4] for m in self._held]
            return [x for x in items if x is not None]

    def __len__(self) -> int:
        """Messages not acknowledged yet, held ones included."""
        with self._lock:
            return len(self._unacknowledged()) + len(self._held)


def _acknowledged(info) -> bool:
    if info.rc == paho.MQTT_ERR_QUEUE_SIZE:
        raise RnnEdgeError("paho's outgoing queue is full; the message was not queued")
    if info.rc == paho.MQTT_ERR_NO_CONN:  # queued while disconnected: sent after the reconnect
        with info._condition:  # paho sets _published under this condition; no public accessor skips the rc check
            return info._published
    return info.is_published()
