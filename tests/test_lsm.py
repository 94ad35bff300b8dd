"""The spiking reservoir: event-driven and dense steps agree, the synapses round-trip through the
artifact as int8, training and the runtime's detector serve it, SynOps follow activity."""

from __future__ import annotations

import numpy as np
import pytest

from edge.artifact import load_artifact
from edge.detector import Detector
from edge.lsm import LSMCell, make_reservoir
from edge.specs import LSMConfig

from .conftest import clock, sine_series, write_csv


@pytest.fixture(scope="module", params=["ternary", "int8"])
def lsm(request, tmp_path_factory):
    from trainer.config import TrainConfig
    from trainer.pipeline import train
    from edge.data import read_csv
    path = write_csv(tmp_path_factory.mktemp("lsm") / "s.csv", sine_series(1200, 2), names=("a", "b"))
    cfg = TrainConfig(model=LSMConfig(input_size=2, units=120, weights=request.param, seed=4))
    return load_artifact(train(read_csv(path), cfg, tmp_path_factory.mktemp("m")))


def test_event_driven_step_equals_the_dense_one(lsm):
    cell = lsm.cell()
    z = lsm.normalizer.normalize(sine_series(400, 2, seed=9))
    rng = np.random.default_rng(0)
    s_ev = s_dn = np.zeros((3, cell.state_size), np.float32)
    spikes = 0
    for t in range(400):
        x = np.stack([z[t], z[t] + 0.1 * rng.standard_normal(2).astype(np.float32), -z[t]])
        y_ev, s_ev, ops = cell.step_counted(x, s_ev)
        y_dn, s_dn = cell.step_dense(x, s_dn)
        np.testing.assert_array_equal(s_ev, s_dn)
        np.testing.assert_array_equal(y_ev, y_dn)
        n = cell.config.units
        spikes += int(s_ev[:, 2 * n:3 * n].sum())
        assert (ops <= cell.dense_macs()).all()
    assert spikes > 0


def test_synapses_round_trip_as_int8_and_the_reservoir_is_seeded(lsm):
    for name in ("w.q", "w_in.q"):
        assert lsm.weights[name].dtype == np.int8
    if lsm.config.weights == "ternary":
        assert set(np.unique(lsm.weights["w.q"])) <= {-1, 0, 1}
    again = make_reservoir(lsm.config)
    np.testing.assert_array_equal(again["w.q"], lsm.weights["w.q"])
    assert abs(np.count_nonzero(lsm.weights["w.q"]) / lsm.config.units ** 2 - lsm.config.density) < 0.03


def test_synops_follow_activity():
    c = LSMConfig(input_size=1, units=200, seed=1)
    w = make_reservoir(c)
    w.update({"delta": np.array([0.1], np.float32), "readout.weight": np.zeros((1, 201), np.float32),
              "readout.bias": np.zeros(1, np.float32)})
    cell = LSMCell.from_weights(c, w)
    quiet = np.zeros((1, cell.state_size), np.float32)
    _, _, ops = cell.step_counted(np.zeros((1, 1), np.float32), quiet)
    assert ops[0] == 0  # no input change, no spikes: no work
    busy = quiet.copy()
    busy[0, 400:600] = 1.0  # every neuron spiked last step
    _, _, ops = cell.step_counted(np.full((1, 1), 5.0, np.float32), busy)
    assert ops[0] == np.count_nonzero(w["w.q"]) + np.count_nonzero(w["w_in.q"][:, 0])


def test_detector_serves_it_and_converters_refuse_it(lsm):
    from converters.convert import emit
    from edge.errors import RnnEdgeError
    out = Detector(lsm).run(sine_series(300, 2, seed=2), clock(300))
    assert out["score"].shape == (300,) and np.isfinite(out["forecast"]).all()
    with pytest.raises(RnnEdgeError, match="no ONNX or TFLite target"):
        emit(lsm, "tflite", lsm.path)


def test_cli_trains_lsm_and_refuses_int8(tmp_path, sine_csv, capsys):
    from edge.cli import main
    assert main(["train", str(sine_csv), "--kind", "lsm", "--units", "80", "-o", str(tmp_path / "m")]) == 0
    assert "lsm (spiking)" in capsys.readouterr().out
    assert main(["train", str(sine_csv), "--kind", "lsm", "--int8", "-o", str(tmp_path / "m8")]) == 1
    assert "train it without --int8" in capsys.readouterr().err


def test_nir_export_reads_back_as_the_reservoir_graph(lsm, tmp_path):
    nir = pytest.importorskip("nir")
    from converters import nir_target
    g = nir.read(str(nir_target.write(lsm, tmp_path)))
    assert set(g.nodes) == {"input", "w_in", "lif", "w_rec", "output"} and ("w_rec", "lif") in g.edges
    assert g.metadata["dt"] == 1.0 and g.metadata["synapses"] == lsm.config.weights


@pytest.mark.parametrize("simulator", ["norse", "snntorch"])
def test_nir_export_is_spike_exact_in_two_simulators(lsm, tmp_path, simulator):
    """The .nir file imported into Norse, and into snnTorch's own LIF and Linear modules by its NIR
    node converter, fires exactly the reference's spikes over 2,000 steps of input spikes from the
    send-on-delta encoder."""
    pytest.importorskip("nir")
    pytest.importorskip(simulator)
    from converters import nir_target
    path = nir_target.write(lsm, tmp_path)
    values = np.vstack([sine_series(1000, 2, seed=5), 1.5 * sine_series(1000, 2, seed=6)])
    inputs, ref = nir_target.reference_spikes(lsm, values)
    got = getattr(nir_target, f"{simulator}_spikes")(path, inputs)
    assert ref.sum() > 1000
    np.testing.assert_array_equal(got, ref)


def test_neuromorphic_profile_budget(lsm, tmp_path):
    from converters import neuromorphic
    from converters.profiles import ProfileError
    loihi = neuromorphic.load("loihi2")
    assert loihi.neurons == 1_000_000 and neuromorphic.check(loihi, lsm) == []
    need = neuromorphic.needs(lsm)
    assert need["weight_bits"] == (2 if lsm.config.weights == "ternary" else 8)
    small = tmp_path / "tiny.toml"
    small.write_text('name = "tiny"\ndescription = "d"\nsource = "s"\nneurons = 100\nsynapses = 1000\n'
                     'weight_bits = 4\ncores = 1\n')
    bad = {v.check for v in neuromorphic.check(neuromorphic.load(small), lsm)}
    assert {"neurons", "synapses"} <= bad and (("weight_bits" in bad) == (lsm.config.weights == "int8"))
    small.write_text(small.read_text().replace("neurons = 100", "neurons = -1"))
    with pytest.raises(ProfileError, match="key 'neurons' must be a positive integer"):
        neuromorphic.load(small)
    small.write_text(small.read_text() + "clock_mhz = 5\n")
    with pytest.raises(ProfileError, match="unknown key 'clock_mhz'"):
        neuromorphic.load(small)
