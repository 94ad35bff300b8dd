"""Training: deterministic, honest splits, ESN ridge selection, pruning and int8 figures recorded."""

from pathlib import Path

import numpy as np
import pytest

from edge.artifact import load_artifact
from edge.data import read_csv
from edge.errors import ConfigError
from edge.gru import GRUCell
from edge.specs import ESNConfig, GRUConfig
from trainer.config import GRUTrainConfig, PruneConfig, TrainConfig
from edge.scoring import Scorer
from trainer.pipeline import forecasts, split_rows, train

from .conftest import DAILY, TAXI, train_small


def _same_weights(a, b):
    assert a.weights.keys() == b.weights.keys()
    for k in a.weights:
        np.testing.assert_array_equal(a.weights[k], b.weights[k], err_msg=k)


@pytest.mark.parametrize("kind", ["esn", "gru"])
def test_same_seed_same_model(kind, tmp_path, sine_csv):
    a = load_artifact(train_small(kind, tmp_path / "a", sine_csv))
    b = load_artifact(train_small(kind, tmp_path / "b", sine_csv))
    _same_weights(a, b)
    assert a.model_id == b.model_id
    c = load_artifact(train_small(kind, tmp_path / "c", sine_csv, seed=1))
    if kind == "gru":
        assert c.model_id != a.model_id


def test_normalisation_fitted_on_fit_rows_only(tmp_path, sine_csv):
    art = load_artifact(train_small("esn", tmp_path / "m", sine_csv))
    values = read_csv(sine_csv).values
    n_fit = split_rows(len(values), 0.2)
    np.testing.assert_allclose(art.normalizer.mean, values[:n_fit].mean(axis=0), rtol=1e-5)
    assert art.manifest["metrics"]["fit_rows"] == n_fit


def test_heldout_tail_is_never_fitted(tmp_path):
    """Poisoning the held-out tail moves the ridge choice and the calibration, never the reservoir
    or the normalisation; and the fit part alone determines the readout for a given ridge."""
    series = read_csv(DAILY)
    n_fit = split_rows(len(series.values), 0.2)
    cfg = TrainConfig(model=ESNConfig(units=50))
    a = load_artifact(train(series, cfg, tmp_path / "a"))
    poisoned = series.values.copy()
    poisoned[n_fit:] *= 3.0
    b = load_artifact(train(type(series)(series.timestamps, poisoned, series.columns, series.path, "x"), cfg, tmp_path / "b"))
    np.testing.assert_array_equal(a.normalizer.mean, b.normalizer.mean)
    np.testing.assert_array_equal(a.weights["w"], b.weights["w"])
    if a.manifest["metrics"]["esn"]["ridge"] == b.manifest["metrics"]["esn"]["ridge"]:
        np.testing.assert_array_equal(a.weights["readout.weight"], b.weights["readout.weight"])


@pytest.mark.parametrize("int8", [False, True])
def test_scorer_is_calibrated_on_the_chosen_rows(int8, tmp_path):
    """calibrate_on="all" fits the scorer to the serving cell's residuals on every training row after
    the washout, "heldout" to those on the held-out tail only."""
    series = read_csv(DAILY).head(1200)
    n = len(series.values)
    n_fit = split_rows(n, 0.2)
    for calibrate_on, first in (("all", 51), ("heldout", n_fit)):
        cfg = TrainConfig(model=ESNConfig(units=50), int8=int8, washout=50, calibrate_on=calibrate_on)
        art = load_artifact(train(series, cfg, tmp_path / calibrate_on))
        z = art.normalizer.normalize(series.values)
        y = forecasts(art.cell("int8" if int8 else "float32"), z)
        expected = Scorer.fit(z[first:] - y[first - 1:])
        np.testing.assert_allclose(art.scorer.knots_d, expected.knots_d, rtol=1e-6)
        np.testing.assert_allclose(art.scorer.scale, expected.scale, rtol=1e-6)
        assert art.manifest["metrics"]["calibration_rows"] == n - first
        assert art.manifest["provenance"]["train_config"]["calibrate_on"] == calibrate_on


def test_esn_beats_persistence_on_nab(tmp_path):
    """The ridge chosen on the held-out tail forecasts better than repeating the last value."""
    series = read_csv(TAXI).head(4000)
    art = load_artifact(train(series, TrainConfig(model=ESNConfig(units=150)), tmp_path / "m"))
    m = art.manifest["metrics"]
    assert m["float_rmse"] < 0.9 * m["persistence_rmse"]
    grid = m["esn"]["grid"]
    assert min(min(g.values()) for g in grid.values()) == grid[m["esn"]["toward"]][f"{m['esn']['ridge']:.0e}"]
    assert grid[m["esn"]["toward"]][f"{m['esn']['ridge']:.0e}"] == pytest.approx(m["esn"]["val_mse"])


