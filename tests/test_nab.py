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
    for profile in PROFILES:
        assert normalise(corpus, sweep(corpus, null, profile)[1], profile) == pytest.approx(0.0)
        assert normalise(corpus, sweep(corpus, perfect, profile)[1], profile) == pytest.approx(100.0, abs=0.5)


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
