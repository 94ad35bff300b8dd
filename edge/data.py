"""Reading sensor CSVs: a timestamp column and one or more numeric columns.

Accepted: NAB's `timestamp,value` and multivariate files with named columns; the separator is
detected (`,`, `;`, tab, `|`) or given. Timestamps are ISO 8601 (naive ones are taken as UTC) or
epoch seconds. Policies, all named in the error a bad file gets:
- a non-numeric or infinite cell: refused (line and column named);
- a missing cell (empty, NaN, NA, null): refused by default; `on_missing="ffill"` carries the
  last value forward, `on_missing="drop"` drops the row, `on_missing="keep"` keeps NaN for the
  caller to refuse where it reads it (the evaluation: only the rows it scores);
- unsorted or duplicate timestamps: refused by default (the line named); `on_unordered="keep"`
  keeps the rows in file order, as a live stream delivers them (NAB processes its files so; 8 of
  its 58 files have a repeated or backward timestamp), and counts them in `Series.unordered`.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .errors import DataError

_TIME_NAMES = ("timestamp", "time", "datetime", "date", "ts")
_MISSING = {"", "nan", "na", "n/a", "null", "none"}
ON_MISSING = ("error", "ffill", "drop", "keep")
ON_UNORDERED = ("error", "keep")


@dataclass(frozen=True)
class Series:
    timestamps: np.ndarray  # float64[n], seconds since the epoch, strictly increasing
    values: np.ndarray      # float32[n, D]
    columns: list[str]      # the D value columns' names
    path: str
    sha256: str             # of the file's bytes: the training provenance
    unordered: int = 0      # rows whose timestamp is not after the previous row's (kept in file order)
    time_column: str = "timestamp"  # the timestamp column's name in the file

    def head(self, n: int) -> "Series":
        """The first n rows."""
        return replace(self, timestamps=self.timestamps[:n], values=self.values[:n],
                       unordered=int((np.diff(self.timestamps[:n]) <= 0).sum()))


def parse_timestamp(text: str) -> float:
    """ISO 8601 (naive = UTC) or epoch seconds -> epoch seconds; ValueError otherwise."""
    try:
        return float(text)
    except ValueError:
        pass
    t = datetime.fromisoformat(text.strip())
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp()


def _pick_time_column(header: list[str], first_row: list[str], given: str | None, path: str) -> int:
    if given is not None:
        if given not in header:
            raise DataError(f"{path}: no column {given!r} for timestamps; columns are {header}")
        return header.index(given)
    for i, name in enumerate(header):
        if name.strip().lower() in _TIME_NAMES:
            return i
    try:
        datetime.fromisoformat(first_row[0].strip())
        return 0
    except (ValueError, IndexError):
        raise DataError(f"{path}: no timestamp column found in {header}; name one with "
                        "--timestamp-column") from None


def read_csv(path: str | Path, *, timestamp_column: str | None = None, columns: list[str] | None = None,
             exclude: tuple[str, ...] = (), sep: str | None = None, on_missing: str = "error",
             on_unordered: str = "error") -> Series:
    """Read a sensor CSV (see the module docstring for what is accepted and refused)."""
    if on_missing not in ON_MISSING:
        raise DataError(f"on_missing must be one of {ON_MISSING}, got {on_missing!r}")
    if on_unordered not in ON_UNORDERED:
        raise DataError(f"on_unordered must be one of {ON_UNORDERED}, got {on_unordered!r}")
    path = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    lines = text.splitlines()
    if len(lines) < 2:
        raise DataError(f"{path}: needs a header line and at least one data row")
    if sep is None:
        try:
            sep = csv.Sniffer().sniff("\n".join(lines[:20]), delimiters=",;\t|").delimiter
        except csv.Error:
            sep = ","
    rows = list(csv.reader(lines, delimiter=sep))
    header = [h.strip() for h in rows[0]]
    body = [(n, r) for n, r in enumerate(rows[1:], start=2) if r]
    if not body:
        raise DataError(f"{path}: no data rows")
    t_col = _pick_time_column(header, body[0][1], timestamp_column, path)
    if columns is None:
        value_cols = [i for i, h in enumerate(header) if i != t_col and h not in exclude]
    else:
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(f"{path}: no column(s) {missing}; columns are {header}")
        value_cols = [header.index(c) for c in columns]
    if not value_cols:
        raise DataError(f"{path}: no value columns besides the timestamp column {header[t_col]!r}")

    times = np.empty(len(body))
    values = np.empty((len(body), len(value_cols)), np.float64)
    for k, (line, row) in enumerate(body):
        if len(row) != len(header):
            raise DataError(f"{path}: line {line} has {len(row)} fields, the header has {len(header)}")
        try:
            times[k] = parse_timestamp(row[t_col])
        except ValueError:
            raise DataError(f"{path}: line {line}: column {header[t_col]!r}: {row[t_col]!r} is not a "
                            "timestamp (ISO 8601 or epoch seconds)") from None
        for j, c in enumerate(value_cols):
            cell = row[c].strip()
            if cell.lower() in _MISSING:
                values[k, j] = np.nan
                continue
            try:
                values[k, j] = float(cell)
            except ValueError:
                raise DataError(f"{path}: line {line}: column {header[c]!r}: {cell!r} is not a number") from None
            if not np.isfinite(values[k, j]):
                raise DataError(f"{path}: line {line}: column {header[c]!r}: {cell!r} is not finite")

    dt = np.diff(times)
    if (dt <= 0).any() and on_unordered == "error":
        k = int(np.argmax(dt <= 0)) + 1
        what = "duplicates" if dt[k - 1] == 0 else "is earlier than"
        raise DataError(f"{path}: line {body[k][0]}: timestamp {body[k][1][t_col]!r} {what} the previous "
                        "row's; timestamps must be strictly increasing (or pass --on-unordered keep)")
    gaps = np.isnan(values)
    if gaps.any() and on_missing != "keep":
        if on_missing == "error":
            k, j = map(int, np.argwhere(gaps)[0])
            raise DataError(f"{path}: line {body[k][0]}: column {header[value_cols[j]]!r} is missing "
                            f"({int(gaps.sum())} missing cells in all); use --on-missing ffill|drop")
        if on_missing == "drop":
            keep = ~gaps.any(axis=1)
            times, values = times[keep], values[keep]
        else:
            if gaps[0].any():
                raise DataError(f"{path}: line {body[0][0]}: the first row has a missing value; "
                                "ffill needs a value to carry forward")
            idx = np.where(gaps, 0, np.arange(len(values))[:, None])
            values = np.take_along_axis(values, np.maximum.accumulate(idx, axis=0), axis=0)
    if len(values) == 0:
        raise DataError(f"{path}: no rows left after dropping rows with missing values")
    return Series(times, values.astype(np.float32), [header[c] for c in value_cols], path,
                  hashlib.sha256(raw).hexdigest(), int((np.diff(times) <= 0).sum()), header[t_col])
