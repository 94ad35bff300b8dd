"""Sensor payloads: decoding and validation at the MQTT boundary, and the encoders replay uses.

JSON, UTF-8, one sample or a list of samples (in time order) per message:

    {"ts": 1404165600, "values": [10844.0]}             every channel, in the model's feature order
    {"ts": 1404165600, "value": 10844.0}                a univariate stream
    {"ts": "2014-07-01T00:00:00Z", "temp": 21.5, "rh": 40}   named fields: every feature, by name
    [{"ts": ..., "value": ...}, {"ts": ..., "value": ...}]   several samples

`ts` is seconds since the epoch (int or float) or an ISO 8601 string (naive means UTC).

Binary (little-endian, versioned), for links where JSON costs too much:

    offset 0  2 bytes  magic b"RE"
           2  uint8    version (1)
           3  uint8    flags (0; reserved)
           4  uint16   rows R (>= 1)
           6  uint16   channels C (must equal the model's D)
           8  R x (float64 ts, C x float32 value)

A message is accepted or refused whole: a payload that is oversize, not JSON or binary, has a
missing, non-numeric or non-finite timestamp, values of the wrong count, a non-numeric, NaN or
infinite value, an unknown or missing field, or timestamps that go backwards inside the message
raises `PayloadError` naming what was wrong (the runtime dead-letters it). Order against the
stream's earlier samples is the engine's check, since only it knows the stream's last timestamp.
"""

from __future__ import annotations

import json
import math
import struct
from datetime import datetime, timezone

import numpy as np

from .errors import RnnEdgeError

MAGIC = b"RE"
BINARY_VERSION = 1
_HEADER = struct.Struct("<2sBBHH")
MAX_ROWS = 65535


class PayloadError(RnnEdgeError, ValueError):
    """A message the runtime cannot take; the text is the dead-letter reason."""


def _timestamp(v: object, where: str) -> float:
    if isinstance(v, str):
        try:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise PayloadError(f"{where}: 'ts' {v!r} is neither epoch seconds nor an ISO 8601 time") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise PayloadError(f"{where}: 'ts' must be epoch seconds or an ISO 8601 string, got {v!r}")
    if not math.isfinite(v):
        raise PayloadError(f"{where}: 'ts' is {v}")
    return float(v)


