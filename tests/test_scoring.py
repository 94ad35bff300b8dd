"""The calibrated score, the alert state machine, and the detector that joins them."""

import numpy as np
import pytest

from edge.alerts import CLEARED, NONE, RAISED, AlertConfig, AlertState, alert_step, alert_step_one
from edge.errors import ArtifactError, ConfigError
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


def test_the_largest_channel_catches_a_one_channel_fault_the_rms_catches_a_shift_of_all():
    """Sixteen channels. The RMS of the standardised residuals counts a fault in one channel at
    1/4 of its size; the largest counts it whole, and misses what the RMS is best at, a moderate
    shift of every channel. Both are calibrated: the same false-alarm rate on normal rows. On one
    channel the two are the same distance; the one-stream path equals the batched one."""
    rng = np.random.default_rng(0)
    train = rng.standard_normal((5000, 16))
    rms, top = Scorer.fit(train), Scorer.fit(train, norm="max")
    normal = rng.standard_normal((20000, 16)).astype(np.float32)
    one, every = normal.copy(), normal + np.float32(2.0)
    one[:, 0] += 5.0

    def caught(sc, x):  # the share of rows at or over the threshold for a 1e-3 false-alarm rate
        return float(np.mean(sc.score(sc.distance(x)[0]) >= 0.999))
    for sc in (rms, top):
        assert caught(sc, normal) < 2e-3
    assert caught(rms, one) < 0.6 < 0.8 < caught(top, one)        # measured: 0.47 and 0.84
    assert caught(top, every) < 0.4 < 0.95 < caught(rms, every)   # 0.30 and 0.996
    assert [top.distance_one(r)[0] for r in one[:50].tolist()] == top.distance(one[:50])[0].tolist()
    single = rng.standard_normal((1000, 1))
    x = single[:100].astype(np.float32)
    np.testing.assert_array_equal(Scorer.fit(single).distance(x)[0], Scorer.fit(single, norm="max").distance(x)[0])
    assert Scorer.from_dict(top.to_dict(), 16).norm == "max"
    old = rms.to_dict()
    del old["norm"]  # an artifact from before the choice
    assert Scorer.from_dict(old, 16).to_dict() == rms.to_dict()
    with pytest.raises(ArtifactError, match="norm is 'l1', not one of rms, max"):
        Scorer.from_dict({**old, "norm": "l1"}, 16)
    with pytest.raises(ConfigError, match="norm"):
        Scorer.fit(train, norm="l1")


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


def test_alert_one_stream_path_equals_the_batched_one():
    cfg = AlertConfig(threshold=0.99, clear_threshold=0.9, raise_after=2, clear_after=3, cooldown=4)
    rng = np.random.default_rng(3)
    scores = rng.choice([0.5, 0.95, 0.995], size=(3000, 4), p=[0.6, 0.2, 0.2])
    batch, rows = AlertState.zeros(4), AlertState.zeros(4)
    seen = set()
    for t in range(3000):
        batch, events = alert_step(cfg, batch, scores[t])
        assert [alert_step_one(cfg, rows, b, float(scores[t, b])) for b in range(4)] == events.tolist()
        seen.update(events.tolist())
        for name in ("active", "above", "below", "cooldown"):
            np.testing.assert_array_equal(getattr(rows, name), getattr(batch, name))
    assert seen == {NONE, RAISED, CLEARED}


def test_alert_config_validated():
    with pytest.raises(ConfigError, match="The 'clear_threshold' parameter of AlertConfig must be a float"):
        AlertConfig(threshold=0.9, clear_threshold=0.95)
    assert AlertConfig.for_false_alarm_rate(1e-3).threshold == pytest.approx(0.999)