@pytest.mark.parametrize("kind", ["esn", "lsm", "gru"])
def test_a_forecaster_over_many_channels_is_no_worse_than_persistence(kind, tmp_path):
    """Sixteen slow, clean sines from 800 rows. A reservoir's readout shrunk toward the mean (the
    forecast toward 0) forecast 7 times worse than repeating the last value (0.379 against 0.051
    RMSE), a GRU trained from torch's random readout 11 times (0.58). Shrunk toward persistence
    where the held-out tail says so, or trained from it, they are no worse; one channel keeps what
    it had."""
    from edge.data import Series
    from edge.specs import LSMConfig
    t = np.arange(800)[:, None]
    for d in (1, 16):
        c = np.arange(d)[None, :]
        rng = np.random.default_rng(d)
        v = np.sin(2 * np.pi * t / (100 + 23 * c) + c) + 0.02 * rng.standard_normal((800, d))
        series = Series(60.0 * t[:, 0], v.astype(np.float32), [f"c{k}" for k in range(d)], "sines", "x")
        model = {"esn": ESNConfig(input_size=d), "lsm": LSMConfig(input_size=d, units=200),
                 "gru": GRUConfig(input_size=d, hidden=16)}[kind]
        cfg = TrainConfig(model=model, gru=GRUTrainConfig(epochs=15, window=32))
        m = load_artifact(train(series, cfg, tmp_path / f"{kind}{d}")).manifest["metrics"]
        if d == 16:
            assert m["float_rmse"] <= 1.05 * m["persistence_rmse"]
            assert kind == "gru" or m[kind]["toward"] == "persistence"
        else:  # the GRU, from 800 rows in 15 epochs, learns less of one sine than a reservoir does
            assert m["float_rmse"] < (0.9 if kind == "gru" else 0.7) * m["persistence_rmse"]


@pytest.mark.slow
def test_gru_prunes_to_target_and_int8(tmp_path):
    series = read_csv(DAILY).head(2000)
    cfg = TrainConfig(model=GRUConfig(hidden=16), gru=GRUTrainConfig(epochs=10, window=32),
                      prune=PruneConfig(sparsity=0.5, units=0.25, steps=3, finetune_epochs=2), int8=True)
    art = load_artifact(train(series, cfg, tmp_path / "m"))
    pr = art.manifest["pruning"]
    assert art.config.hidden == 12 and pr["units_removed"] == 4           # H really shrank
    assert abs(pr["overall"] - 0.5) <= 0.01
    for name, s in pr["per_matrix"].items():  # exactly round(S * size) zeros in each matrix
        assert np.sum(art.weights[name] == 0) == round(0.5 * art.weights[name].size), name
        assert abs(np.mean(art.weights[name] == 0) - s) < 1e-9
    assert pr["rmse_before"] > 0 and pr["rmse_after"] > 0
    m = art.manifest["metrics"]
    assert m["int8_rmse"] <= 1.25 * m["float_rmse"] + 0.02
    # the int8 weights of a pruned matrix keep its zeros
    assert (art.weights["weight_hh_l0.q"][art.weights["weight_hh_l0"] == 0] == 0).all()


def test_structured_pruning_keeps_the_function_of_kept_units(tmp_path, sine_csv):
    """Removing zero units changes nothing; the narrower model is a real GRU of width H - k."""
    from trainer.gru import TorchGRU, seeded
    from trainer.prune import prune_units
    with seeded(0):
        model = TorchGRU(GRUConfig(input_size=2, hidden=10, layers=2))
    z = (read_csv(sine_csv).values[:200] - 10) / 3
    same = prune_units(model, z, 0.0)
    assert same.config.hidden == 10
    small = prune_units(model, z, 0.3)
    assert small.config.hidden == 7
    for name, a in small.weights().items():
        assert np.isfinite(a).all(), name
    from edge.cell import run
    y, _ = run(GRUCell.from_weights(small.config, small.weights()), z)
    assert y.shape == (200, 2)


def test_int8_esn_error_close_to_float(tmp_path):
    series = read_csv(TAXI).head(3000)
    art = load_artifact(train(series, TrainConfig(model=ESNConfig(units=100), int8=True), tmp_path / "m"))
    m = art.manifest["metrics"]
    assert m["int8_rmse"] <= 1.25 * m["float_rmse"] + 0.02
    assert m["float_rmse"] < m["persistence_rmse"]


