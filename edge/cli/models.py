"""`train`, `info`, `detect` and `evaluate`: models and their scores."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import MissingDependencyError, RnnEdgeError
from .common import HOST_INSTALL, _host, _iso, _read, _read_options


def _train_config(args, d: int):
    from trainer.config import GRUTrainConfig, PruneConfig, TrainConfig

    from ..scoring import Adaptive
    from ..specs import ESNConfig, GRUConfig, LSMConfig
    density = {} if args.density is None else {"density": args.density}  # else the config's default
    if args.kind == "gru":
        model = GRUConfig(input_size=d, hidden=args.hidden, layers=args.layers)
    elif args.kind == "lsm":
        model = LSMConfig(input_size=d, units=500 if args.units is None else args.units, **density,
                          weights=args.synapses, tau_mem=args.tau_mem, tau_trace=args.tau_trace,
                          input_gain=args.input_gain, recurrent_gain=args.recurrent_gain, seed=args.seed)
    else:
        model = ESNConfig(input_size=d, units=200 if args.units is None else args.units,
                          spectral_radius=args.spectral_radius, leak=args.leak, input_scaling=args.input_scaling,
                          **density, bias_scaling=args.bias_scaling, seed=args.seed, topology=args.topology)
    cfg = TrainConfig(model=model,
                      gru=GRUTrainConfig(epochs=args.epochs, lr=args.lr, window=args.window, patience=args.patience,
                                          device=args.device),
                      prune=PruneConfig(sparsity=args.prune, units=args.prune_units, steps=args.prune_steps,
                                        finetune_epochs=args.finetune_epochs),
                      int8=args.int8, int8_headroom=args.int8_headroom, seed=args.seed,
                      val_fraction=args.val_fraction, washout=args.washout,
                      calibrate_on=args.calibrate_on, distance=args.distance,
                      false_alarm_rate=args.false_alarm_rate, alert_on=args.alert_on,
                      adaptive_threshold=args.adaptive_threshold, raise_after=args.raise_after,
                      clear_after=args.clear_after, cooldown=args.cooldown,
                      adaptive=Adaptive(novelty_margin=args.novelty_margin,
                                        novelty_refractory=args.novelty_refractory,
                                        novelty_z=args.novelty_z, fatigue=args.fatigue,
                                        fatigue_z=args.fatigue_z, fatigue_horizon=args.fatigue_horizon,
                                        surprise_cap=args.surprise_cap, clip=args.stat_clip),
                      profile_weight=args.profile_weight, context_margin=args.context_margin)
    return cfg


def _need_torch(kind: str) -> None:
    if kind == "gru":
        try:
            import torch  # noqa: F401
            import tqdm  # noqa: F401
        except ImportError as e:
            raise MissingDependencyError(f"training a GRU needs {e.name}; install the host extras: "
                                         f"{HOST_INSTALL}") from None


def cmd_train(args) -> int:
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise RnnEdgeError(f"{out} exists and is not empty; pass --force to overwrite it")
    _need_torch(args.kind)
    from trainer.pipeline import train

    series = _read(args)
    if args.rows is not None:
        if args.rows < 1:
            raise RnnEdgeError(f"--rows must be positive, got {args.rows}")
        series = series.head(args.rows)
    cfg = _train_config(args, series.values.shape[1])
    path = train(series, cfg, out)
    from ..artifact import load_artifact
    from ..report import describe
    print(describe(load_artifact(path)))
    return 0


def cmd_info(args) -> int:
    from ..artifact import load_artifact
    from ..report import describe
    art = load_artifact(args.model)
    print(json.dumps(art.manifest, indent=2) if args.json else describe(art))
    return 0


def cmd_detect(args) -> int:
    import numpy as np

    from ..alerts import RAISED
    from ..artifact import load_artifact
    from ..detector import Detector
    art = load_artifact(args.model)
    series = _read(args)
    if series.columns != art.features:
        raise RnnEdgeError(f"{args.data}: columns {series.columns} do not match the model's features "
                           f"{art.features}; pick them with --columns")
    if args.target or args.accelerator == "gpu":
        from ..serve import load
        s = load(art.path, target=args.target, accelerator=args.accelerator)
        det, served = s.detector, s.target + (" on the GPU" if args.accelerator == "gpu" else "")
    else:
        det = Detector(art, args.precision)
        served = det.cell.__class__.__name__
    out = det.run(series.values, series.timestamps)
    raised = 0
    print(f"model {art.model_id} ({art.config.kind}, {served}), "
          f"alerts on the {art.alerts.source} score >= {art.alerts.threshold:.6g}, {len(series.values)} rows, "
          f"alerts from row {args.from_row}")
    for t in np.flatnonzero(out["events"] != 0):
        if t < args.from_row:
            continue
        event = "raised" if out["events"][t] == RAISED else "cleared"
        raised += event == "raised"
        vals = ", ".join(f"{c}={v:.6g}" for c, v in zip(series.columns, series.values[t]))
        print(f"{_iso(series.timestamps[t])}  row {t:>6}  {event:<7}  score {out['score'][t]:.6f}  "
              f"adaptive {out['adaptive'][t]:.3f}  {vals}")
    print(f"{raised} alert(s) raised")
    if args.scores:
        with open(args.scores, "w") as f:
            f.write(",".join(["timestamp", *series.columns, "score", "adaptive", "event"]) + "\n")
            for t in range(len(series.values)):
                vals = ",".join(f"{v:.9g}" for v in series.values[t])
                f.write(f"{_iso(series.timestamps[t])},{vals},{out['score'][t]:.9f},{out['adaptive'][t]:.9f},"
                        f"{int(out['events'][t])}\n")
    return 0


def cmd_evaluate_csv(args) -> int:
    from ..report import text_table
    _need_torch(args.kind)
    if args.backend != "numpy":
        _host(f"evaluate --backend {args.backend}")
    from trainer.evaluate import evaluate_csv
    per, pooled = evaluate_csv(args.files, args.label_column, _train_config(args, 1),  # input size: per file
                               train_rows=args.train_rows, out=args.out, backend=args.backend,
                               **_read_options(args))
    if args.json:
        print(json.dumps({"files": {f: c.metrics() for f, c in per.items()}, "pooled": pooled.metrics()}, indent=2))
        return 0
    rows = [("file", "precision", "recall", "F1", "false alarms", "events", "detected", "mean delay")]
    for name, c in [*per.items(), ("pooled", pooled)]:
        m = c.metrics()
        rows.append((name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}",
                     f"{m['false_alarm_rate']:.4f}", str(c.events), str(c.detected),
                     f"{m['mean_delay_rows']:.1f} rows" if c.detected else "-"))
    print(text_table(rows))
    return 0


def cmd_evaluate_nab(args) -> int:
    from ..report import text_table
    _need_torch(args.kind)
    if args.backend != "numpy":
        _host(f"evaluate --backend {args.backend}")
    from trainer.evaluate import evaluate_nab
    only = [f.strip() for f in args.files.split(",")] if args.files else None
    rep = evaluate_nab(args.data, _train_config(args, 1), args.out, backend=args.backend, only=only,
                       keep_models=args.keep_models, plots=[p.strip() for p in args.plot.split(",")] if args.plot else [])
    if args.per_file:
        rows = [("file", "rows", "probation", "windows", "score", "TP", "FP", "FN")]
        rows += [(r["file"], str(r["rows"]), str(r["probation"]), str(r["windows"]), f"{r['score']:.3f}",
                  str(r["tp"]), str(r["fp"]), str(r["fn"])) for r in rep.files]
        print(text_table(rows))
        print()
    rows = [("profile", "threshold", "raw", "NAB score", "alerts as deployed")]
    rows += [(p, f"{rep.thresholds[p]:.6f}", f"{rep.raw[p]:.3f}", f"{rep.normalised[p]:.2f}", f"{rep.alerts[p]:.2f}")
             for p in rep.raw]
    print(f"{rep.detector}: {len(rep.files)} files in {rep.seconds:.1f} s; results in {args.out}/{rep.detector}/")
    print(text_table(rows))
    print("NAB score: the onset score, at the threshold NAB's protocol sweeps per profile over the corpus; "
          "alerts as deployed: the raise events of the model's own alert machine as the detections")
    return 0
