"""The human-readable description of a model that `rnnedge info` and `rnnedge train` print."""

from __future__ import annotations

import numpy as np

from .artifact import Artifact, quantized_names, weight_shapes
from .scoring import Adaptive
from .seasonal import layout


def text_table(rows: list[tuple[str, ...]]) -> str:
    """Rows of strings (the first is the header) as left-aligned columns two spaces apart."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _kib(n: float) -> str:
    return f"{n / 1024:.1f} KiB"


def describe(art: Artifact) -> str:
    m = art.manifest
    c = art.config
    shapes = weight_shapes(c)
    params = sum(int(np.prod(s)) for s in shapes.values())
    nonzero = sum(int(np.count_nonzero(art.weights[n])) for n in shapes)
    q_params = sum(int(np.prod(shapes[n])) for n in quantized_names(c))
    lines = [f"model {art.model_id}  {art.path}"]
    if c.kind == "gru":
        lines.append(f"  kind        gru: input {c.input_size}, hidden {c.hidden} x {c.layers} layer(s), "
                     f"state {c.state_size}")
    elif c.kind == "lsm":
        lines.append(f"  kind        lsm (spiking): input {c.input_size} (send-on-delta, up/down), {c.units} LIF "
                     f"neurons, {c.weights} synapses at density {c.density}, threshold {c.threshold}, "
                     f"tau_mem {c.tau_mem}, tau_trace {c.tau_trace} samples, seed {c.seed}")
    else:
        wiring = "a cycle" if c.topology == "cycle" else f"random at density {c.density}"
        lines.append(f"  kind        esn: input {c.input_size}, {c.units} units wired {wiring}, spectral radius "
                     f"{c.spectral_radius}, leak {c.leak}, input scaling {c.input_scaling}, bias scaling "
                     f"{c.bias_scaling}, seed {c.seed}")
    lines.append(f"  features    {', '.join(art.features)}")
    lines.append(f"  serving     {m['precision']} (warm-up {m.get('warmup', 0)} samples)")
    files = ", ".join(f"{name} {_kib(f['bytes'])}" for name, f in m["files"].items())
    if c.kind == "lsm":
        stored = sum(art.weights[n].nbytes for n in shapes)
        lines.append(f"  size        {params} parameters ({nonzero} non-zero): {_kib(stored)} as stored "
                     f"(int8 synapses); files {files}")
    else:
        lines.append(f"  size        {params} parameters ({nonzero} non-zero): float32 {_kib(4 * params)}, "
                     f"int8 {_kib(q_params + 4 * (params - q_params))}; files {files}")
    metrics = m.get("metrics", {})
    if metrics:
        err = [f"persistence {metrics['persistence_rmse']:.4f}", f"float {metrics['float_rmse']:.4f}"]
        if "int8_rmse" in metrics:
            err.append(f"int8 {metrics['int8_rmse']:.4f}")
        lines.append(f"  forecast    held-out RMSE (normalised): {', '.join(err)} "
                     f"on {metrics['heldout_rows']} rows; fit on {metrics['fit_rows']}")
        for kind in ("esn", "lsm"):
            if kind in metrics:
                r = metrics[kind]
                toward = f" toward the {'last value' if r['toward'] == 'persistence' else 'mean'}" \
                    if "toward" in r else ""  # older artifacts shrank toward the mean only
                on = " on spike traces" if kind == "lsm" else ""
                rate = f"; {100 * r['rate']:.1f}% of neurons spike per step" if kind == "lsm" else ""
                lines.append(f"  readout     ridge {r['ridge']:.0e}{toward}{on}, chosen on the held-out tail{rate}")
        if "gru" in metrics:
            g = metrics["gru"]
            on = f" on {g['device']}" if "device" in g else ""  # older artifacts do not record it
            lines.append(f"  training    {g['epochs']} epochs{on}, best {g['best_epoch']}, "
                         f"{metrics['train_seconds']:.1f} s in all")
    pr = m.get("pruning")
    if pr:
        per = ", ".join(f"{k} {v:.1%}" for k, v in pr["per_matrix"].items())
        lines.append(f"  pruning     sparsity {pr['overall']:.1%} (target {pr['target_sparsity']:.0%}), "
                     f"{pr['units_removed']} unit(s) removed; RMSE {pr['rmse_before']:.4f} -> {pr['rmse_after']:.4f}")
        lines.append(f"              {per}")
    q = m.get("quantization")
    if q:
        e = q["int8_vs_float"]
        lines.append(f"  int8        forecast vs float: max |diff| {e['max_abs']:.4f}, RMSE {e['rmse']:.4f} "
                     "(normalised units)")
        ranges = ", ".join(f"{k} [{lo:.2f}, {hi:.2f}]" for k, (lo, hi) in q["activations"].items())
        lines.append(f"              ranges {ranges}")
    a = art.alerts
    lines.append(f"  alerts      {a.source} score >= {a.threshold:.6g} for {a.raise_after} raises, < {a.clear_threshold:.6g} "
                 f"for {a.clear_after} clears, cooldown {a.cooldown}")
    s = art.scorer
    how = "the largest" if s.norm == "max" else "the RMS"
    lines.append(f"  scorer      {how} of the channels' standardised residuals; "
                 f"distance at p{100 * s.knots_p[-1]:.1f} = {s.knots_d[-1]:.3f}, "
                 f"exponential tail mean excess {s.tail_beta:.3f}")
    ad = Adaptive.from_dict(m.get("adaptive") or {})
    lines.append(f"  adaptive    z of the surprise over ~{ad.horizon:g} samples (cap {ad.surprise_cap:g}, "
                 f"clip {f'{ad.clip:g} std' if ad.clip else 'off'}), fatigue {ad.fatigue:g} "
                 f"(onsets at z {ad.fatigue_z:g}, ~{ad.fatigue_horizon:g} samples), novelty {ad.novelty:g} "
                 f"(z {ad.novelty_z:g}, refractory {ad.novelty_refractory:g})")
    dp = m.get("daily_profile")
    if dp:
        lines.append(f"  profile     {layout(dp['period_s'], dp['bins'], dp['bin_s'])} per stream, "
                     f"weight {dp['weight']:g}, alpha {dp['alpha']:g}, "
                     f"learns while the forecaster's z is under {dp['gate']:g}")
    elif "daily_profile" in metrics:
        lines.append(f"  profile     {metrics['daily_profile']}")
    if "context_novelty" in metrics:
        lines.append(f"  context     {metrics['context_novelty']}")
    pv = m.get("provenance", {})
    if pv:
        d = pv["data"]
        vers = ", ".join(f"{k} {v}" for k, v in pv["versions"].items())
        lines.append(f"  provenance  {d['file']} ({d['rows']} rows, sha256 {d['sha256'][:12]}), seed {pv['seed']}, "
                     f"{pv['created']}; {vers}")
    return "\n".join(lines)