def test_int8_ranges_of_the_tensors_that_grow_with_the_input_have_headroom(tmp_path):
    """An ESN's input, output and the tensors between that scale with the input get `headroom`
    times the training range; the state and the recurrent part keep theirs. The manifest records
    the factor, and the ranges it stores are the widened ones."""
    from edge.esn import make_reservoir
    from trainer.esn import ESNCell
    from trainer.quantize import calibrate, headroom_tensors
    z = ((read_csv(TAXI).values[:600] - 15000.0) / 7000.0).astype(np.float32)
    c = ESNConfig(units=50)
    w = {**make_reservoir(c), "readout.weight": np.full((1, 51), 0.1, np.float32),
         "readout.bias": np.zeros(1, np.float32)}
    cell = ESNCell.from_weights(c, w)
    plain, _ = calibrate(cell, z, headroom=1.0)
    wide, _ = calibrate(cell, z, headroom=4.0)
    assert set(headroom_tensors(c)) == {"input", "fc_in", "preact", "ro_input", "output"}
    assert plain["input"] == [float(z.min()), float(z.max())]
    for name, (lo, hi) in plain.items():
        assert wide[name] == ([4 * lo, 4 * hi] if name in headroom_tensors(c) else [lo, hi]), name
    series = read_csv(TAXI).head(1500)
    for f in (1.0, 4.0):
        art = load_artifact(train(series, TrainConfig(model=c, int8=True, int8_headroom=f), tmp_path / f"m{f}"))
        q = art.manifest["quantization"]
        assert q["headroom"] == f
        lo, hi = q["activations"]["input"]
        assert hi == pytest.approx(f * art.normalizer.normalize(series.values[:1200]).max(), rel=1e-6)
    with pytest.raises(ConfigError, match="int8_headroom"):
        TrainConfig(int8_headroom=0.5)
    with pytest.raises(ConfigError, match="applies to an ESN"):
        TrainConfig(model=GRUConfig(), int8_headroom=4.0)


def test_the_int8_readout_is_fitted_for_the_int8_reservoirs_own_rounding():
    """The int8 reservoir's states wander from the float ones by far more than one rounding (its
    rounding lives on in the leaky state); the int8 readout's penalty is that measured gap."""
    from edge.esn import make_reservoir
    from edge.quant import range_scale
    from trainer.esn import ESNCell, reservoir_states, state_rounding
    z = ((read_csv(TAXI).values[:1200] - 15000.0) / 7000.0).astype(np.float32)
    c = ESNConfig(units=100)
    w = {**make_reservoir(c), "readout.weight": np.zeros((1, 101), np.float32), "readout.bias": np.zeros(1, np.float32)}
    states = reservoir_states(ESNCell.from_weights(c, w), z)
    gap = state_rounding(c, w, z, states, 1000, headroom=1.0)
    one_rounding = range_scale(states[:1000].min(), states[:1000].max()) ** 2 / 12
    assert gap.shape == (100,) and np.isfinite(gap).all()
    assert gap.mean() > 2 * one_rounding


def _gru_on(device: str, series, out: Path, prune: PruneConfig = PruneConfig()):
    cfg = TrainConfig(model=GRUConfig(hidden=16), gru=GRUTrainConfig(epochs=6, window=32, lanes=8, device=device),
                      prune=prune, int8=True)
    return load_artifact(train(series, cfg, out))


def test_training_on_cuda_is_refused_with_the_reason_where_torch_sees_no_gpu(tmp_path, sine_csv):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match=r"--device cuda: .*(no CUDA|sees no CUDA device).*--device cpu"):
        _gru_on("cuda", read_csv(sine_csv), tmp_path / "m")
    assert not (tmp_path / "m").exists()  # refused before anything was written
    # auto falls back to the CPU and trains exactly what cpu trains, leaving the caller's RNG alone
    rng = torch.get_rng_state()
    a = _gru_on("auto", read_csv(sine_csv), tmp_path / "auto")
    assert torch.equal(torch.get_rng_state(), rng)
    b = _gru_on("cpu", read_csv(sine_csv), tmp_path / "cpu")
    for name in b.weights:
        np.testing.assert_array_equal(a.weights[name], b.weights[name], err_msg=name)
    assert a.manifest["provenance"]["train_config"]["gru"]["device"] == "auto"
    assert a.manifest["metrics"]["gru"]["device"] == "cpu"  # where it really trained


def test_an_unknown_training_device_is_refused():
    with pytest.raises(ConfigError, match="'device' parameter of GRUTrainConfig"):
        GRUTrainConfig(device="tpu")


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_gru_trains_on_cuda_reproducibly_and_close_to_the_cpu(tmp_path):
    """On a GPU: the same seed trains the same weights twice, pruning and int8 work there, the
    caller's CUDA generator is left as it was, and the model forecasts as well as the one trained on
    the CPU (rounding differs, so not bit-equal)."""
    import torch
    series = read_csv(DAILY).head(1500)
    prune = PruneConfig(sparsity=0.5, units=0.25, steps=2, finetune_epochs=2)
    rng = torch.cuda.get_rng_state()
    a = _gru_on("cuda", series, tmp_path / "a", prune)
    assert torch.equal(torch.cuda.get_rng_state(), rng)
    b = _gru_on("cuda", series, tmp_path / "b", prune)
    cpu = _gru_on("cpu", series, tmp_path / "cpu", prune)
    for name in a.weights:
        np.testing.assert_array_equal(a.weights[name], b.weights[name], err_msg=name)
    assert a.config.hidden == cpu.config.hidden == 12
    assert abs(a.manifest["pruning"]["overall"] - 0.5) <= 0.01
    ma, mc = a.manifest["metrics"], cpu.manifest["metrics"]
    assert ma["gru"]["device"].startswith("cuda (") and mc["gru"]["device"] == "cpu"
    assert ma["float_rmse"] <= 1.1 * mc["float_rmse"] + 0.01
    assert ma["int8_rmse"] <= 1.25 * ma["float_rmse"] + 0.02
