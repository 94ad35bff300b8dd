"""`rnnedge convert`: emit targets next to the artifact, prove each against the reference (in the
firmware profile's runtime where it runs the target's format: TFLite Micro for a microcontroller),
check them against the profile, and record the result in targets.json.

targets.json (written atomically, after every target is emitted and verified):
    {"format": "rnnedge-targets", "model_id": ..., "created": ..., "versions": {...},
     "verified_on": {"source": ..., "rows": N},
     "targets": {"tflite-int8": {"file": "model.int8.tflite", "sha256": ..., "bytes": ..., "format": ...,
                                 "precision": ..., "parity": {..., "runtime": "litert"}, "facts": {...}}},
     "profile": {"name": ..., "fits": true, "violations": [...]} or null}
A target that misses its parity gate, or a profile it does not fit, makes `convert` fail (after
writing what it measured, so the reasons can be read back).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import edge
from edge.artifact import Artifact, atomic_write, sha256_file
from edge.errors import RnnEdgeError
from edge.targets import RUNTIMES, TARGETS, TARGETS_FILE, open_in_runtime, open_target, read_record, target

from . import onnx_target, tflite_target
from .check import Facts, Violation, check, facts, violations_table
from .profiles import Profile
from .verify import Parity, verify

_WRITERS = {
    "onnx": onnx_target.write_float, "onnx-int8": onnx_target.write_int8,
    "tflite": tflite_target.write_float, "tflite-fp16": tflite_target.write_fp16,
    "tflite-int8": tflite_target.write_int8,
}


class GateError(RnnEdgeError):
    """A target missed its parity gate or does not fit the chosen profile."""


@dataclass
class Converted:
    target: str
    path: Path
    seconds: float
    parity: Parity
    facts: Facts


def emit(art: Artifact, name: str, out_dir: Path) -> tuple[Path, float]:
    """Write target `name` into out_dir; returns its path and the conversion time in seconds."""
    t = target(name)
    if art.config.kind == "lsm":
        raise RnnEdgeError(f"{art.path}: a spiking reservoir has no ONNX or TFLite target (its spike threshold "
                           "and reset are not in the targets' op set); neuromorphic export (NIR) is not built yet")
    if t.precision == "int8" and art.activation_ranges is None:
        raise RnnEdgeError(f"{art.path}: target {name!r} needs an int8-calibrated model; train it with --int8")
    path = out_dir / t.file
    t0 = time.perf_counter()
    _WRITERS[name](art, path)
    return path, time.perf_counter() - t0


def convert(art: Artifact, names: list[str], values: np.ndarray, source: str, *,
            profile: Profile | None = None, out_dir: Path | None = None) -> tuple[list[Converted], list[Violation]]:
    """Emit, verify over `values` (raw float[T, D]) and measure every target; write targets.json.

    Raises GateError, after writing targets.json, when a target misses its parity gate or the
    profile's budgets.
    """
    out_dir = Path(out_dir or art.path)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        target(name)
    done = []
    for name in names:
        path, seconds = emit(art, name, out_dir)
        cell = open_target(path, name, art.config)
        # proved in the profile's runtime where it runs this format (TFLite Micro's kernels round int8
        # apart from LiteRT's); timed in the default one, which the profile's speed factor scales
        runtime = profile.runtime if profile is not None else None
        proof = cell  # where the runtime is missing, the parity's runtime records the default's
        if runtime in RUNTIMES[TARGETS[name].format] and runtime != cell.runtime:
            proof = open_in_runtime(path, name, art.config, runtime)
        done.append(Converted(name, path, seconds, verify(art, name, proof, values), facts(name, path, cell)))
    violations = check(profile, [c.facts for c in done]) if profile else []
    _write_record(art, out_dir, done, source, len(values), profile, violations)
    failed = [c.target for c in done if not c.parity.passed]
    if failed:
        raise GateError(f"target(s) {', '.join(failed)} missed the parity gate; see `rnnedge verify`")
    if violations:
        raise GateError(f"the targets do not fit profile {profile.name!r}:\n{violations_table(violations)}")
    return done, violations


def _write_record(art: Artifact, out_dir: Path, done: list[Converted], source: str, rows: int,
                  profile: Profile | None, violations: list[Violation]) -> None:
    import ai_edge_litert
    import onnx
    import onnxruntime
    record_path = out_dir / TARGETS_FILE
    old = read_record(out_dir) or {}
    targets = old.get("targets", {}) if old.get("model_id") == art.model_id else {}
    for c in done:
        t = TARGETS[c.target]
        targets[c.target] = {"file": t.file, "sha256": sha256_file(c.path), "bytes": c.path.stat().st_size,
                             "format": t.format, "precision": t.precision, "convert_seconds": c.seconds,
                             "parity": c.parity.to_dict(), "facts": c.facts.to_dict()}
    record = {
        "format": "rnnedge-targets", "model_id": art.model_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"rnnedge": edge.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                     "ai_edge_litert": getattr(ai_edge_litert, "__version__", "?"),
                     "tflite_micro": _version("tflite_micro"), "python": platform.python_version()},
        "verified_on": {"source": source, "rows": rows},
        "targets": targets,
        "profile": None if profile is None else {"name": profile.name, "fits": not violations,
                                                 "violations": [asdict(v) for v in violations]},
    }
    atomic_write(record_path, (json.dumps(record, indent=2) + "\n").encode())


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(package)
    except PackageNotFoundError:
        return None
