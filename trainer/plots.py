"""PNG plots of an evaluated file: the series with NAB's labelled windows, the anomaly score with
the corpus threshold, and the detections. matplotlib (host extra), Agg backend, no display."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_nab_file(out: str | Path, title: str, timestamps: np.ndarray, values: np.ndarray, scores: np.ndarray,
                  windows: list[tuple[np.datetime64, np.datetime64]], threshold: float, probation: int) -> Path:
    """timestamps datetime64[n], values float[n], scores float[n]; writes `out` and returns it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = timestamps.astype("datetime64[s]").astype(object)
    hit = (scores >= threshold) & (np.arange(len(scores)) >= probation)
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(11, 4.6), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    for a in (ax, bx):
        a.axvspan(t[0], t[min(probation, len(t) - 1)], color="0.85", lw=0,
                  label="probationary (training)" if a is ax else None)
        for k, (lo, hi) in enumerate(windows):
            a.axvspan(lo.astype(object), hi.astype(object), color="tab:orange", alpha=0.25, lw=0,
                      label="labelled window" if a is ax and k == 0 else None)
    ax.plot(t, values, lw=0.7, color="tab:blue", label="value")
    ax.plot(np.asarray(t)[hit], values[hit], "v", color="tab:red", ms=7, label="detection")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=7, ncol=4)
    bx.plot(t, scores, lw=0.7, color="tab:purple", label="anomaly score")
    bx.axhline(threshold, color="tab:red", ls="--", lw=0.8, label=f"threshold {threshold:.3f}")
    bx.set_ylim(-0.02, 1.02)
    bx.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
