"""The NAB scorer against Numenta HTM's published results (data/nab/reference/numenta)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from trainer.nab import PROFILES, Corpus, corpus_score, label_file, normalise, probation, read_results, sweep

from .conftest import ROOT

REF = ROOT / "data" / "nab" / "reference" / "numenta"


@pytest.fixture(scope="module")
def corpus():
    return Corpus.load(ROOT / "data" / "nab")


@pytest.fixture(scope="module")
def htm(corpus):
    return read_results(REF, "numenta", corpus)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_reproduces_the_published_htm_scores(corpus, htm, profile):
    published = json.loads((REF / "final_results.json").read_text())["numenta"][profile]
    threshold = json.loads((REF / "thresholds.json").read_text())["numenta"][profile]["threshold"]
    raw, rows = corpus_score(corpus, htm, profile, threshold)
    assert normalise(corpus, raw, profile) == pytest.approx(published, abs=0.01)
    by_file = {r["File"]: r for r in csv.DictReader(open(REF / f"numenta_{profile}_scores.csv")) if r["File"]}
    for r in rows:  # and every file's raw score and record counts
        p = by_file[r.name]
        assert r.score == pytest.approx(float(p["Score"]), abs=1e-6), r.name
        assert (r.tp, r.tn, r.fp, r.fn) == (int(p["TP"]), int(p["TN"]), int(p["FP"]), int(p["FN"])), r.name


@pytest.mark.parametrize("profile", list(PROFILES))
def test_sweep_never_finds_a_worse_threshold_than_the_published_one(corpus, htm, profile):
    threshold = json.loads((REF / "thresholds.json").read_text())["numenta"][profile]["threshold"]
    published, _ = corpus_score(corpus, htm, profile, threshold)
    best_t, best = sweep(corpus, htm, profile)
    assert best >= published - 1e-9
    assert corpus_score(corpus, htm, profile, best_t)[0] == pytest.approx(best, abs=1e-9)  # sweep = direct scoring


def test_null_and_perfect_detectors_score_0_and_100(corpus):
    null = {n: np.zeros(len(corpus.labels[n].weight)) for n in corpus.names}
    perfect = {}
    for n in corpus.names:
        lab = corpus.labels[n]
        s = np.zeros(len(lab.weight))
        for w in np.unique(lab.window[lab.scored & (lab.window >= 0)]):
            s[np.flatnonzero(lab.scored & (lab.window == w))[0]] = 1.0  # the first scored record of each window
        perfect[n] = s
    half = corpus.subset(corpus.names[1::2][::-1])  # in corpus order, normalised by its own windows
    assert half.names == corpus.names[1::2] and half.windows() < corpus.windows()
    for c in (corpus, half):
        for profile in PROFILES:
            assert normalise(c, sweep(c, null, profile)[1], profile) == pytest.approx(0.0)
            assert normalise(c, sweep(c, perfect, profile)[1], profile) == pytest.approx(100.0, abs=0.5)


def test_window_weights():
    ts = np.arange(np.datetime64("2024-01-01T00:00"), np.datetime64("2024-01-01T00:00") + np.timedelta64(100, "m"),
                   np.timedelta64(1, "m")).astype("datetime64[s]")
    lab = label_file("x", ts, [("2024-01-01 00:40:00.000000", "2024-01-01 00:49:00.000000")])
    assert probation(100) == 15 and lab.scored.sum() == 85
    assert (lab.window[40:50] == 0).all() and (lab.window[:40] == -1).all() and (lab.window[50:] == -1).all()
    assert lab.weight[40] == pytest.approx(2 / (1 + np.exp(-5)) - 1)   # the left edge: the best a TP gets
    assert lab.weight[49] == pytest.approx(2 / (1 + np.exp(-0.5)) - 1)  # the last record: position -1/10
    assert (lab.weight[:40] == -1).all()                               # before any window: a full FP
    assert lab.weight[50] == pytest.approx(2 / (1 + np.exp(5 * 1 / 9)) - 1)  # just after: a mild FP
    assert np.all(np.diff(lab.weight[40:50]) < 0)


# --- rnnedge evaluate nab --------------------------------------------------------------------------
FILES = ["artificialWithAnomaly/art_daily_jumpsup.csv", "realKnownCause/nyc_taxi.csv"]


def _mini_nab(tmp_path, edit=None):
    """A two-file NAB folder; `edit(name, lines)` may change a file's data lines."""
    src = ROOT / "data" / "nab"
    windows = json.loads((src / "combined_windows.json").read_text())
    tmp_path.mkdir(parents=True)
    (tmp_path / "combined_windows.json").write_text(json.dumps({n: windows[n] for n in FILES}))
    for name in FILES:
        lines = (src / "data" / name).read_text().splitlines()
        if edit:
            lines = [lines[0], *edit(name, lines[1:])]
        (tmp_path / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / name).write_text("\n".join(lines) + "\n")
    return tmp_path


