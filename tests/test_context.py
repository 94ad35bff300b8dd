"""Contextual novelty (edge.context): a level new for the stream's recent shape."""

from __future__ import annotations

import numpy as np
import pytest

from edge.context import ContextNovelty
from edge.errors import ArtifactError, ConfigError


def _ctx(**kw) -> ContextNovelty:
    base = dict(block=1, after=16, lo=np.zeros(1), span=np.ones(1), window=4, neighbours=4, memory=64, margin=0.1)
    return ContextNovelty(**{**base, **kw})


def _flags(ctx: ContextNovelty, values) -> list[int]:
    head, memory = ctx.zeros(1)
    return [i for i, v in enumerate(values) if ctx.observe_one(head[0], memory[0], [float(v)])]


T = np.arange(600)
SINE = 0.5 + 0.5 * np.sin(2 * np.pi * T / 16)  # the whole range, 0 to 1
HALF = 0.5 + 0.25 * np.sin(2 * np.pi * T / 16)  # the same shape at levels inside it
SWITCH = np.concatenate([SINE[:200], HALF[200:]])


def test_a_level_new_for_its_shape_is_flagged_until_the_stream_has_shown_it():
    """A sine whose swing halves stays inside the range, so the novelty of values outside everything
    seen is silent; its levels are new for their shapes for one period, then routine."""
    assert _flags(_ctx(), SINE) == []
    flags = _flags(_ctx(), SWITCH)
    assert flags and 200 < min(flags) and max(flags) < 200 + 16
    assert len(_flags(_ctx(margin=0.3), SWITCH)) < len(flags)  # a wider margin, fewer flags


def test_the_shape_is_the_context():
    """Compared with every window in memory instead of the nearest in shape, the same levels are
    inside the range of all levels seen: nothing is flagged."""
    assert _flags(_ctx(neighbours=600, memory=600), SWITCH) == []


def test_blocks_keep_their_extreme_and_judging_waits_for_after():
    """A block of 4 samples reduces to the value farther from the running average of block means,
    so one spike in a block survives; nothing is judged before `after` blocks."""
    ctx = _ctx(block=4, neighbours=3, after=0)
    quiet = [0.5, 0.5, 0.5, 0.5] * 20
    spike = [0.5, 0.9, 0.5, 0.5]
    assert _flags(ctx, quiet + spike) == [83]
    assert _flags(_ctx(block=4, neighbours=3, after=21), quiet + spike) == []
    assert _flags(_ctx(block=4, neighbours=3, after=20), quiet + spike) == [83]


def test_batched_and_one_stream_steps_agree_exactly():
    rng = np.random.default_rng(0)
    ctx = ContextNovelty(block=3, after=10, lo=np.array([-1.0, 0.0]), span=np.array([2.0, 5.0]),
                         window=4, neighbours=4, memory=16, margin=0.05)
    x = rng.normal(size=(300, 3, 2)).astype(np.float32)
    x[200:, 1, 0] += 2.0  # a level shift in one stream's channel
    h1, m1 = ctx.zeros(3)
    h2, m2 = ctx.zeros(3)
    total = 0
    for t in range(len(x)):
        a = ctx.observe(h1, m1, x[t])
        b = [ctx.observe_one(h2[i], m2[i], x[t, i].tolist()) for i in range(3)]
        assert a.tolist() == b
        total += sum(b)
    np.testing.assert_array_equal(h1, h2)
    np.testing.assert_array_equal(m1, m2)
    assert total > 0
    rows = np.array([2, 0])  # a subset of the streams, in place
    h3, m3 = h1.copy(), m1.copy()
    got = ctx.observe(h1, m1, x[:2, 0], rows)
    want = [ctx.observe_one(h3[i], m3[i], v.tolist()) for i, v in zip(rows, x[:2, 0])]
    assert got.tolist() == want
    np.testing.assert_array_equal(h1, h3)
    np.testing.assert_array_equal(m1, m3)


def test_fit_and_manifest_round_trip():
    values = np.linspace(-2.0, 3.0, 1050)[:, None] * np.array([1.0, 0.0])
    ctx, why = ContextNovelty.fit(values)
    assert why == "" and ctx.block == 10 and ctx.after == 105  # 1,050 rows: 105 blocks of 10
    assert ctx.lo.tolist() == [-2.0, 0.0] and ctx.span.tolist() == [5.0, 1.0]  # a constant channel: 1
    extent = [values.min(axis=0), values.max(axis=0)]  # the manifest's, where the section reads its range
    back = ContextNovelty.from_dict(ctx.to_dict(), extent)
    assert back.to_dict() == ctx.to_dict() and back.same_cut(ctx) and "lo" not in ctx.to_dict()
    assert ContextNovelty.fit(values[:100])[0] is None
    assert "100 training rows" in ContextNovelty.fit(values[:100])[1]
    with pytest.raises(ArtifactError, match="context_novelty section: .*'memory' parameter"):
        ContextNovelty.from_dict({**ctx.to_dict(), "memory": 10}, extent)  # fewer than its neighbours
    with pytest.raises(ConfigError, match="span positive"):
        _ctx(span=np.zeros(1))


def test_the_detector_paths_agree_on_a_model_with_contextual_novelty(tmp_path):
    """The numpy step, Python floats and the C extension give the same scores on a stream whose
    level shifts inside the training range; the novelty floor marks the flagged block."""
    from edge.artifact import load_artifact
    from edge.detector import Detector

    from .conftest import sine_series, train_small, write_csv
    path = write_csv(tmp_path / "s.csv", sine_series(1040, 1), names=("v",))
    art = load_artifact(train_small("esn", tmp_path / "m", path, int8=False))
    assert art.manifest["context_novelty"]["block"] == 10
    values = sine_series(6000, 1, seed=4)
    values[5000:5200] = 10.0  # a flat stretch at the mean: inside the range, new for its shape
    ts = 300.0 * np.arange(len(values))
    det = Detector(art)
    runs = {}
    for compiled in ((False, True) if det.compiled else (False,)):
        det.use_compiled(compiled)
        runs[compiled] = det.run(values, ts)["adaptive"]
    st, batched = det.init(1), np.empty(len(values))
    for t in range(len(values)):
        st, r = det.step(st, values[t:t + 1], ts[t:t + 1])
        batched[t] = r.adaptive[0]
    for a in runs.values():
        np.testing.assert_allclose(a, batched, rtol=1e-12, atol=1e-12)
        assert runs[False].tolist() == a.tolist()
    flags = _flags(det.context, values[:, 0])
    assert flags and min(flags) >= 5000 and runs[False][flags[0]] >= 0.9
    det.context = None  # without it, the flat stretch's first flagged sample scores under the floor
    assert det.run(values, ts)["adaptive"][flags[0]] < 0.9