def _number(v: object, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise PayloadError(f"{where} is not a number: {v!r}")
    if not math.isfinite(v):
        raise PayloadError(f"{where} is {v}")
    return float(v)


class Decoder:
    """Turns one message's bytes into (ts float64[R], values float32[R, D]) for a model whose
    features are `features` (their order is the model's channel order)."""

    def __init__(self, features: list[str], *, max_bytes: int = 65536) -> None:
        self.features = list(features)
        self.width = len(self.features)
        self.max_bytes = max_bytes
        self._index = {name: i for i, name in enumerate(self.features)}

    def decode(self, payload: bytes) -> tuple[np.ndarray, np.ndarray]:
        if len(payload) > self.max_bytes:
            raise PayloadError(f"payload of {len(payload)} bytes is over the {self.max_bytes}-byte limit")
        if payload[:2] == MAGIC:
            ts, values = self._binary(payload)
        else:
            ts, values = self._json(payload)
        if len(ts) > 1:
            back = np.flatnonzero(np.diff(ts) <= 0)
            if back.size:
                k = int(back[0]) + 1
                raise PayloadError(f"row {k}: timestamp {ts[k]!r} is not after row {k - 1}'s {ts[k - 1]!r}")
        return ts, values

    def _binary(self, payload: bytes) -> tuple[np.ndarray, np.ndarray]:
        if len(payload) < _HEADER.size:
            raise PayloadError(f"binary payload of {len(payload)} bytes is shorter than its 8-byte header")
        _, version, flags, rows, channels = _HEADER.unpack_from(payload)
        if version != BINARY_VERSION:
            raise PayloadError(f"binary payload version {version}; this runtime reads version {BINARY_VERSION}")
        if flags:
            raise PayloadError(f"binary payload flags {flags:#04x}; none are defined in version 1")
        if channels != self.width:
            raise PayloadError(f"binary payload has {channels} channels; the model takes {self.width} "
                               f"({', '.join(self.features)})")
        dtype = np.dtype([("ts", "<f8"), ("values", "<f4", (channels,))])
        expect = _HEADER.size + rows * dtype.itemsize
        if rows == 0 or len(payload) != expect:
            raise PayloadError(f"binary payload declares {rows} rows of {channels} channels ({expect} bytes) "
                               f"but is {len(payload)} bytes")
        rec = np.frombuffer(payload, dtype, offset=_HEADER.size)
        ts, values = rec["ts"].astype(np.float64), rec["values"].astype(np.float32).reshape(rows, channels)
        if not np.isfinite(ts).all():
            raise PayloadError(f"row {int(np.flatnonzero(~np.isfinite(ts))[0])}: timestamp is not finite")
        bad = ~np.isfinite(values)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise PayloadError(f"row {r}: {self.features[c]!r} is {values[r, c]}")
        return ts, values

    def _json(self, payload: bytes) -> tuple[np.ndarray, np.ndarray]:
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, ValueError) as e:
            raise PayloadError(f"not JSON and not the binary form: {e}") from None
        rows = doc if isinstance(doc, list) else [doc]
        if not rows:
            raise PayloadError("an empty list holds no samples")
        if len(rows) > MAX_ROWS:
            raise PayloadError(f"{len(rows)} samples in one message; at most {MAX_ROWS}")
        ts = np.empty(len(rows), np.float64)
        values = np.empty((len(rows), self.width), np.float32)
        for r, row in enumerate(rows):
            where = f"row {r}" if isinstance(doc, list) else "sample"
            if not isinstance(row, dict):
                raise PayloadError(f"{where}: a sample must be a JSON object, got {type(row).__name__}")
            if "ts" not in row:
                raise PayloadError(f"{where}: missing 'ts'")
            ts[r] = _timestamp(row["ts"], where)
            values[r] = self._values(row, where)
        return ts, values

    def _values(self, row: dict, where: str) -> list[float]:
        if "values" in row:
            vs = row["values"]
            if not isinstance(vs, list) or len(vs) != self.width:
                n = len(vs) if isinstance(vs, list) else type(vs).__name__
                raise PayloadError(f"{where}: 'values' must be a list of {self.width} numbers "
                                   f"({', '.join(self.features)}), got {n}")
            return [_number(v, f"{where}: values[{i}] ({self.features[i]})") for i, v in enumerate(vs)]
        if "value" in row:
            if self.width != 1:
                raise PayloadError(f"{where}: 'value' is for univariate streams; the model takes {self.width} "
                                   f"channels ({', '.join(self.features)}): send 'values' or named fields")
            return [_number(row["value"], f"{where}: 'value'")]
        named = {k: v for k, v in row.items() if k != "ts"}
        unknown = [k for k in named if k not in self._index]
        if unknown:
            raise PayloadError(f"{where}: unknown field {unknown[0]!r}; the model's features are "
                               f"{', '.join(self.features)}")
        missing = [f for f in self.features if f not in named]
        if missing:
            raise PayloadError(f"{where}: missing {missing[0]!r} (send 'values', 'value' or every feature by name)")
        return [_number(named[f], f"{where}: {f!r}") for f in self.features]


def encode_json(ts: np.ndarray, values: np.ndarray) -> bytes:
    """Rows as one JSON message: an object for one row, a list for several."""
    rows = [{"ts": float(t), "values": [float(v) for v in row]} for t, row in zip(ts, values)]
    return json.dumps(rows[0] if len(rows) == 1 else rows, separators=(",", ":")).encode()


def encode_binary(ts: np.ndarray, values: np.ndarray) -> bytes:
    values = np.asarray(values, np.float32)
    rows, channels = values.shape
    if not 1 <= rows <= MAX_ROWS:
        raise PayloadError(f"the binary form carries 1 to {MAX_ROWS} rows, not {rows}")
    rec = np.empty(rows, [("ts", "<f8"), ("values", "<f4", (channels,))])
    rec["ts"], rec["values"] = ts, values
    return _HEADER.pack(MAGIC, BINARY_VERSION, 0, rows, channels) + rec.tobytes()
