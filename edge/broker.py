"""An embedded Mosquitto broker on a free loopback port: for `rnnedge run` with no --broker, the
demo and the tests. It is started from a generated config, stopped by its own PID, and never
listens beyond 127.0.0.1.

Mosquitto drops QoS 1 messages for a subscriber whose queue passes `max_queued_messages`
(default 1000) and keeps queued messages across a restart only with persistence; the generated
config sets both (see deploy/mosquitto.conf for a production example).
"""

from __future__ import annotations

import os
import shutil
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


class Mosquitto:
    """A mosquitto process. `extra` lines are appended to the config; they apply to its one
    listener (certfile, keyfile, password_file ...)."""

    def __init__(self, *, port: int | None = None, workdir: str | Path | None = None, persistence: bool = True,
                 save_every_change: bool = False, anonymous: bool = True, max_queued: int = 1_000_000,
                 extra: str = "") -> None:
        self.binary = mosquitto_binary()
        if self.binary is None:
            raise MissingDependencyError("no --broker given and no mosquitto binary found: install it "
                                         "(Debian/Ubuntu: apt install mosquitto; macOS: brew install mosquitto) "
                                         "or point --broker at a running broker")
        self.port = port or free_port()
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="rnnedge-broker-")
        self.workdir = Path(workdir or self._tmp.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.persistence, self.save_every_change = persistence, save_every_change
        self.anonymous, self.max_queued, self.extra = anonymous, max_queued, extra
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def config(self) -> str:
        lines = [f"listener {self.port} 127.0.0.1", f"allow_anonymous {str(self.anonymous).lower()}",
                 f"max_queued_messages {self.max_queued}", "max_inflight_messages 100",
                 "persistent_client_expiration 1d", "log_dest stderr", "log_type error", "log_type warning"]
        if self.persistence:
            # Saved every second, or after every change (slow: the whole store is rewritten) so that
            # even a SIGKILL loses no message the broker acknowledged; a SIGTERM always saves.
            lines += ["persistence true", f"persistence_location {self.workdir}/", "autosave_interval 1"]
            if self.save_every_change:
                lines.append("autosave_on_changes true")
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise mosquitto drops to user 'mosquitto', who cannot read workdir
        return "\n".join(lines) + "\n" + self.extra

    def start(self, timeout: float = 10.0) -> "Mosquitto":
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config())
        self.log = open(self.workdir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RnnEdgeError(f"mosquitto exited with {self.proc.returncode}: "
                                   f"{(self.workdir / 'mosquitto.log').read_text(errors='replace')[-400:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RnnEdgeError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout:g} s")

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

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
