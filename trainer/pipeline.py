"""`rnnedge train` end to end: read, split, normalise, fit, prune, quantize, calibrate, save.

Split: the first rows fit the model; the held-out tail (val_fraction of the rows) chooses the ESN
ridge or stops GRU training and measures every forecast error reported. Normalisation is fitted
on the fit rows only. The scorer is calibrated on the serving cell's residuals over every row
after the washout (`calibrate_on="all"`) or over the held-out tail only ("heldout").
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import edge
from edge.alerts import AlertConfig
from edge.artifact import Normalizer, build_cell, save_artifact, unit_scale
from edge.cell import Cell, run
from edge.data import Series
from edge.errors import DataError
from edge.scoring import Scorer
from edge.context import ContextNovelty
from edge.seasonal import DailyProfile
from edge.specs import GRUConfig, config_to_dict

from .config import TrainConfig
from .esn import fit_esn
from .lsm import fit_lsm
from .quantize import calibrate, quantize_weights

MIN_ROWS = 100


def split_rows(n: int, val_fraction: float) -> int:
    """The number of fit rows; the rest is the held-out tail."""
    if n < MIN_ROWS:
        raise DataError(f"training needs at least {MIN_ROWS} rows, got {n}")
    return n - max(20, int(val_fraction * n))


def fit_normalizer(values: np.ndarray) -> Normalizer:
    return Normalizer(values.mean(axis=0).astype(np.float32), unit_scale(values).astype(np.float32))


def forecasts(cell: Cell, z: np.ndarray) -> np.ndarray:
    """y[t] forecasts z[t + 1], stepping z[:-1] with the state fed back from zero: float32[n - 1, D]."""
    return run(cell, z[:-1])[0]


def heldout_rmse(cell: Cell, z: np.ndarray, n_fit: int) -> float:
    """One-step forecast RMSE on the held-out rows z[n_fit:]."""
    return rmse(z[n_fit:] - forecasts(cell, z)[n_fit - 1:])


def rmse(e: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(e, dtype=np.float64))))


VERIFY_ROWS = 3000


def train(series: Series, cfg: TrainConfig, out: str | Path) -> Path:
    """Train on `series` and write the artifact directory `out`; returns its path."""
    t0 = time.perf_counter()
    values = np.ascontiguousarray(series.values, np.float32)  # the same numbers from any layout of the rows
    n = len(values)
    n_fit = split_rows(n, cfg.val_fraction)
    d = values.shape[1]
    model_cfg = cfg.model
    if model_cfg.input_size != d:
        model_cfg = replace(model_cfg, input_size=d)
    norm = fit_normalizer(values[:n_fit])
    z = norm.normalize(values)
    metrics: dict = {"rows": n, "fit_rows": n_fit, "heldout_rows": n - n_fit,
                     "persistence_rmse": rmse(z[n_fit:] - z[n_fit - 1:-1])}
    pruning = None
    t_fit = time.perf_counter()
    if model_cfg.kind == "esn":
        weights, report = fit_esn(model_cfg, z, n_fit, cfg.washout, int8=cfg.int8, headroom=cfg.int8_headroom)
        metrics["esn"] = report
    elif model_cfg.kind == "lsm":
        if cfg.int8:
            raise DataError("a spiking reservoir's synapses are int8 or ternary by construction and its "
                            "activations are spikes: train it without --int8")
        weights, metrics["lsm"] = fit_lsm(model_cfg, z, n_fit, cfg.washout)
    else:
        weights, model_cfg, metrics["gru"], pruning = _train_gru(model_cfg, z, n_fit, cfg)
    metrics["fit_seconds"] = time.perf_counter() - t_fit  # training (and pruning), nothing else
    float_cell = build_cell(model_cfg, weights)
    y_float = forecasts(float_cell, z)
    metrics["float_rmse"] = rmse(z[n_fit:] - y_float[n_fit - 1:])
    if model_cfg.kind == "lsm":  # no int8 targets to calibrate for: its synapses are int8 already
        ranges, calibration = None, {}
    else:
        ranges, calibration = calibrate(float_cell, z[:n_fit], headroom=cfg.int8_headroom)
    calibration["stream"] = values[-VERIFY_ROWS:]  # raw rows `rnnedge verify` replays by default

    quantization = None
    y_serving = y_float
    if cfg.int8:
        weights.update(quantize_weights(model_cfg, weights))
        int8_cell = build_cell(model_cfg, weights, "int8", ranges)
        y_serving = y_int8 = forecasts(int8_cell, z)
        metrics["int8_rmse"] = rmse(z[n_fit:] - y_int8[n_fit - 1:])
        gap = (y_int8 - y_float)[n_fit - 1:]
        quantization = {"scheme": "int8 symmetric; weights per output channel, activations per tensor",
                        "activations": ranges, "headroom": cfg.int8_headroom,
                        "int8_vs_float": {"max_abs": float(np.abs(gap).max()), "rmse": rmse(gap)}}
    first = n_fit if cfg.calibrate_on == "heldout" else min(cfg.washout + 1, n_fit)  # first residual row
    scorer = Scorer.fit(z[first:] - y_serving[first - 1:], norm=cfg.distance)
    metrics["calibration_rows"] = n - first
    profile, why = None, "--profile-weight 0"
    if cfg.profile_weight > 0:
        profile, why = DailyProfile.fit(series.timestamps, values, weight=cfg.profile_weight,
                                         norm=cfg.distance)
    metrics["daily_profile"] = profile.describe() if profile else f"none: {why}"
    context, why = None, "--context-margin -1"
    if cfg.context_margin >= 0:
        context, why = ContextNovelty.fit(values, margin=cfg.context_margin)
    metrics["context_novelty"] = context.describe() if context else f"none: {why}"
    if cfg.alert_on == "adaptive":
        alerts = AlertConfig.on_adaptive(cfg.adaptive_threshold, raise_after=cfg.raise_after or 1,
                                         clear_after=cfg.clear_after, cooldown=cfg.cooldown)
    else:
        alerts = AlertConfig.for_false_alarm_rate(cfg.false_alarm_rate, raise_after=cfg.raise_after or 3,
                                                  clear_after=cfg.clear_after, cooldown=cfg.cooldown)
    metrics["train_seconds"] = time.perf_counter() - t0
    manifest = {
        "model": config_to_dict(model_cfg),
        "features": series.columns,
        "normalization": norm.to_dict(),
        "precision": "int8" if cfg.int8 else "float32",
        "warmup": cfg.washout,
        "quantization": quantization,
        "pruning": pruning,
        "scorer": scorer.to_dict(),
        "adaptive": cfg.adaptive.to_dict(),
        "daily_profile": profile.to_dict() if profile else None,
        "context_novelty": context.to_dict() if context else None,
        "extent": {"min": values.min(axis=0).tolist(), "max": values.max(axis=0).tolist()},
        "alerts": alerts.to_dict(),
        "metrics": metrics,
        "provenance": _provenance(series, cfg),
    }
    return save_artifact(out, manifest, weights, calibration)


def _train_gru(model_cfg: GRUConfig, z: np.ndarray, n_fit: int, cfg: TrainConfig):
    from .gru import TorchGRU, fit_gru, seeded, train_device
    from .prune import prune_gru

    with seeded(cfg.seed, train_device(cfg.gru.device)):
        model = TorchGRU(model_cfg)
        t0 = time.perf_counter()
        report = fit_gru(model, z, n_fit, cfg.gru)
        report["seconds"] = time.perf_counter() - t0
        pruning = None
        if cfg.prune.active:
            dense_rmse = heldout_rmse(build_cell(model.config, model.weights()), z, n_fit)
            model, prune_report = prune_gru(model, z, n_fit, cfg.gru, cfg.prune)
            pruning = {"target_sparsity": cfg.prune.sparsity, "target_units": cfg.prune.units,
                       **prune_report, "rmse_before": dense_rmse,
                       "rmse_after": heldout_rmse(build_cell(model.config, model.weights()), z, n_fit)}
    return model.weights(), model.config, report, pruning


def _provenance(series: Series, cfg: TrainConfig) -> dict:
    versions = {"rnnedge": edge.__version__, "numpy": np.__version__, "python": platform.python_version()}
    if cfg.model.kind == "gru":
        import torch
        versions["torch"] = torch.__version__
    return {"data": {"file": Path(series.path).name, "sha256": series.sha256, "rows": len(series.values),
                     "columns": series.columns},
            "seed": cfg.seed, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": versions,
            "train_config": {"val_fraction": cfg.val_fraction, "washout": cfg.washout, "int8": cfg.int8,
                             "calibrate_on": cfg.calibrate_on, "distance": cfg.distance,
                             "profile_weight": cfg.profile_weight, "context_margin": cfg.context_margin,
                             "false_alarm_rate": cfg.false_alarm_rate,
                             "gru": asdict(cfg.gru) if cfg.model.kind == "gru" else None,
                             "prune": asdict(cfg.prune) if cfg.prune.active else None}}
