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


def test_train_and_evaluate_take_the_distance_and_the_statistics_clip(tmp_path, capsys):
    """--distance max and --stat-clip reach the artifact (`info` names the distance) and `evaluate
    csv`, which scores the same file differently with them."""
    from edge.artifact import load_artifact
    from edge.cli import main
    f = _labelled(tmp_path / "m.csv", 1)
    flags = ["--distance", "max", "--stat-clip", "3", "--fatigue", "0"]
    assert main(["train", str(f), "--columns", "a,b,c", "--rows", "600", "-o", str(tmp_path / "m"), *flags]) == 0
    art = load_artifact(tmp_path / "m")
    assert art.scorer.norm == "max" and art.manifest["adaptive"]["clip"] == 3.0
    assert art.manifest["provenance"]["train_config"]["distance"] == "max"
    capsys.readouterr()
    assert main(["info", str(tmp_path / "m")]) == 0
    info = capsys.readouterr().out
    assert "the largest of the channels' standardised residuals" in info
    assert "(cap 20, clip 3 std), fatigue 0 (" in info
    docs = []
    for extra in ([], flags):
        assert main(["evaluate", "csv", str(f), "--label-column", "anomaly", "--train-rows", "600", "--json",
                     *extra]) == 0
        docs.append(json.loads(capsys.readouterr().out)["pooled"])
    assert docs[0] != docs[1] and all(d["events"] == 2 for d in docs)


def test_evaluate_csv_reads_values_and_labels_as_one_table(tmp_path, capsys):
    """Values and labels are read in one pass with the CSV options of `train`: a row dropped for a
    missing cell takes its label with it; --columns picks value columns; each file gets a model of
    its own width; a label other than 0 or 1 is refused with its row's timestamp."""
    from edge.cli import main
    lines = _labelled(tmp_path / "m.csv", 1).read_text().splitlines()
    gap = lines.copy()
    gap[800] = ",".join(["" if j == 2 else c for j, c in enumerate(gap[800].split(","))])  # column b, row 799
    (tmp_path / "gap.csv").write_text("\n".join(gap) + "\n")
    (tmp_path / "cut.csv").write_text("\n".join(lines[:800] + lines[801:]) + "\n")
    (tmp_path / "narrow.csv").write_text("\n".join(line.split(",", 1)[0] + "," + line.split(",", 2)[2]
                                                   for line in lines) + "\n")  # time,b,c,anomaly
    bad = lines.copy()
    bad[900] = bad[900].rsplit(",", 1)[0] + ",2"
    (tmp_path / "bad.csv").write_text("\n".join(bad) + "\n")

    def evaluate(*args):
        code = main(["evaluate", "csv", *args, "--label-column", "anomaly", "--train-rows", "600", "--json"])
        out, err = capsys.readouterr()
        return code, json.loads(out) if code == 0 else err

    code, err = evaluate(str(tmp_path / "gap.csv"))
    assert code == 1 and "line 801: column 'b' is missing" in err and "--on-missing ffill|drop" in err
    code, dropped = evaluate(str(tmp_path / "gap.csv"), "--on-missing", "drop")
    assert code == 0 and evaluate(str(tmp_path / "cut.csv"))[1]["pooled"] == dropped["pooled"]
    code, doc = evaluate(str(tmp_path / "m.csv"), str(tmp_path / "narrow.csv"))  # 3 and 2 value columns
    assert code == 0 and doc["pooled"]["events"] == 4
    code, picked = evaluate(str(tmp_path / "m.csv"), "--columns", "b,c")
    assert code == 0 and picked["pooled"] == doc["files"][str(tmp_path / "narrow.csv")]
    code, err = evaluate(str(tmp_path / "bad.csv"))
    assert code == 1 and "column 'anomaly' holds 2 at 2024-01-01T14:59:00+00:00 (1 such rows)" in err


def test_evaluate_csv_through_the_int8_target_counts_what_the_reference_counts(tmp_path, capsys, monkeypatch):
    """--backend scores each file through its model's converted full-integer target, as a device
    runs it. The int8 ESN's reference computes that target's numbers in LiteRT's arithmetic
    (XNNPACK) or TFLite Micro's (gemmlowp), so every count is the reference's in that arithmetic."""
    import trainer.evaluate as ev
    from edge.cli import main
    from edge.detector import Detector
    f = _labelled(tmp_path / "m.csv", 2)

    def evaluate(backend):  # a random reservoir: on this file its two arithmetics part, a ring's do not
        assert main(["evaluate", "csv", str(f), "--label-column", "anomaly", "--train-rows", "600", "--int8",
                     "--topology", "random", "--backend", backend, "--json"]) == 0
        return json.loads(capsys.readouterr().out)["pooled"]

    counts = {b: evaluate(b) for b in ("numpy", "tflite", "tflite-micro")}
    assert counts["tflite"] == counts["numpy"] and counts["numpy"]["detected"] == 2
    assert counts["tflite-micro"] != counts["numpy"]  # the two arithmetics part on this file
    monkeypatch.setattr(ev, "_served", lambda art, backend: Detector(art, cell=art.cell(arithmetic="gemmlowp")))
    assert evaluate("numpy") == counts["tflite-micro"]
