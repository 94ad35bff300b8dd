"""The payload decoder and the per-stream engine, without a broker."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.detector import Detector
from edge.engine import Engine, EngineConfig
from edge.errors import ConfigError
from edge.payload import Decoder, PayloadError, encode_binary, encode_json

from .conftest import sine_series


# --- payloads ------------------------------------------------------------------------------------
def test_json_forms_decode_alike():
    d = Decoder(["temp", "rh"])
    want_ts, want = np.array([10.0, 20.0]), np.array([[1.5, 40.0], [1.75, 41.0]], np.float32)
    forms = [
        encode_json(want_ts, want),
        json.dumps([{"ts": 10, "temp": 1.5, "rh": 40}, {"ts": 20, "rh": 41, "temp": 1.75}]).encode(),
        json.dumps([{"ts": "1970-01-01T00:00:10Z", "values": [1.5, 40]},
                    {"ts": "1970-01-01T00:00:20", "values": [1.75, 41]}]).encode(),
        encode_binary(want_ts, want),
    ]
    for payload in forms:
        ts, values = d.decode(payload)
        np.testing.assert_array_equal(ts, want_ts)
        np.testing.assert_array_equal(values, want)
    ts, values = Decoder(["value"]).decode(b'{"ts": 5, "value": 3}')
    assert ts.tolist() == [5.0] and values.tolist() == [[3.0]]


BAD = [
    (b"\xff\xfe not json", "not JSON"),
    (b'{"value": 1}', "missing 'ts'"),
    (b'{"ts": true, "values": [1, 2]}', "'ts' must be"),
    (b'{"ts": "yesterday", "values": [1, 2]}', "ISO 8601"),
    (b'{"ts": 1, "values": [1]}', "list of 2 numbers"),
    (b'{"ts": 1, "values": [1, NaN]}', "is nan"),
    (b'{"ts": 1, "values": [1, Infinity]}', "is inf"),
    (b'{"ts": 1, "values": [1, "x"]}', "not a number"),
    (b'{"ts": 1, "value": 1}', "univariate"),
    (b'{"ts": 1, "temp": 1, "wind": 2}', "unknown field 'wind'"),
    (b'{"ts": 1, "temp": 1}', "missing 'rh'"),
    (b'[]', "empty list"),
    (b'[{"ts": 2, "values": [1, 2]}, {"ts": 1, "values": [1, 2]}]', "row 1: timestamp"),
    (b'[1, 2]', "must be a JSON object"),
    (b"RE\x02\x00\x01\x00\x02\x00", "version 2"),
    (encode_binary(np.array([1.0]), np.ones((1, 3))), "3 channels"),
    (encode_binary(np.array([1.0]), np.ones((1, 2)))[:-1], "declares 1 rows"),
    (encode_binary(np.array([1.0]), np.array([[1.0, np.nan]])), "'rh' is nan"),
    (b"{" + b" " * 70_000 + b"}", "over the 65536-byte limit"),
]


@pytest.mark.parametrize("payload,reason", BAD, ids=[r for _, r in BAD])
def test_bad_payloads_are_refused_with_the_reason(payload, reason):
    with pytest.raises(PayloadError, match=None) as e:
        Decoder(["temp", "rh"]).decode(payload)
    assert reason in str(e.value)


# --- engine --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def art(tmp_path_factory):
    from edge.artifact import load_artifact

    from .conftest import train_small, write_csv
    path = write_csv(tmp_path_factory.mktemp("eng") / "s.csv", sine_series(1500, 2), names=("a", "b"))
    return load_artifact(train_small("esn", tmp_path_factory.mktemp("esn"), path, int8=False))


def _streams(n: int, t: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    out = {}
    for k in range(n):
        v = sine_series(t, 2, seed=k)
        v[rng.integers(100, t)] += 8.0  # a spike per stream, so alerts happen
        out[f"dev{k}/s"] = v
    return out


@pytest.mark.parametrize("compiled", [True, False], ids=["C scoring", "numpy scoring"])
def test_batched_streams_score_as_each_alone(art, compiled):
    """Samples of 5 streams, interleaved and arriving in uneven messages, score as Detector.run
    scores each stream alone: batching never mixes states, whether the rounds score in the C
    extension (Detector.step_slots) or in numpy (Detector.step). (Float32 products of a batch and of
    one row may round differently in BLAS, hence the tolerance; events must agree exactly.)"""
    streams = _streams(5, 400)
    det = Detector(art)
    det.use_compiled(compiled)
    if compiled and not det.compiled:
        pytest.skip("the C extension edge._rowstep is not built here")
    eng = Engine(det)
    got = {s: [] for s in streams}
    events = {s: [] for s in streams}
    pos = dict.fromkeys(streams, 0)
    rng = np.random.default_rng(0)
    while any(pos[s] < 400 for s in streams):
        batch = []
        for s in streams:
            k = int(rng.integers(0, 4))
            if pos[s] < 400 and k:
                rows = slice(pos[s], min(400, pos[s] + k))
                ts = 300.0 * np.arange(rows.start, rows.stop) + 1e9
                batch.append((s, ts, streams[s][rows]))
                pos[s] = rows.stop
        out = eng.process(batch)
        for s, score in zip(out.streams, out.scores):
            got[s].append(score)
        for a in out.events:
            events[a["stream"]].append((a["ts"], a["event"]))
    for s, v in streams.items():
        ts = 300.0 * np.arange(400) + 1e9
        ref = Detector(art).run(v, ts)
        np.testing.assert_allclose(np.array(got[s]), ref["score"], atol=1e-4)
        want = [(ts[t], "raised" if e > 0 else "cleared") for t, e in enumerate(ref["events"]) if e]
        assert events[s] == want
    assert sum(len(e) for e in events.values()) > 0
    assert eng.counters["samples"] == 2000


def test_stale_gap_cap_and_expiry(art):
    now = [0.0]
    eng = Engine(Detector(art), EngineConfig(max_streams=2, idle_expiry_s=60, max_gap_s=1000), clock=lambda: now[0])
    x = np.ones((1, 2), np.float32)
    eng.process([("a", np.array([10.0]), x), ("b", np.array([10.0]), x)])
    out = eng.process([("a", np.array([10.0]), x), ("c", np.array([11.0]), x)])
    assert [r[2].split(" ")[0] for r in sorted(out.rejected)] == ["timestamp", "stream"]
    assert eng.counters["stale"] == 1 and eng.counters["refused_streams"] == 1
    assert eng.seen[eng.slots["a"]] == 1
    now[0] = 50.0
    eng.process([("a", np.array([5000.0]), x)])  # a gap over max_gap_s: the model restarts
    assert eng.counters["gaps"] == 1 and eng.seen[eng.slots["a"]] == 1
    now[0] = 100.0  # b is idle past the expiry: the new stream takes its slot
    out = eng.process([("c", np.array([11.0]), x)])
    assert not out.rejected and set(eng.slots) == {"a", "c"} and eng.counters["expired"] == 1


def test_checkpoint_resumes_exactly(art, tmp_path):
    """Cut after a day, so the daily profiles learned before the checkpoint score after it."""
    streams = _streams(3, 400)
    ts = 300.0 * np.arange(400) + 1e9
    whole = Engine(Detector(art))
    split = Engine(Detector(art))
    for t in range(400):
        batch = [(s, ts[t:t + 1], v[t:t + 1]) for s, v in streams.items()]
        a = whole.process(batch)
        if t == 300:
            split.checkpoint(tmp_path / "state.npz", {"note": 1})
            split = Engine(Detector(art))
            assert split.restore(tmp_path / "state.npz") == {"note": 1}
        b = split.process(batch)
        assert a.scores == b.scores and a.events == b.events and a.adaptive == b.adaptive
    np.testing.assert_array_equal(whole.profile[:3], split.profile[:3])
    np.testing.assert_array_equal(whole.memory[:3], split.memory[:3])  # contextual novelty's windows
    np.testing.assert_array_equal(whole.context[:3], split.context[:3])
    assert split.memory[:3].any()
    assert (split.season[:3, 2] > 0).all()
    assert split.restore(tmp_path / "missing.npz") is None
    (tmp_path / "bad.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable"):
        split.restore(tmp_path / "bad.npz")


@pytest.mark.parametrize("version", [1, 3, 4])
def test_old_checkpoints_are_upgraded(art, tmp_path, version):
    """A checkpoint written before contextual novelty (version 4) restores with an empty memory; one
    written before the adaptive state's fatigue load (version 3) also with no load; one written
    before its fifth column (no novel sample on record) and the daily profile (version 1) restores
    with that column at -inf and no profile learned; everything else as it was."""
    eng = Engine(Detector(art))
    for t in range(20):
        eng.process([("a", np.array([float(t)]), np.full((1, 2), 10.0 + t, np.float32))])
    eng.checkpoint(tmp_path / "now.npz")
    with np.load(tmp_path / "now.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    kept = {1: 4, 3: 5, 4: 6}[version]
    arrays["adapt"] = arrays["adapt"][:, :kept]
    del arrays["context"], arrays["memory"]
    if version == 1:
        del arrays["season"], arrays["profile"]
    np.savez(tmp_path / "old.npz", meta=np.array(json.dumps({**meta, "version": version})), **arrays)
    back = Engine(Detector(art))
    back.restore(tmp_path / "old.npz")
    i, j = back.slots["a"], eng.slots["a"]
    np.testing.assert_array_equal(back.adapt[i, :kept], eng.adapt[j, :kept])
    assert (back.adapt[i, 5] == 0.0 or version == 4) and back.seen[i] == 20
    assert not back.context[i].any() and eng.context[j].any() and back.memory.shape[1:] == eng.memory.shape[1:]
    if version == 1:
        assert back.adapt[i, 4] == -np.inf
        assert np.isnan(back.profile[i]).all() and not np.isnan(eng.profile[j]).all()
    else:
        np.testing.assert_array_equal(back.profile[i], eng.profile[j])


def test_checkpoint_of_another_model_is_refused(art, tmp_path):
    from dataclasses import replace
    eng = Engine(Detector(art))
    eng.process([("a", np.array([1.0]), np.ones((1, 2), np.float32))])
    eng.checkpoint(tmp_path / "s.npz")
    other = Engine(Detector(replace(art, manifest={**art.manifest, "model_id": "0" * 16})))
    with pytest.raises(ConfigError, match="checkpoint of model"):
        other.restore(tmp_path / "s.npz")


def test_swap_keeps_alert_machines(art):
    eng = Engine(Detector(art))
    x = np.full((1, 2), 100.0, np.float32)
    for t in range(80):  # a flat-out anomaly after warm-up raises
        eng.process([("a", np.array([float(t)]), x if t > 60 else np.full((1, 2), 10.0, np.float32))])
        if eng.active[eng.slots["a"]]:
            break
    assert eng.active[eng.slots["a"]]
    i = eng.slots["a"]
    learned = eng.profile[i].copy()
    assert not np.isnan(learned).all() and eng.season[i, 2] > 0
    eng.swap(Detector(art, "float32"))
    assert eng.active[i] and eng.seen[i] == 0
    # the stream's daily profile carries on (the same bins), its surprise statistics restart
    np.testing.assert_array_equal(eng.profile[i], learned)
    assert eng.season[i, 2] == 0
    with pytest.raises(ConfigError, match="features"):
        from dataclasses import replace
        eng.swap(Detector(replace(art, manifest={**art.manifest, "features": ["x", "y"]})))