def test_detector_alerts_on_injected_spike(small_model):
    from edge.detector import Detector

    from .conftest import clock, sine_series
    values = sine_series(600, small_model.config.input_size, seed=5)
    values[400:406] += 8.0
    out = Detector(small_model).run(values, clock(600))
    raised = np.flatnonzero(out["events"] == RAISED)
    # these small models follow a clean sine roughly: a noise extreme may raise too, never as high
    assert ((raised >= 400) & (raised <= 410)).any() and len(raised) <= 3, raised
    assert out["adaptive"][400:406].max() > out["adaptive"][:400].max() + 0.2
    assert (out["score"][:small_model.manifest["warmup"] + 1] == 0).all()
    assert out["score"][400:406].min() > 0.999


ROW_PATHS = ["python", "compiled"]


def use_row_path(det, path: str) -> None:
    """Point Detector.step_row at Python floats or at the C extension (skipped where it is not built)."""
    det.use_compiled(path == "compiled")
    if path == "compiled" and not det.compiled:
        pytest.skip("the C extension edge._rowstep is not built here")


@pytest.mark.parametrize("path", ROW_PATHS)
def test_detector_takes_any_layout_of_its_input(small_model, path):
    """A column slice of a wider table (strided rows) or a float64 Fortran-ordered array scores as
    the float32 C-ordered one does, in run and in step_row: the C extension reads contiguous float32."""
    from edge.detector import Detector

    from .conftest import clock, sine_series
    det = Detector(small_model)
    use_row_path(det, path)
    values = sine_series(200, small_model.config.input_size, seed=3)
    ts = clock(len(values))
    ref = det.run(values, ts)
    wide = np.repeat(values, 2, axis=1)[:, ::2]  # every row strided
    assert not wide[0].flags.c_contiguous
    for other in (wide, np.asfortranarray(values, np.float64)):
        np.testing.assert_array_equal(det.run(other, ts)["score"], ref["score"])
    st = det.init(1)
    scores = [det.step_row(st, 0, wide[t], ts[t]).score for t in range(len(values))]
    np.testing.assert_array_equal(scores, ref["score"])


def with_norm(det, norm: str) -> None:
    """The detector's scorers (the forecaster's and the daily profile's) combining channels by `norm`."""
    from dataclasses import replace
    det.scorer = replace(det.scorer, norm=norm)
    if det.daily is not None:
        det.daily = replace(det.daily, scorer=replace(det.daily.scorer, norm=norm))
    det.use_compiled(det.compiled)


