"""`rnnedge evaluate csv`: labelled multivariate files, one model each, metrics without point adjustment."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainer.evaluate import Counts, count

from .conftest import sine_series


def test_counts_point_wise_and_event_wise():
    label = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 0], bool)
    alert = np.array([0, 0, 1, 1, 1, 0, 0, 0, 0, 1], bool)
    c = count(alert, label)
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 2, 3, 3)
    assert (c.events, c.detected, c.delay_rows) == (2, 1, 1)  # the first event, caught one row late
    m = (c + c).metrics()
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.4)
    assert m["event_recall"] == 0.5 and m["mean_delay_rows"] == 1.0 and Counts().metrics()["f1"] == 0.0


def _labelled(path, seed):
    v = sine_series(1500, 3, seed=seed).astype(np.float64)
    label = np.zeros(1500, int)
    for start in (700, 1100):  # two events: one channel jumps for 20 rows
        v[start:start + 20, seed % 3] += 6.0
        label[start:start + 20] = 1
    t0 = np.datetime64("2024-01-01T00:00:00")
    lines = ["time,a,b,c,anomaly"] + [f"{t0 + np.timedelta64(60 * i, 's')},{v[i, 0]:.5f},{v[i, 1]:.5f},"
                                      f"{v[i, 2]:.5f},{label[i]}" for i in range(1500)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_evaluate_csv_cli(tmp_path, capsys):
    from edge.cli import main
    files = [_labelled(tmp_path / "in" / "site1" / "m1.csv", 1), _labelled(tmp_path / "in" / "site2" / "m2.csv", 2)]
    args = ["evaluate", "csv", *map(str, files), "--label-column", "anomaly", "--train-rows", "600",
            "-o", str(tmp_path / "out"), "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    pooled = doc["pooled"]
    assert pooled["events"] == 4 and pooled["detected"] >= 3 and pooled["precision"] > 0.3 and pooled["recall"] > 0.3
    assert pooled["false_alarm_rate"] < 0.08  # mostly the rows right after each event, while the alert clears
    out = (tmp_path / "out" / "site1" / "m1.csv").read_text().splitlines()  # mirrors the input paths
    assert out[0] == "time,score,alert,label" and len(out) == 1 + 900
    assert main(["evaluate", "csv", str(files[0]), "--label-column", "missing"]) == 1
    assert "no column(s) ['missing']" in capsys.readouterr().err
