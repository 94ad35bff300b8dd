"""CSV loading: NAB and multivariate files, and each refusal naming line and column."""

import numpy as np
import pytest

from edge.data import read_csv
from edge.errors import DataError

from .conftest import TAXI


def test_nab_file():
    s = read_csv(TAXI)
    assert s.columns == ["value"] and s.values.shape == (10320, 1) and s.values.dtype == np.float32
    assert (np.diff(s.timestamps) == 1800).all() and len(s.sha256) == 64


def test_multivariate_semicolon_and_column_choice(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("time;temp;hum;label\n2024-01-01T00:00:00Z;1.5;30;0\n2024-01-01T00:01:00Z;1.6;31;1\n")
    s = read_csv(p, exclude=("label",))
    assert s.columns == ["temp", "hum"] and s.values.tolist() == [[1.5, 30.0], [1.600000023841858, 31.0]]
    assert read_csv(p, columns=["hum"]).values.shape == (2, 1)
    with pytest.raises(DataError, match=r"no column\(s\) \['pressure'\]"):
        read_csv(p, columns=["pressure"])


def test_epoch_seconds_and_explicit_timestamp_column(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("value,t\n1,100\n2,160\n")
    s = read_csv(p, timestamp_column="t")
    assert s.timestamps.tolist() == [100.0, 160.0] and s.columns == ["value"]


@pytest.mark.parametrize("body, message", [
    ("2024-01-01 00:00,1\n2024-01-01 00:05,abc\n", r"line 3: column 'value': 'abc' is not a number"),
    ("2024-01-01 00:00,1\n2024-01-01 00:05,inf\n", r"line 3: column 'value': 'inf' is not finite"),
    ("2024-01-01 00:00,1\nyesterday,2\n", r"line 3: column 'timestamp': 'yesterday' is not a timestamp"),
    ("2024-01-01 00:05,1\n2024-01-01 00:00,2\n", r"line 3: timestamp .* is earlier than"),
    ("2024-01-01 00:05,1\n2024-01-01 00:05,2\n", r"line 3: timestamp .* duplicates"),
    ("2024-01-01 00:00,1\n2024-01-01 00:05,\n", r"line 3: column 'value' is missing \(1 missing"),
    ("2024-01-01 00:00,1,2\n", r"line 2 has 3 fields, the header has 2"),
    ("", r"header line and at least one data row"),
])
def test_refusals_name_the_problem(tmp_path, body, message):
    p = tmp_path / "bad.csv"
    p.write_text("timestamp,value\n" + body)
    with pytest.raises(DataError, match=message):
        read_csv(p)


def test_missing_policies_and_file_order(tmp_path):
    p = tmp_path / "gaps.csv"
    p.write_text("timestamp,value\n2024-01-01 00:00,1\n2024-01-01 00:05,NaN\n2024-01-01 00:10,3\n")
    assert read_csv(p, on_missing="ffill").values[:, 0].tolist() == [1, 1, 3]
    assert read_csv(p, on_missing="drop").values[:, 0].tolist() == [1, 3]
    q = tmp_path / "order.csv"
    q.write_text("timestamp,value\n2024-01-01 00:05,1\n2024-01-01 00:00,2\n")
    s = read_csv(q, on_unordered="keep")
    assert s.unordered == 1 and s.values[:, 0].tolist() == [1, 2]


def test_unreadable(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_csv(tmp_path / "absent.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="not UTF-8"):
        read_csv(tmp_path / "bin.csv")
