"""Parity of an emitted target with the numpy reference over a long closed-loop stream.

Both step the same raw stream through the same Detector (normalise, score, alert, step), each
feeding its own state back, so errors that accumulate through the recurrence show up as they
would on the device. Reported per target: the forecast error (max and p99, normalised units), the
state error in each quarter of the stream (drift: does it grow?), and how often the per-step
decisions agree: score above the threshold, and alert active.

Gates: float32 targets match the float reference to 1e-5, float16 to 1e-2; int8 targets are held
to their decisions: alert state and threshold crossings agree with the int8 reference on >= 99% of
steps. A tflite-int8 target (ESN or GRU) in LiteRT on the CPU computes its reference's numbers
exactly (its forecast error reads 0: the reference does XNNPACK's arithmetic), and so does it in
TFLite Micro, against the reference in gemmlowp's arithmetic (`ARITHMETIC`); but other kernels round
int8 in a fixed point of their own (ESP-NN, CMSIS-NN, perhaps another LiteRT release), and ONNX
Runtime does, so the gate asks for what every int8 toolchain must keep. `Parity.runtime`
names the interpreter that ran the target. The float16
gate is for float16 weights computed in float32 (the CPU interpreters); a GPU that also computes
in float16 (LiteRT's GPU accelerator, a cell with `arithmetic = "float16"`) runs a reduced-precision
model of its own and is held to the decisions gate, like int8. On the demo ESN (200 units) its
forecasts moved by up to 2.2e-2 and every decision agreed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edge.artifact import Artifact
from edge.detector import Detector
from edge.errors import DataError
from edge.report import text_table
from edge.targets import target

MIN_STEPS = 2000
ARITHMETIC = {"tflite-micro": "gemmlowp"}  # the int8 reference's arithmetic for a runtime (else xnnpack)
FORECAST_GATE = {"float32": 1e-5, "float16": 1e-2}
DECISION_GATE = 0.99


@dataclass(frozen=True)
class Parity:
    target: str
    precision: str
    reference: str
    steps: int
    forecast_max: float
    forecast_p99: float
    state_drift: list[float]     # max |state error| in each quarter of the stream
    threshold_agreement: float   # share of steps where (the score the alerts watch) >= threshold agrees
    alert_agreement: float       # share of steps where the alert is active in both or neither
    alerts_reference: int
    alerts_target: int
    gate: str
    passed: bool
    runtime: str = ""            # the interpreter that ran the target (onnxruntime, litert, tflite-micro)

    def to_dict(self) -> dict:
        return asdict(self)


def verify(art: Artifact, name: str, cell, values: np.ndarray, *, min_steps: int = MIN_STEPS) -> Parity:
    """Step `cell` (the target's interpreter) and the reference over raw values float[T, D]."""
    t = target(name)
    values = np.asarray(values, np.float32)
    if values.ndim != 2 or values.shape[1] != art.config.input_size:
        raise DataError(f"verification data must be float[T, {art.config.input_size}], got {list(values.shape)}")
    if len(values) < min_steps:
        raise DataError(f"verification needs at least {min_steps} rows, got {len(values)}")
    runtime = getattr(cell, "runtime", "")
    ref = Detector(art, cell=art.cell(t.reference_precision, ARITHMETIC.get(runtime, "xnnpack")))
    tgt = Detector(art, cell=cell)
    rs, ts = ref.init(1), tgt.init(1)
    n = len(values)
    err = np.empty(n)
    drift = np.empty(n)
    above = np.empty(n, bool)
    active = np.empty(n, bool)
    raised = [0, 0]
    thr = art.alerts.threshold
    clock = 300.0 * np.arange(n)  # both sides see the same clock (it only places samples in the daily profile)
    watched = "adaptive" if art.alerts.source == "adaptive" else "score"  # what the alert machine thresholds
    for i in range(n):
        x = values[i:i + 1]
        rs, rr = ref.step(rs, x, clock[i:i + 1])
        ts, tr = tgt.step(ts, x, clock[i:i + 1])
        err[i] = np.abs(rs.forecast - ts.forecast).max()
        drift[i] = np.abs(rs.model - ts.model).max()
        above[i] = (getattr(rr, watched)[0] >= thr) == (getattr(tr, watched)[0] >= thr)
        active[i] = rs.alerts.active[0] == ts.alerts.active[0]
        raised[0] += int(rr.events[0] == 1)
        raised[1] += int(tr.events[0] == 1)
    if t.precision in FORECAST_GATE and getattr(cell, "arithmetic", "float32") != "float16":
        limit = FORECAST_GATE[t.precision]
        gate, passed = f"forecast max <= {limit:g}", bool(err.max() <= limit)
    else:
        gate = f"decisions agree >= {DECISION_GATE:.0%}"
        passed = bool(above.mean() >= DECISION_GATE and active.mean() >= DECISION_GATE)
    return Parity(name, t.precision, t.reference_precision, n, float(err.max()), float(np.percentile(err, 99)),
                  [float(q.max()) for q in np.array_split(drift, 4)], float(above.mean()), float(active.mean()),
                  raised[0], raised[1], gate, passed, runtime)


def table(results: list[Parity]) -> str:
    rows = [("target", "runtime", "ref", "steps", "fcst max", "fcst p99", "state drift by quarter", "thr agree",
             "alert agree", "alerts ref/tgt", "gate", "")]
    for p in results:
        rows.append((p.target, p.runtime or "-", p.reference, str(p.steps), f"{p.forecast_max:.2e}",
                     f"{p.forecast_p99:.2e}",
                     " ".join(f"{d:.1e}" for d in p.state_drift), f"{p.threshold_agreement:.2%}",
                     f"{p.alert_agreement:.2%}", f"{p.alerts_reference}/{p.alerts_target}", p.gate,
                     "pass" if p.passed else "FAIL"))
    return text_table(rows)
