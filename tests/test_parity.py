"""torch and the numpy reference compute the same model, over 1,000 closed-loop steps."""

import numpy as np
import pytest
import torch

from edge.cell import run
from edge.errors import ArtifactError, ConfigError
from edge.esn import ESNCell, make_reservoir, ring_weight
from edge.gru import GRUCell
from edge.specs import ESNConfig, GRUConfig
from trainer.gru import TorchGRU, seeded

from .conftest import sine_series

STEPS = 1000


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("d", [1, 3])
def test_gru_torch_vs_numpy(layers, d):
    config = GRUConfig(input_size=d, hidden=24, layers=layers)
    with seeded(7):
        model = TorchGRU(config)
    z = (sine_series(STEPS, d) - 10) / 3
    with torch.no_grad():
        y_t, s_t = model(torch.from_numpy(z[None]))
    y_n, s_n = run(GRUCell.from_weights(config, model.weights()), z)
    np.testing.assert_allclose(y_n, y_t[0].numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(s_n, s_t.numpy(), rtol=0, atol=1e-5)


def test_esn_torch_vs_numpy():
    """The leaky ESN written independently in torch (float64) agrees with the float32 reference."""
    config = ESNConfig(input_size=2, units=100, leak=0.4, seed=5)
    w = make_reservoir(config)
    rng = np.random.default_rng(0)
    w["readout.weight"] = rng.standard_normal((2, 102)).astype(np.float32) * 0.1
    w["readout.bias"] = rng.standard_normal(2).astype(np.float32)
    z = (sine_series(STEPS, 2) - 10) / 3
    y_n, s_n = run(ESNCell.from_weights(config, w), z)

    t = {k: torch.from_numpy(v).double() for k, v in w.items()}
    s = torch.zeros(100, dtype=torch.float64)
    ys = []
    for x in torch.from_numpy(z).double():
        s = (1 - config.leak) * s + config.leak * torch.tanh(t["w_in"] @ x + t["w"] @ s + t["bias"])
        ys.append(t["readout.weight"] @ torch.cat([s, x]) + t["readout.bias"])
    np.testing.assert_allclose(y_n, torch.stack(ys).numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(s_n[0], s.numpy(), rtol=0, atol=1e-5)


def test_random_reservoir_spectral_radius_and_density():
    config = ESNConfig(units=300, spectral_radius=0.8, density=0.05, seed=1, topology="random")
    w = make_reservoir(config)
    assert abs(np.max(np.abs(np.linalg.eigvals(w["w"].astype(np.float64)))) - 0.8) < 1e-4
    assert abs(np.mean(w["w"] != 0) - 0.05) < 0.01
    np.testing.assert_array_equal(make_reservoir(config)["w"], w["w"])  # regenerated from the seed


def test_cycle_reservoir_is_one_ring_at_the_spectral_radius():
    """Rodan and Tino's simple cycle: unit i feeds unit i + 1 only, every input weight one magnitude,
    the signs drawn from the seed."""
    config = ESNConfig(input_size=2, units=50, spectral_radius=0.8, input_scaling=0.3, seed=1, topology="cycle")
    w = make_reservoir(config)
    ring = np.roll(np.eye(50), 1, axis=0) * np.float32(0.8)  # ring[i + 1, i]: unit i feeds unit i + 1
    np.testing.assert_array_equal(w["w"], ring.astype(np.float32))
    assert abs(np.max(np.abs(np.linalg.eigvals(w["w"].astype(np.float64)))) - 0.8) < 1e-6
    np.testing.assert_array_equal(np.abs(w["w_in"]), np.float32(0.3))
    assert 30 < np.sum(w["w_in"] > 0) < 70  # random signs
    np.testing.assert_array_equal(make_reservoir(config)["w_in"], w["w_in"])
    assert ring_weight(config, w["w"]) == np.float32(0.8)
    edited = {**w, "w": w["w"].copy()}
    edited["w"][3, 7] = 0.1  # no longer one ring: refused, since its targets would step the ring
    with pytest.raises(ArtifactError, match="1 of these differ from the ring of weight 0.8"):
        ESNCell.from_weights(config, {**edited, "readout.weight": np.zeros((2, 52), np.float32),
                                      "readout.bias": np.zeros(2, np.float32)})
    with pytest.raises(ConfigError, match="density 0.2 sets a random reservoir's sparsity"):
        ESNConfig(density=0.2)  # refused, not ignored
    assert ESNConfig(topology="random").density == 0.1
    assert not np.array_equal(make_reservoir(ESNConfig(input_size=2, units=50, seed=2, topology="cycle"))["w_in"] / 0.5,
                              w["w_in"] / 0.3)
