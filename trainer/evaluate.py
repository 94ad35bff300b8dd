"""`rnnedge evaluate`: the Numenta Anomaly Benchmark run strictly online (`evaluate_nab`), and
labelled multivariate CSV files (`evaluate_csv`, at the end of this module).

For each of NAB's files: train and calibrate on the probationary period only (the first
min(floor(0.15 n), 750) records; nothing after it is read for training), then step every record in
order through the same `Detector` the runtime serves (normalise with the training statistics,
score the residual of the last forecast, alert machine, step), one at a time, never looking ahead.
The per-record anomaly_score is the detector's `first` output: its drift-adaptive score (the
calibrated surprise -log10(1 - F(d)) standardised by the stream's own running statistics, see
`edge.scoring.Adaptive`) kept where it starts an episode. A record the detector cannot take
(NaN, infinity) stops the evaluation there with its file and row named.

Writes NAB's result layout, which NAB's own scorer also reads:
    <out>/<detector>/<category>/<detector>_<name>.csv   timestamp,value,anomaly_score,label
    <out>/<detector>_scores.json                         thresholds, raw and normalised scores per profile
    <out>/<detector>_files.csv                           per file: rows, probation, windows, score, counts
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge.alerts import RAISED
from edge.artifact import load_artifact
from edge.data import Series, read_csv
from edge.detector import Detector
from edge.errors import DataError

from . import nab
from .config import TrainConfig
from .pipeline import train
from .progress import progress

BACKENDS = ("numpy", "onnx", "tflite", "tflite-micro")  # tflite-micro: the TFLite target in TFLite Micro


@dataclass
class NabReport:
    detector: str
    seconds: float
    thresholds: dict = field(default_factory=dict)   # profile -> threshold
    raw: dict = field(default_factory=dict)          # profile -> raw score
    normalised: dict = field(default_factory=dict)   # profile -> 0..100
    alerts: dict = field(default_factory=dict)       # profile -> 0..100 of the raised alerts as detections
    files: list = field(default_factory=list)        # per-file rows (standard profile)


def detector_name(cfg: TrainConfig, backend: str) -> str:
    name = f"rnnedge_{cfg.model.kind}"
    if cfg.prune.active:
        name += "_pruned"
    if cfg.int8:
        name += "_int8"
    return name if backend == "numpy" else f"{name}_{'tflm' if backend == 'tflite-micro' else backend}"


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise DataError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")


def _served(art, backend: str) -> Detector:
    if backend == "numpy":
        return Detector(art)
    from converters.convert import emit
    from edge.targets import open_target
    name = ("onnx" if backend == "onnx" else "tflite") + ("-int8" if art.precision == "int8" else "")
    path, _ = emit(art, name, art.path)
    return Detector(art, cell=open_target(path, name, art.config,
                                          runtime="tflite-micro" if backend == "tflite-micro" else None))


def score_file(series: Series, cfg: TrainConfig, model_dir: Path, backend: str = "numpy"
               ) -> tuple[np.ndarray, np.ndarray]:
    """Train on the probationary records of `series` only, then score every record online. Returns
    the anomaly score NAB sweeps (the adaptive score's onsets, `first`) and the alert machine's
    raise events as 0/1 (what a deployment would have been told, at the model's own threshold)."""
    n = len(series.values)
    p = nab.probation(n)
    head = series.head(p)
    if not np.isfinite(head.values).all():
        row = int(np.argwhere(~np.isfinite(head.values))[0, 0])
        raise DataError(f"{series.path}: record {row} of the probationary period is not a number")
    art = load_artifact(train(head, cfg, model_dir))
    bad = np.flatnonzero(~np.isfinite(series.values).all(axis=1))
    if bad.size:  # the detector refuses the first non-finite record it would step
        raise DataError(f"{series.path}: record {int(bad[0])} is not a number; the online detector stops there "
                        f"(trained on records 0..{p - 1} only)")
    run = _served(art, backend).run(series.values, series.timestamps)
    return run["first"], (run["events"] == RAISED).astype(np.float64)


def evaluate_nab(root: str | Path, cfg: TrainConfig, out: str | Path, *, backend: str = "numpy",
                 only: list[str] | None = None, keep_models: bool = False, plots: list[str] = ()) -> NabReport:
    """Every file of the NAB folder `root` (or those whose name contains one of `only`); a PNG
    under <out>/plots/ for each file whose name contains one of `plots`."""
    _check_backend(backend)
    t0 = time.perf_counter()
    corpus = nab.Corpus.load(root)
    names = [n for n in corpus.names if not only or any(o in n for o in only)]
    subset = len(names) != len(corpus.names)
    if not names:
        raise DataError(f"no NAB file matches {only}")
    if only:
        corpus = corpus.subset(names)
    det = detector_name(cfg, backend)
    out = Path(out)
    results: dict[str, np.ndarray] = {}
    raised: dict[str, np.ndarray] = {}
    models = out / "models" if keep_models else Path(tempfile.mkdtemp(prefix="rnnedge-nab-"))
    try:
        for name in progress(names, "NAB files"):
            series = read_csv(corpus.root / "data" / name, on_unordered="keep", on_missing="keep")
            results[name], raised[name] = score_file(series, cfg, models / name.replace(".csv", ""), backend)
            _write_result(out / det / name.split("/")[0] / f"{det}_{name.split('/')[1]}", series, results[name],
                          corpus.labels[name])
    finally:
        if not keep_models:
            import shutil
            shutil.rmtree(models, ignore_errors=True)
    report = NabReport(det, 0.0)
    for profile in nab.PROFILES:
        threshold, raw = nab.sweep(corpus, results, profile)
        report.thresholds[profile], report.raw[profile] = threshold, raw
        report.normalised[profile] = nab.normalise(corpus, raw, profile)
        report.alerts[profile] = nab.normalise(corpus, nab.corpus_score(corpus, raised, profile, 0.5)[0], profile)
    _, rows = nab.corpus_score(corpus, results, "standard", report.thresholds["standard"])
    report.files = [{"file": r.name, "rows": len(corpus.labels[r.name].weight),
                     "probation": nab.probation(len(corpus.labels[r.name].weight)),
                     "windows": corpus.labels[r.name].windows, "score": r.score, "tp": r.tp, "fp": r.fp,
                     "fn": r.fn} for r in rows]
    windows = json.loads((corpus.root / "combined_windows.json").read_text())
    for name in (n for n in names if any(p in n for p in plots)):
        from .plots import plot_nab_file
        values = read_csv(corpus.root / "data" / name, on_unordered="keep").values[:, 0]
        wins = [tuple(np.datetime64(w.replace(" ", "T"), "s") for w in pair) for pair in windows[name]]
        plot_nab_file(out / "plots" / f"{det}_{name.replace('/', '_').replace('.csv', '.png')}",
                      f"{name}: {det}, strictly online (standard-profile threshold over the corpus)",
                      corpus.timestamps[name], values, results[name], wins, report.thresholds["standard"],
                      nab.probation(len(values)))
    report.seconds = time.perf_counter() - t0
    _write_summary(out, report, cfg, backend, subset)
    return report


def _write_result(path: Path, series: Series, scores: np.ndarray, lab: nab.FileLabels) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    from datetime import datetime, timezone
    with open(path, "w") as f:
        f.write("timestamp,value,anomaly_score,label\n")
        for t, v, s, w in zip(series.timestamps, series.values[:, 0], scores, lab.window):
            ts = datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            f.write(f"{ts},{v:.9g},{s:.17g},{int(w >= 0)}\n")  # full precision: the threshold is one of them


def _write_summary(out: Path, report: NabReport, cfg: TrainConfig, backend: str, subset: bool) -> None:
    from dataclasses import asdict

    from edge.specs import config_to_dict
    doc = {"detector": report.detector, "backend": backend, "subset": subset, "seconds": report.seconds,
           "model": config_to_dict(cfg.model), "int8": cfg.int8, "prune": asdict(cfg.prune),
           "thresholds": report.thresholds, "raw": report.raw, "normalised": report.normalised,
           "alerts_as_deployed": report.alerts}
    (out / f"{report.detector}_scores.json").write_text(json.dumps(doc, indent=2) + "\n")
    with open(out / f"{report.detector}_files.csv", "w") as f:
        f.write("file,rows,probation,windows,score,tp,fp,fn\n")
        for r in report.files:
            f.write(f"{r['file']},{r['rows']},{r['probation']},{r['windows']},{r['score']:.6f},"
                    f"{r['tp']},{r['fp']},{r['fn']}\n")


# --- labelled multivariate CSVs -------------------------------------------------------------------
@dataclass(frozen=True)
class Counts:
    """Point-wise and event-wise tallies of one file (or several, added up)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    events: int = 0
    detected: int = 0
    delay_rows: int = 0     # summed over detected events: rows from an event's start to its first alert row

    def __add__(self, o: "Counts") -> "Counts":
        return Counts(*(a + b for a, b in zip(self.__dict__.values(), o.__dict__.values())))

    def metrics(self) -> dict:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
                "false_alarm_rate": self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0,
                "event_recall": self.detected / self.events if self.events else 0.0,
                "mean_delay_rows": self.delay_rows / self.detected if self.detected else float("nan"),
                **self.__dict__}


def count(alert: np.ndarray, label: np.ndarray) -> Counts:
    """Point-wise counts without point adjustment; an event (a run of label rows) is detected when
    an alert is active on one of its rows, with the delay to the first such row."""
    alert, label = np.asarray(alert, bool), np.asarray(label, bool)
    edges = np.flatnonzero(np.diff(np.r_[0, label.astype(np.int8), 0]))
    events = detected = delay = 0
    for start, stop in zip(edges[::2], edges[1::2]):
        events += 1
        hits = np.flatnonzero(alert[start:stop])
        if hits.size:
            detected += 1
            delay += int(hits[0])
    return Counts(int((alert & label).sum()), int((alert & ~label).sum()), int((~alert & label).sum()),
                  int((~alert & ~label).sum()), events, detected, delay)


def read_labelled(path: str | Path, label_column: str, **read) -> tuple[Series, np.ndarray]:
    """One file's value columns and its labels (bool), read in one pass so that a row dropped for a
    missing cell (`on_missing="drop"`) leaves both. `read`: `read_csv`'s options; its `columns`
    name the value columns only. A label other than 0 or 1 is refused with its row's timestamp."""
    cols = read.pop("columns", None)
    s = read_csv(path, columns=None if cols is None else [*cols, label_column], **read)
    if label_column not in s.columns:
        raise DataError(f"{path}: no column(s) [{label_column!r}]; columns are {[s.time_column, *s.columns]}")
    j = s.columns.index(label_column)
    label = s.values[:, j]
    bad = np.flatnonzero((label != 0) & (label != 1))
    if bad.size:
        raise DataError(f"{path}: column {label_column!r} holds {label[bad[0]]:g} at {_iso(s.timestamps[bad[0]])} "
                        f"({bad.size} such rows); labels must be 0 (normal) or 1 (anomalous)")
    if len(s.columns) == 1:
        raise DataError(f"{path}: no value columns besides the label column {label_column!r}")
    keep = [i for i in range(len(s.columns)) if i != j]
    return replace(s, values=s.values[:, keep], columns=[s.columns[i] for i in keep]), label == 1


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


def evaluate_csv(files: list[str | Path], label_column: str, cfg: TrainConfig, *, train_rows: int | None = None,
                 out: str | Path | None = None, base: str | Path | None = None, backend: str = "numpy",
                 **read) -> tuple[dict[str, Counts], Counts]:
    """Per file: train on the first `train_rows` rows (default: a fifth, at least 100), then score
    the rest online through the runtime's detector; alerts are the alert machine's active state.
    Each file's model takes that file's value columns (`cfg.model.input_size` is set per file).
    `backend` as `evaluate_nab`'s. `read`: `read_csv`'s options (`read_labelled`). With `out`,
    writes <out>/<file's path relative to `base` (default: the files' common folder)> with the
    file's timestamp column (ISO 8601), score, alert, label."""
    _check_backend(backend)
    per: dict[str, Counts] = {}
    base = Path(base) if base else Path(os.path.commonpath([Path(f).resolve().parent for f in files]))
    with tempfile.TemporaryDirectory(prefix="rnnedge-eval-") as tmp:
        for f in progress([Path(f) for f in files], "files"):
            series, labels = read_labelled(f, label_column, **read)
            n = len(series.values)
            k = train_rows if train_rows is not None else max(100, n // 5)
            if not 100 <= k < n:
                raise DataError(f"{f}: training on {k} of {n} rows leaves nothing to score or too little to learn")
            file_cfg = replace(cfg, model=replace(cfg.model, input_size=series.values.shape[1]))
            art = load_artifact(train(series.head(k), file_cfg, Path(tmp) / f"m{len(per)}"))
            run = _served(art, backend).run(series.values, series.timestamps)
            per[str(f)] = count(run["active"][k:], labels[k:])
            if out is not None:
                rel = f.resolve().relative_to(base.resolve())
                dest = Path(out) / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(dest, "w") as fh:
                    fh.write(f"{series.time_column},score,alert,label\n")
                    for t in range(k, n):
                        fh.write(f"{_iso(series.timestamps[t])},{run['score'][t]:.9f},{int(run['active'][t])},"
                                 f"{int(labels[t])}\n")
    pooled = sum(per.values(), Counts())
    return per, pooled
