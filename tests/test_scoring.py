"""The calibrated score, the alert state machine, and the detector that joins them."""

import numpy as np
import pytest

from edge.alerts import CLEARED, NONE, RAISED, AlertConfig, AlertState, alert_step
from edge.errors import ConfigError
from edge.scoring import Scorer


def test_score_is_calibrated_probability():
    rng = np.random.default_rng(0)
    scorer = Scorer.fit(rng.standard_normal((5000, 3)))
    fresh = rng.standard_normal((200_000, 3))
    d, share = scorer.distance(fresh.astype(np.float32))
    s = scorer.score(d)
    assert ((s >= 0) & (s <= 1)).all()
    for rate in (0.1, 0.01, 0.001):
        assert abs(np.mean(s >= 1 - rate) - rate) < 0.35 * rate + 2e-4, rate
    np.testing.assert_allclose(share.sum(axis=1), 1.0, rtol=1e-5)


def test_score_is_monotone_and_resolves_far_tail():
    scorer = Scorer.fit(np.random.default_rng(1).standard_normal((1000, 1)))
    d = np.linspace(0, 20, 2001)
    s = scorer.score(d)
    assert (np.diff(s) >= 0).all()
    tail = s[(d > scorer.knots_d[-1]) & (d < 8)]  # the exponential tail keeps far scores apart
    assert (np.diff(tail) > 0).all() and tail[-1] > 0.9999


def test_scorer_names_bad_calibration():
    with pytest.raises(ConfigError, match="at least 20"):
        Scorer.fit(np.zeros((5, 1)))
    with pytest.raises(ConfigError, match="NaN"):
        Scorer.fit(np.full((50, 1), np.nan))


def _drive(cfg, scores):
    st = AlertState.zeros(1)
    events = []
    for s in scores:
        st, e = alert_step(cfg, st, np.array([s]))
        events.append(int(e[0]))
    return events


def test_alert_raises_after_k_once_per_episode_and_clears_after_m():
    cfg = AlertConfig(threshold=0.99, clear_threshold=0.9, raise_after=3, clear_after=2)
    ev = _drive(cfg, [1, 1, 0.5, 1, 1, 1, 1, 1, 0.95, 0.5, 0.5, 0.5, 1, 1, 1])
    assert [i for i, e in enumerate(ev) if e == RAISED] == [5, 14]
    assert [i for i, e in enumerate(ev) if e == CLEARED] == [10]
    # 0.95 lies between the thresholds: it neither clears nor counts towards clearing


def test_alert_cooldown_and_batch_independence():
    cfg = AlertConfig(threshold=0.99, clear_threshold=0.9, raise_after=1, clear_after=1, cooldown=3)
    ev = _drive(cfg, [1, 0, 1, 1, 1, 1])
    assert ev == [RAISED, CLEARED, NONE, NONE, RAISED, NONE]
    st = AlertState.zeros(2)
    st, e = alert_step(cfg, st, np.array([1.0, 0.0]))
    assert list(e) == [RAISED, NONE] and list(st.active) == [True, False]


def test_alert_config_validated():
    with pytest.raises(ConfigError, match="The 'clear_threshold' parameter of AlertConfig must be a float"):
        AlertConfig(threshold=0.9, clear_threshold=0.95)
    assert AlertConfig.for_false_alarm_rate(1e-3).threshold == pytest.approx(0.999)


def test_detector_alerts_on_injected_spike(small_model):
    from edge.detector import Detector

    from .conftest import sine_series
    values = sine_series(600, small_model.config.input_size, seed=5)
    values[400:406] += 8.0
    out = Detector(small_model).run(values)
    raised = np.flatnonzero(out["events"] == RAISED)
    assert len(raised) >= 1 and 400 <= raised[0] <= 410
    assert (out["score"][:small_model.manifest["warmup"] + 1] == 0).all()
    assert out["score"][400:406].min() > 0.999


def test_detector_refuses_wrong_width(small_model):
    from edge.detector import Detector
    from edge.errors import DataError
    d = small_model.config.input_size
    with pytest.raises(DataError, match=rf"needs values float\[T, {d}\].*got shape \[10, {d + 1}\]"):
        Detector(small_model).run(np.zeros((10, d + 1), np.float32))


def test_adaptive_score_marks_onsets_and_learns_new_regimes():
    from edge.scoring import Adaptive
    ad = Adaptive(horizon=500, refractory=50)
    rng = np.random.default_rng(0)
    r = np.abs(rng.normal(1.0, 0.3, 3000))
    r[1000:] += 6.0  # a lasting shift of the surprise
    st = Adaptive.zeros(2)
    adaptive, first = np.zeros((3000, 2)), np.zeros((3000, 2))
    for t in range(3000):
        live = np.array([True, t >= 100])  # stream 1 warms up for 100 samples
        before = st.copy()
        adaptive[t], first[t], st = ad.step(st, -np.log(10.0) * np.array([r[t], r[t]]), live)
        if t < 100:
            np.testing.assert_array_equal(st[1], before[1])  # not live: its statistics wait
            assert adaptive[t, 1] == 0.0
    assert adaptive[200:1000, 0].max() < 0.5 and adaptive[1000, 0] > 0.5  # the onset stands out ...
    assert first[1000, 0] == adaptive[1000, 0] and (first[1001:1050, 0] < 0.02).mean() > 0.8  # ... mostly once
    assert adaptive[2900:, 0].max() < 0.5  # and the new level is learned


def test_adaptive_one_stream_path_equals_the_batched_one_bit_for_bit():
    from edge.scoring import Adaptive
    ad = Adaptive(horizon=300, refractory=40, warmup=5)
    rng = np.random.default_rng(1)
    ls = -np.abs(rng.normal(2.0, 1.5, (2000, 3))) * np.log(10.0)
    ls[700:720] *= 8
    novel = rng.random((2000, 3)) < 0.01
    live = np.ones((2000, 3), bool)
    live[:30, 1] = False
    batch, ones = Adaptive.zeros(3), [Adaptive.zeros(1) for _ in range(3)]
    for t in range(2000):
        a, f, batch = ad.step(batch, ls[t], live[t], novel[t])
        for b in range(3):
            a1, f1, ones[b] = ad.step(ones[b], ls[t, b:b + 1], live[t, b:b + 1], novel[t, b:b + 1])
            assert (a1[0], f1[0]) == (a[b], f[b])
            np.testing.assert_array_equal(ones[b][0], batch[b])