def test_evaluate_writes_nab_results_and_scores(tmp_path):
    from edge.cli import main
    root = _mini_nab(tmp_path / "nab")
    assert main(["evaluate", "nab", "--data", str(root), "-o", str(tmp_path / "out"), "--plot", "nyc_taxi",
                 "--keep-models"]) == 0
    png = tmp_path / "out" / "plots" / "rnnedge_esn_realKnownCause_nyc_taxi.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    doc = json.loads((tmp_path / "out" / "rnnedge_esn_scores.json").read_text())
    assert set(doc["normalised"]) == set(PROFILES) and all(-1000 < v <= 100 for v in doc["normalised"].values())
    res = tmp_path / "out" / "rnnedge_esn" / "realKnownCause" / "rnnedge_esn_nyc_taxi.csv"
    rows = res.read_text().splitlines()
    assert rows[0] == "timestamp,value,anomaly_score,label" and len(rows) == 10321
    corpus = Corpus.load(root)  # NAB's own layout reads back, and scores the same
    again = read_results(tmp_path / "out" / "rnnedge_esn", "rnnedge_esn", corpus)
    raw, _ = corpus_score(corpus, again, "standard", doc["thresholds"]["standard"])
    assert raw == pytest.approx(doc["raw"]["standard"], abs=1e-4)
    # "alerts as deployed": each kept model's own raise events, stepped again, as the detections
    from edge.alerts import RAISED
    from edge.artifact import load_artifact
    from edge.data import read_csv
    from edge.detector import Detector
    raised = {}
    for name in FILES:
        det = Detector(load_artifact(tmp_path / "out" / "models" / name.replace(".csv", "")))
        series = read_csv(root / "data" / name, on_unordered="keep")
        raised[name] = (det.run(series.values, series.timestamps)["events"] == RAISED).astype(float)
    assert sum(r.sum() for r in raised.values()) >= 2
    for profile in PROFILES:
        want = normalise(corpus, corpus_score(corpus, raised, profile, 0.5)[0], profile)
        assert doc["alerts_as_deployed"][profile] == pytest.approx(want, abs=1e-9)


def test_evaluation_trains_on_the_probationary_period_only(tmp_path):
    """Poison every record after the probationary period with NaN: training still succeeds (it never
    reads them) and scoring fails at the first poisoned record, naming it. Changing later records
    leaves every earlier score as it was: nothing looks ahead."""
    from edge.errors import DataError
    from edge.specs import ESNConfig
    from trainer.config import TrainConfig
    from trainer.evaluate import evaluate_nab

    def poison(name, lines):
        p = probation(len(lines))
        return lines[:p] + [f"{ln.split(',')[0]},nan" for ln in lines[p:]]
    cfg = TrainConfig(model=ESNConfig(input_size=1))
    with pytest.raises(DataError, match=r"record 604 is not a number.*trained on records 0\.\.603 only"):
        evaluate_nab(_mini_nab(tmp_path / "p", poison), cfg, tmp_path / "o1")

    def tail_times_ten(name, lines):
        return lines[:2000] + [f"{ln.split(',')[0]},{10 * float(ln.split(',')[1])}" for ln in lines[2000:]]
    evaluate_nab(_mini_nab(tmp_path / "a"), cfg, tmp_path / "oa")
    evaluate_nab(_mini_nab(tmp_path / "b", tail_times_ten), cfg, tmp_path / "ob")
    for name in FILES:
        cat, base = name.split("/")
        a = np.loadtxt(tmp_path / "oa" / "rnnedge_esn" / cat / f"rnnedge_esn_{base}", delimiter=",", skiprows=1,
                       usecols=2)
        b = np.loadtxt(tmp_path / "ob" / "rnnedge_esn" / cat / f"rnnedge_esn_{base}", delimiter=",", skiprows=1,
                       usecols=2)
        np.testing.assert_array_equal(a[:2000], b[:2000])
        assert not np.array_equal(a[2000:], b[2000:])


@pytest.mark.parametrize("backend, suffix", [("tflite", "tflite"), ("tflite-micro", "tflm")])
def test_evaluate_through_the_int8_tflite_target_scores_like_the_numpy_int8_reference(tmp_path, backend, suffix):
    """The device's view: each file's model converted to full-integer TFLite and stepped in LiteRT
    (a phone's or a Pi's runtime) or TFLite Micro (a microcontroller's). Decisions of the int8 target
    and the numpy int8 cell agree (converters' gate), so the scores do too."""
    if backend == "tflite-micro":
        pytest.importorskip("tflite_micro")
    from edge.specs import ESNConfig
    from trainer.config import TrainConfig
    from trainer.evaluate import evaluate_nab
    root = _mini_nab(tmp_path / "nab")
    cfg = TrainConfig(model=ESNConfig(input_size=1), int8=True)
    ref = evaluate_nab(root, cfg, tmp_path / "numpy")
    lite = evaluate_nab(root, cfg, tmp_path / backend, backend=backend)
    assert lite.detector == f"rnnedge_esn_int8_{suffix}"
    assert (tmp_path / backend / lite.detector / "realKnownCause" / f"{lite.detector}_nyc_taxi.csv").is_file()
    for p in PROFILES:
        assert lite.normalised[p] == pytest.approx(ref.normalised[p], abs=2.0)
