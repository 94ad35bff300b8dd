"""The daily profile (edge.seasonal): what it catches, when it is built, and its state."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from edge.artifact import load_artifact
from edge.detector import Detector
from edge.errors import ArtifactError, DataError
from edge.seasonal import DailyProfile

from .conftest import clock, train_small, write_csv


def daily_peaks(days: int, missing: tuple = (), seed: int = 0) -> np.ndarray:
    """Every 5 minutes: 10 plus noise, and a peak of 5 around noon (one hour wide) except on `missing` days."""
    n = 288 * days
    hour = (np.arange(n) % 288) / 12.0
    peak = 5.0 * np.exp(-0.5 * (hour - 12.0) ** 2)
    for d in missing:
        peak[288 * d:288 * (d + 1)] = 0.0
    return (10 + peak + 0.2 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)[:, None]


def office_hours(weeks: int, holidays: tuple = (), seed: int = 0) -> np.ndarray:
    """Every 5 minutes from Monday 2024-01-01: 10 plus noise, and 5 more from 09:00 to 17:00 on
    weekdays except on the `holidays` (day numbers from the start)."""
    n = 2016 * weeks
    day, hour = np.arange(n) // 288, (np.arange(n) % 288) / 12.0
    work = (day % 7 < 5) & (hour >= 9) & (hour < 17) & ~np.isin(day, holidays)
    return (10 + 5.0 * work + 0.2 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)[:, None]


@pytest.fixture(scope="module")
def peaks_csv(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("peaks") / "peaks.csv", daily_peaks(4), names=("v",))


def test_a_missing_daily_peak_raises_an_alert_only_with_the_profile(tmp_path, peaks_csv):
    """A one-step forecaster sees a flat noon as flat as every night; the profile compares noon with
    earlier noons. Scored from a day after training (the stream builds its own profile on its first
    day), the peak missing on day 5 raises an alert with the profile and none without it; the
    profile raises nothing elsewhere."""
    values = daily_peaks(7, missing=(5,), seed=1)
    ts = clock(len(values), "2024-01-05T00:00:00")
    window = range(288 * 5 + 12 * 9, 288 * 5 + 12 * 15)  # 09:00-15:00 of day 5
    raised = {}
    for weight in (0.6, 0.0):
        det = Detector(load_artifact(train_small("esn", tmp_path / f"w{weight}", peaks_csv, profile_weight=weight)))
        assert (det.daily is None) == (weight == 0.0)
        out = det.run(values, ts)
        raised[weight] = [int(t) for t in np.flatnonzero(out["events"] == 1) if t >= 288]
    added = set(raised[0.6]) - set(raised[0.0])
    assert added and all(t in window for t in added), raised  # the profile adds alerts there and nowhere else
    assert not any(t in window for t in raised[0.0]), raised


def test_a_holiday_raises_an_alert_with_a_weekly_profile(tmp_path):
    """Training rows that span two weeks give a week's profile. A Thursday without office hours
    looks, sample by sample and against every time of day, like a Sunday; against Thursdays it is
    missing its working day. Scored from a fresh stream (its first week fills the profile), the
    holiday raises an alert with the profile and none without it; the profile raises nothing
    elsewhere."""
    path = write_csv(tmp_path / "office.csv", office_hours(3)[:4320], names=("v",))  # 15 days
    values = office_hours(4, holidays=(17,), seed=1)  # Thursday of the third week
    ts = clock(len(values))
    holiday = range(288 * 17, 288 * 18)
    raised = {}
    for weight in (0.6, 0.0):
        det = Detector(load_artifact(train_small("esn", tmp_path / f"w{weight}", path, profile_weight=weight)))
        if weight:
            assert (det.daily.period_s, det.daily.bins, det.daily.bin_s) == (7 * 86400.0, 2016, 300.0)
        out = det.run(values, ts)
        raised[weight] = [int(t) for t in np.flatnonzero(out["events"] == 1) if t >= 2016]
    added = set(raised[0.6]) - set(raised[0.0])
    assert added and all(t in holiday for t in added), raised
    assert not any(t in holiday for t in raised[0.0]), raised


def test_the_profile_is_a_weeks_where_the_training_rows_span_two_weeks():
    v = office_hours(3)
    weekly, why = DailyProfile.fit(clock(4320), v[:4320])
    assert why == "" and weekly.describe() == "a week in 2016 bins of 300 s"
    daily, why = DailyProfile.fit(clock(4000), v[:4000])  # 13.9 days
    assert why == "" and daily.describe() == "a day in 288 bins of 300 s"
    by_day, why = DailyProfile.fit(86400.0 * np.arange(60), v[:60])  # a day has no shape; a week has 7 days
    assert why == "" and by_day.describe() == "a week in 7 bins of 86400 s"
    section = weekly.to_dict()
    assert section["period_s"] == 604800.0 and DailyProfile.from_dict(section, 1).to_dict() == section


def test_each_stream_learns_its_own_profile_from_its_first_day(peaks_csv, tmp_path):
    det = Detector(load_artifact(train_small("esn", tmp_path / "m", peaks_csv)))
    values, ts = daily_peaks(2, seed=2), clock(576)
    st = det.init(2)
    assert np.isnan(st.profile).all() and st.profile.shape == (2, 288, 1)
    for t in range(288):
        det.step_row(st, 0, values[t], ts[t])
    assert not np.isnan(st.profile[0]).any() and np.isnan(st.profile[1]).all()  # stream 1 has not begun
    assert st.season[0, 2] == 0  # the first day only fills bins: nothing scored against them yet
    np.testing.assert_array_equal(st.profile[0, :, 0], values[:288, 0])
    for t in range(288, 576):
        det.step_row(st, 0, values[t], ts[t])
    assert st.season[0, 2] == 288 and np.abs(st.profile[0, 144, 0] - 15.0) < 0.5  # noon's bin holds the peak


def test_a_bin_that_first_saw_an_outlier_learns_the_normal_values_after_it(peaks_csv, tmp_path):
    """The forecaster's z gates the profile's learning, not the profile's own: a bin initialised by
    an outlier (03:00 of the stream's first day) learns the normal values that follow, instead of
    flagging them every day."""
    det = Detector(load_artifact(train_small("esn", tmp_path / "m", peaks_csv)))
    values, ts = daily_peaks(7, seed=3), clock(288 * 7)
    values[36] += 8.0  # 03:00 of day 0, the bin's first visit
    st, raised = det.init(1), []
    for t in range(len(values)):
        event = det.step_row(st, 0, values[t], ts[t]).event
        if event == 1:
            raised.append(t)
    assert st.profile[0, 36, 0] < 12.0, st.profile[0, 36]  # 10 + 0.75**6 * 8 = 11.4; 18 if it never learns
    # nothing raised at 03:00 (bin 36, give or take half an hour) on the last three days; elsewhere
    # the week's noise may raise a stray alert at the calibrated false-alarm rate
    assert not [t for t in raised if t >= 288 * 4 and abs(t % 288 - 36) <= 6], raised


def test_the_profile_needs_a_whole_day_of_training_rows_and_timestamps(tmp_path, peaks_csv):
    v = daily_peaks(1)
    assert DailyProfile.fit(clock(200), v[:200]) == (None, "the training rows span 16.6 hours; a daily profile "
                                                           "needs a whole day")
    assert DailyProfile.fit(8 * 3600.0 * np.arange(40), v[:40]) == (
        None, "rows come every 8.0 hours; a daily profile needs at least 4 a day")
    profile, why = DailyProfile.fit(clock(576), daily_peaks(2))
    assert why == "" and (profile.bins, profile.bin_s) == (288, 300.0)
    art = load_artifact(train_small("esn", tmp_path / "m", peaks_csv))
    assert art.manifest["metrics"]["daily_profile"] == "a day in 288 bins of 300 s"
    with pytest.raises(DataError, match="daily profile, so every sample needs its timestamp"):
        Detector(art).run(v)


def test_a_malformed_profile_section_is_refused_with_the_reason(tmp_path, peaks_csv):
    art = load_artifact(train_small("esn", tmp_path / "m", peaks_csv))
    section = art.manifest["daily_profile"]
    for broken, reason in (({**section, "bins": 3}, "'bins' parameter of DailyProfile must be an int in"),
                           ({**section, "spread": [-1.0]}, "spread must hold one positive value per channel"),
                           ({**section, "period_s": 3600.0}, "this version knows days"),
                           ({k: v for k, v in section.items() if k != "alpha"}, "'alpha'")):
        manifest = {**art.manifest, "daily_profile": broken}
        with pytest.raises(ArtifactError, match=reason):
            Detector(replace(art, manifest=manifest))
    assert json.loads(json.dumps(section)) == DailyProfile.from_dict(section, 1).to_dict()