@pytest.mark.parametrize("path", ROW_PATHS)
@pytest.mark.parametrize("margin,norm,clip", [(0.0, "rms", 0.0), (0.05, "rms", 0.0), (0.0, "max", 3.0)])
def test_detector_one_stream_path_equals_the_batched_step(small_model, margin, norm, clip, path):
    """Detector.run steps one stream through step_row (Python floats, or the C extension);
    Detector.step is the batched numpy path. Same scores to the last bit of exp/log1p, same events,
    same state, through warm-up, novel values (with and without a novelty margin), the far tail and
    raised/cleared alerts, with the channels' residuals combined by their RMS or the largest, and
    the running statistics learning each surprise whole or clipped."""
    from edge.detector import Detector
    from edge.scoring import Adaptive

    from .conftest import clock, sine_series
    det = Detector(small_model)
    use_row_path(det, path)
    with_norm(det, norm)
    det.adaptive = Adaptive(novelty_margin=margin, novelty_refractory=20.0, clip=clip)
    values = sine_series(700, small_model.config.input_size, seed=7)
    values[300:304] += 8.0   # far tail and novel
    values[500:520] *= 1.5   # novel, longer
    values[600] -= 30.0
    ts = clock(len(values))
    ref = det.run(values, ts)
    st = det.init(2)  # two identical streams through the batched path
    score, events = np.empty(len(values)), np.empty(len(values), np.int8)
    adaptive, first = np.empty(len(values)), np.empty(len(values))
    for t in range(len(values)):
        st, r = det.step(st, np.repeat(values[t:t + 1], 2, axis=0), np.repeat(ts[t], 2))
        score[t], events[t], adaptive[t], first[t] = r.score[0], r.events[0], r.adaptive[0], r.first[0]
    np.testing.assert_allclose(ref["score"], score, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ref["adaptive"], adaptive, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ref["first"], first, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(ref["events"], events)
    assert (events == RAISED).sum() >= 2 and (events == CLEARED).sum() >= 1
    assert (score > det.scorer.knots_p[-1]).any()  # the far tail was exercised
    assert (adaptive >= 0.9).any()  # and novelty


@pytest.mark.parametrize("path", ROW_PATHS)
def test_one_channel_path_equals_the_batched_step(tmp_path, path):
    """step_row's one-channel branch (float32 scalar arithmetic) against the batched numpy step at
    B=1 (at B=2 BLAS may round the reservoir's one-column product differently)."""
    from edge.artifact import load_artifact
    from edge.detector import Detector

    from .conftest import clock, sine_series, train_small, write_csv
    csv = write_csv(tmp_path / "one.csv", sine_series(1200, 1), names=("v",))
    det = Detector(load_artifact(train_small("esn", tmp_path / "m", csv, int8=False)))
    use_row_path(det, path)
    values = sine_series(600, 1, seed=11)
    values[300:303] += 6.0
    ts = clock(len(values))
    ref = det.run(values, ts)
    st = det.init(1)
    score, adaptive = np.empty(len(values)), np.empty(len(values))
    for t in range(len(values)):
        st, r = det.step(st, values[t:t + 1], ts[t:t + 1])
        score[t], adaptive[t] = r.score[0], r.adaptive[0]
    np.testing.assert_allclose(ref["score"], score, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ref["adaptive"], adaptive, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(det.normalizer.denormalize(st.forecast[:1]), ref["forecast"][-1:])
    assert (adaptive > 0.5).any()


def test_novelty_margin_and_refractory_keep_a_slow_drift_from_being_novel_at_every_step(small_model):
    from edge.detector import Detector
    from edge.scoring import Adaptive

    from .conftest import clock
    det = Detector(small_model)
    lo, hi = det.extent
    ramp = hi + (hi - lo) * np.linspace(0.0, 0.2, 400)[:, None]  # creeping past the training range
    values = np.vstack([np.repeat(((lo + hi) / 2)[None], 100, axis=0), ramp]).astype(np.float32)
    counts = {}
    for margin, refractory, z in ((0.0, 0.0, 0.0), (0.05, 0.0, 0.0), (0.0, 50.0, 0.0), (0.0, 0.0, 1.5)):
        det.adaptive = Adaptive(novelty_margin=margin, novelty_refractory=refractory, novelty_z=z, warmup=0)
        counts[margin, refractory, z] = int((det.run(values, clock(500))["adaptive"] == 0.9).sum())  # the floor
    assert counts[0.0, 0.0, 0.0] > 300, counts     # every new high is novel
    assert counts[0.05, 0.0, 0.0] < 10, counts     # only those 5% of the range beyond the last
    assert counts[0.0, 50.0, 0.0] == 1, counts     # one novelty episode
    # only the new highs the forecaster did not see coming: the ESN, trained on a sine, follows a ramp
    # out of its range (21 of them); the GRUs (4 epochs) keep expecting the sine to turn (268 and 271)
    share = 0.2 if small_model.config.kind == "esn" else 0.75
    assert counts[0.0, 0.0, 1.5] < share * counts[0.0, 0.0, 0.0], counts


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
        adaptive[t], first[t], st, _ = ad.step(st, -np.log(10.0) * np.array([r[t], r[t]]), live)
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
        a, f, batch, _ = ad.step(batch, ls[t], live[t], novel[t])
        for b in range(3):
            a1, f1, ones[b], _ = ad.step(ones[b], ls[t, b:b + 1], live[t, b:b + 1], novel[t, b:b + 1])
            assert (a1[0], f1[0]) == (a[b], f[b])
            np.testing.assert_array_equal(ones[b][0], batch[b])
    assert (batch[:, 5] > 0).all()  # the fatigue load took part


def test_a_burst_that_keeps_coming_stops_alerting_and_a_quiet_stream_forgets_it():
    """Alert fatigue: the same extreme surprise every 150 samples alerts at first, then less and less;
    the first burst, and one that comes after a long quiet, score as they would without fatigue."""
    from edge.scoring import Adaptive
    rng = np.random.default_rng(3)
    r = np.abs(rng.normal(1.0, 0.3, 12000))
    bursts = np.arange(1000, 4000, 150)
    r[bursts] = 20.0
    r[11000] = 20.0  # after 7,000 quiet samples
    live = np.ones(1, bool)

    def run(ad):
        st, first, load = Adaptive.zeros(1), np.zeros(len(r)), np.zeros(len(r))
        for t in range(len(r)):
            _, (first[t],), st, _ = ad.step(st, -np.log(10.0) * r[t:t + 1], live)
            load[t] = st[0, 5]
        return first, load

    (plain, _), (tired, load) = run(Adaptive(fatigue=0.0)), run(Adaptive())
    assert plain[bursts[0]] == tired[bursts[0]] > 0.85
    assert (plain[bursts] > 0.7).all()  # the running statistics alone learn bursts slowly
    assert (tired[bursts[-5:]] < plain[bursts[-5:]] - 0.15).all() and (np.diff(tired[bursts]) < 0).all()
    # one onset per 150 samples, each decaying over 1,000: the load tends to 1 / (1 - exp(-0.15))
    assert 6.5 < load[bursts[-1]] < 1 / (1 - np.exp(-0.15)) and load[10999] < 0.01
    assert tired[11000] == pytest.approx(plain[11000], rel=1e-3) and tired[11000] > 0.55


def test_a_clipped_statistic_keeps_a_repeating_fault_alerting():
    """Twenty samples of extreme surprise every 200 samples, no fatigue. Learned whole, each episode
    raises the stream's running variance (its std 0.3 before, 4.3 after eight) and the next one scores
    lower, under the alert threshold from the fourth on; learned at most 3 standard deviations
    (`clip`), every episode scores as the first did, and the variance stays near the quiet one."""
    from edge.scoring import Adaptive
    rng = np.random.default_rng(3)
    r = np.abs(rng.normal(1.0, 0.3, 3000))
    starts = np.arange(1000, 2600, 200)
    for s in starts:
        r[s:s + 20] = 20.0
    live = np.ones(1, bool)

    def run(ad):
        st, peaks = Adaptive.zeros(1), []
        for t in range(len(r)):
            (a,), _, st, _ = ad.step(st, -np.log(10.0) * r[t:t + 1], live)
            peaks.append(a)
            if t == 999:
                quiet = np.sqrt(st[0, 1])
        return [max(peaks[s:s + 20]) for s in starts], quiet, np.sqrt(st[0, 1])

    (plain, quiet, late), (clipped, quiet_c, late_c) = run(Adaptive(fatigue=0.0)), run(Adaptive(fatigue=0.0, clip=3.0))
    assert plain[0] > 0.9 and max(plain[3:]) < 0.55 and late > 10 * quiet     # 0.93 ... 0.45; 0.30 to 4.3
    assert min(clipped) > 0.9 and late_c < 1.5 * quiet_c                        # 0.91 at the eighth; 0.39


def test_surprise_beyond_the_cap_counts_as_the_cap_and_does_not_hide_the_next_anomaly():
    from edge.scoring import Adaptive
    rng = np.random.default_rng(2)
    r = np.abs(rng.normal(1.0, 0.3, 2000))
    r[500], r[1500] = 200.0, 12.0  # an absurdly extreme sample, then a plain anomaly
    live = np.ones(1, bool)

    def run(ad, r):
        st, out = Adaptive.zeros(1), np.zeros(len(r))
        for t in range(len(r)):
            (out[t],), _, st, _ = ad.step(st, -np.log(10.0) * r[t:t + 1], live)
        return out

    capped, uncapped = run(Adaptive(surprise_cap=20.0), r), run(Adaptive(surprise_cap=0.0), r)
    assert 0.7 < capped[500] < uncapped[500]
    assert capped[1500] > 0.5 > uncapped[1500]  # uncapped, the 10^-200 sample still inflates the variance
    at_cap = r.copy()
    at_cap[500] = 20.0
    np.testing.assert_array_equal(run(Adaptive(surprise_cap=20.0), at_cap), capped)


def test_artifacts_written_before_the_surprise_cap_score_as_they_did():
    from edge.scoring import Adaptive
    old = Adaptive.from_dict({"horizon": 100.0})
    assert (old.surprise_cap, old.novelty_z, old.fatigue) == (0.0, 0.0, 0.0)
    assert Adaptive.from_dict(Adaptive().to_dict()) == Adaptive()


def test_compiled_and_python_one_stream_paths_agree_bit_for_bit(small_model):
    """The C extension and the Python floats path: the same operations on the same libm, so every
    output and every state array is equal exactly, through novelty, the far tail and alerts."""
    from edge.detector import Detector

    from .conftest import clock, sine_series
    det = Detector(small_model)
    if not det.compiled:
        pytest.skip("the C extension edge._rowstep is not built here")
    from edge.scoring import Adaptive
    values = sine_series(700, small_model.config.input_size, seed=9)
    values[300:304] += 8.0
    values[500:520] *= 1.5
    ts = clock(len(values))
    outputs = {}
    # every novel sample floored; only the surprising ones; fatigue (at a z this stream reaches); the
    # channels combined by the largest instead of the RMS; and the statistics learning clipped surprises
    for novelty_z, fatigue, norm, clip in ((0.0, 0.0, "rms", 0.0), (1.5, 0.0, "rms", 0.0), (1.5, 0.5, "rms", 0.0),
                                           (1.5, 0.5, "max", 0.0), (1.5, 0.5, "max", 2.0)):
        with_norm(det, norm)
        det.adaptive = Adaptive(novelty_z=novelty_z, fatigue=fatigue, fatigue_z=3.0, clip=clip)
        runs, states = [], []
        for on in (True, False):
            det.use_compiled(on)
            st = det.init(3)
            rows = [det.step_row(st, t % 3, values[t], ts[t]) for t in range(len(values))]
            runs.append([(r.score, r.distance, r.event, r.adaptive, r.first, r.share) for r in rows])
            states.append(st)
        assert runs[0] == runs[1]
        for name in ("model", "forecast", "seen", "adapt", "extent", "season", "profile"):
            np.testing.assert_array_equal(getattr(states[0], name), getattr(states[1], name))
        for name in ("active", "above", "below", "cooldown"):
            np.testing.assert_array_equal(getattr(states[0].alerts, name), getattr(states[1].alerts, name))
        outputs[novelty_z, fatigue, norm, clip] = runs[0]
        assert (states[0].adapt[:, 5] > 0).any() or not fatigue
    a, b, c, d, e = outputs.values()
    assert any(r[2] for r in a) and a != b != c != d != e


def test_compiled_step_refuses_arrays_of_the_wrong_kind(small_model):
    from edge.detector import Detector
    det = Detector(small_model)
    if not det.compiled:
        pytest.skip("the C extension edge._rowstep is not built here")
    st = det.init(2)
    x = np.zeros(small_model.config.input_size, np.float32)
    with pytest.raises(IndexError, match="stream 2 is out of range for 2 streams"):
        det.step_row(st, 2, x, 0.0)
    st.adapt = st.adapt.astype(np.float32)
    with pytest.raises(ValueError, match="adapt has the wrong dtype, shape or layout"):
        det.step_row(st, 0, x, 0.0)
