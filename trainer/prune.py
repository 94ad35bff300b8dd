"""GRU pruning: structured removal of hidden units (H really shrinks), then gradual magnitude
pruning of every weight matrix to a target sparsity, with fine-tuning between steps.

Masks are held by hand (multiplied in after every optimizer step) rather than through
torch.nn.utils.prune: its forward-pre-hook reparametrisation does not reach nn.GRU's flattened
weight buffers reliably, and the masks here must survive into the exported numpy weights.
"""

from __future__ import annotations

import numpy as np
import torch

from edge.cell import run
from edge.gru import GRUCell
from edge.specs import GRUConfig

from .config import GRUTrainConfig, PruneConfig
from .gru import TorchGRU, fit_gru


def prunable(config: GRUConfig) -> list[str]:
    """Weight matrices pruned, in the reference's names (biases are never pruned)."""
    return [f"weight_{k}_l{layer}" for layer in range(config.layers) for k in ("ih", "hh")] + ["readout.weight"]


def _param_name(name: str) -> str:
    return name if name.startswith("readout") else f"gru.{name}"


def magnitude_masks(model: TorchGRU, sparsity: float) -> dict[str, torch.Tensor]:
    """Per matrix, zero exactly round(sparsity * size) of the smallest-magnitude weights."""
    params = dict(model.named_parameters())
    masks = {}
    for name in prunable(model.config):
        p = params[_param_name(name)].detach()
        k = int(round(sparsity * p.numel()))
        mask = torch.ones(p.numel(), dtype=p.dtype, device=p.device)
        mask[torch.argsort(p.abs().flatten(), stable=True)[:k]] = 0
        masks[_param_name(name)] = mask.reshape(p.shape)
    return masks


def sparsity_report(config: GRUConfig, weights: dict[str, np.ndarray]) -> dict:
    """Fraction of exact zeros per pruned matrix and over all of them."""
    per = {name: float(np.mean(weights[name] == 0)) for name in prunable(config)}
    zeros = sum(int(np.sum(weights[n] == 0)) for n in per)
    total = sum(weights[n].size for n in per)
    return {"overall": zeros / total, "per_matrix": per}


def prune_units(model: TorchGRU, z: np.ndarray, fraction: float) -> TorchGRU:
    """A narrower copy of `model` without the round(fraction * H) least important units per layer.

    A unit's importance is its mean |h| on z times the norm of its outgoing weights (recurrent,
    next layer or readout): what removing it takes away from everything downstream.
    """
    c = model.config
    h_size = c.hidden
    keep_n = max(1, h_size - int(round(fraction * h_size)))
    w = model.weights()
    _, _, states = run(GRUCell.from_weights(c, w), z, return_states=True)
    for layer in range(c.layers):
        nxt = f"weight_ih_l{layer + 1}" if layer + 1 < c.layers else "readout.weight"
        outgoing = np.concatenate([w[f"weight_hh_l{layer}"], w[nxt][:, :h_size]], axis=0)
        activity = np.abs(states[:, layer * h_size:(layer + 1) * h_size]).mean(axis=0)
        importance = activity * np.linalg.norm(outgoing, axis=0)
        keep = np.sort(np.argsort(-importance, kind="stable")[:keep_n])
        rows = np.concatenate([keep, h_size + keep, 2 * h_size + keep])
        for name in (f"weight_ih_l{layer}", f"bias_ih_l{layer}", f"bias_hh_l{layer}"):
            w[name] = w[name][rows]
        w[f"weight_hh_l{layer}"] = w[f"weight_hh_l{layer}"][rows][:, keep]
        w[nxt] = np.concatenate([w[nxt][:, keep], w[nxt][:, h_size:]], axis=1) if nxt == "readout.weight" \
            else w[nxt][:, keep]
    return TorchGRU.from_weights(GRUConfig(c.input_size, keep_n, c.layers), w)


def prune_gru(model: TorchGRU, z: np.ndarray, n_fit: int, train: GRUTrainConfig, cfg: PruneConfig) -> tuple[TorchGRU, dict]:
    """Structured, then gradual magnitude pruning with fine-tuning; returns the model and a report."""
    report: dict = {"units_removed": 0, "steps": []}
    if cfg.units > 0:
        before = model.config.hidden
        model = prune_units(model, z[:n_fit], cfg.units)
        report["units_removed"] = before - model.config.hidden
        fit_gru(model, z, n_fit, train, epochs=cfg.finetune_epochs, desc="fine-tune (units)")
    masks = None
    if cfg.sparsity > 0:
        params = dict(model.named_parameters())
        for i in range(1, cfg.steps + 1):
            target = cfg.sparsity * (1.0 - (1.0 - i / cfg.steps) ** 3)  # Zhu & Gupta's cubic schedule
            masks = magnitude_masks(model, target)
            with torch.no_grad():
                for name, mask in masks.items():
                    params[name].mul_(mask)
            fit = fit_gru(model, z, n_fit, train, epochs=cfg.finetune_epochs, masks=masks,
                          desc=f"prune {target:.0%}")
            report["steps"].append({"sparsity": target, "val_mse": fit["val_mse"]})
    report.update(sparsity_report(model.config, model.weights()))
    return model, report
