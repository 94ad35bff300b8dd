"""An embedded broker on a free loopback port: for `rnnedge run` with no --broker, the demo and the
tests. Mosquitto when its binary is there, else amqtt (a pure-Python broker from PyPI: MQTT 3.1.1
only, no persistence, several times slower; `pip install amqtt`). Started from a generated config,
stopped by its own PID, never listening beyond 127.0.0.1. RNNEDGE_EMBEDDED_BROKER=mosquitto|amqtt
forces one.

Mosquitto drops QoS 1 messages for a subscriber whose queue passes `max_queued_messages`
(default 1000) and keeps queued messages across a restart only with persistence; the generated
config sets both (see deploy/mosquitto.conf for a production example).
"""

from __future__ import annotations

import os
import shutil
import sys
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .errors import MissingDependencyError, RnnEdgeError

_SEARCH = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next((p for p in _SEARCH if os.access(p, os.X_OK)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _BrokerProcess:
    """A broker in a child process on 127.0.0.1:`port`, ended by its PID."""

    name = "broker"
    proc: subprocess.Popen | None = None

    def __init__(self, port: int | None, workdir: str | Path | None) -> None:
        self.port = port or free_port()
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="rnnedge-broker-")
        self.workdir = Path(workdir or self._tmp.name)
        self.workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 10.0):
        self.log = open(self.workdir / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen(self.command(), stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RnnEdgeError(f"{self.name} exited with {self.proc.returncode}: "
                                   f"{(self.workdir / f'{self.name}.log').read_text(errors='replace')[-400:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RnnEdgeError(f"{self.name} did not listen on 127.0.0.1:{self.port} within {timeout:g} s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """End the process we started (by its PID); SIGKILL if it outlives `timeout`."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc = None
        self.log.close()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class Mosquitto(_BrokerProcess):
    """A mosquitto process. `extra` lines are appended to the config; they apply to its one
    listener (certfile, keyfile, password_file ...)."""

    name = "mosquitto"

    def __init__(self, *, port: int | None = None, workdir: str | Path | None = None, persistence: bool = True,
                 anonymous: bool = True, max_queued: int = 1_000_000, extra: str = "") -> None:
        self.binary = mosquitto_binary()
        if self.binary is None:
            raise MissingDependencyError("no mosquitto binary found: install it (Debian/Ubuntu: apt install "
                                         "mosquitto; macOS: brew install mosquitto)")
        super().__init__(port, workdir)
        self.persistence = persistence
        self.anonymous, self.max_queued, self.extra = anonymous, max_queued, extra

    def config(self) -> str:
        lines = [f"listener {self.port} 127.0.0.1", f"allow_anonymous {str(self.anonymous).lower()}",
                 f"max_queued_messages {self.max_queued}", "max_inflight_messages 100",
                 "persistent_client_expiration 1d", "log_dest stderr", "log_type error", "log_type warning"]
        if self.persistence:
            # Saved every second, and always at SIGTERM. A SIGKILL loses what the broker acknowledged
            # since its last save: Mosquitto keeps its store in memory and writes it at these saves.
            lines += ["persistence true", f"persistence_location {self.workdir}/", "autosave_interval 1"]
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise mosquitto drops to user 'mosquitto', who cannot read workdir
        return "\n".join(lines) + "\n" + self.extra

    def command(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config())
        return [self.binary, "-c", str(conf)]


class Amqtt(_BrokerProcess):
    """amqtt's broker in a child Python process: the fallback when Mosquitto is not installed."""

    name = "amqtt"

    def __init__(self, *, port: int | None = None, workdir: str | Path | None = None) -> None:
        try:
            import amqtt  # noqa: F401
        except ImportError:
            raise MissingDependencyError("no amqtt: pip install amqtt") from None
        super().__init__(port, workdir)

    def command(self) -> list[str]:
        conf = self.workdir / "amqtt.yaml"
        conf.write_text(f"listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{self.port}\n")
        return [sys.executable, "-c", "from amqtt.scripts.broker_script import main; main()", "-c", str(conf)]


def embedded(workdir: str | Path | None = None) -> _BrokerProcess:
    """A started broker on a free loopback port: Mosquitto if installed, else amqtt."""
    want = os.environ.get("RNNEDGE_EMBEDDED_BROKER", "")
    if want not in ("", "mosquitto", "amqtt"):
        raise RnnEdgeError(f"RNNEDGE_EMBEDDED_BROKER={want!r}: choose mosquitto or amqtt")
    if want != "amqtt" and (want == "mosquitto" or mosquitto_binary()):
        return Mosquitto(workdir=workdir).start()
    try:
        return Amqtt(workdir=workdir).start()
    except MissingDependencyError:
        raise MissingDependencyError(
            "no --broker given, and neither mosquitto nor amqtt to start one: install Mosquitto "
            "(Debian/Ubuntu: apt install mosquitto; macOS: brew install mosquitto), or pip install amqtt "
            "(pure Python, MQTT 3.1.1 only, several times slower), or point --broker at a running broker") from None
