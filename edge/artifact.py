"""The model artifact: a directory holding manifest.json and no-pickle .npz files.

Loading checks, in order: the manifest is there and is JSON; its format and schema version; every
listed file is there with the recorded sha256; the model section; every array's presence, shape
and dtype against the model shapes; NaN/inf; the normalisation, quantization and scorer sections.
Each refusal raises a typed ArtifactError whose message names the file, the key and the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from . import esn, gru, lsm
from .alerts import AlertConfig
from .cell import Cell
from .errors import (ArtifactError, DigestMismatchError, MissingFileError, NonFiniteError,
                     SchemaVersionError, ShapeMismatchError)
from .scoring import Scorer
from .specs import ModelConfig, config_from_dict, config_to_dict

FORMAT = "rnnedge-model"
# 2: the sections that change how a stream is scored (the adaptive score's cap, novelty z and alert
# fatigue, the daily profile, the training extent) are part of the schema, so an rnnedge that reads
# only 1 refuses these artifacts instead of serving them without those sections. Version 1 artifacts
# still load: each missing section scores as it did before it existed.
# 3: the scorer's `norm` (how channels make one distance) and the adaptive score's `clip`, so an
# rnnedge that reads only 2 refuses these artifacts instead of scoring a "max" one by the RMS.
# 4: an ESN's `topology` in the model section (older ESN artifacts are random reservoirs), so an
# rnnedge that reads only 3 asks for an upgrade instead of naming an unknown key.
# 5: the contextual-novelty section (context.ContextNovelty), so an rnnedge that reads only 4 refuses
# these artifacts instead of scoring them without it. Older artifacts score as before (none).
SCHEMA_VERSION = 5
READABLE_VERSIONS = (1, 2, 3, 4, 5)
MANIFEST = "manifest.json"
WEIGHTS = "weights.npz"
CALIBRATION = "calibration.npz"
PRECISIONS = ("float32", "int8")
_KINDS = {"gru": gru, "esn": esn, "lsm": lsm}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    return _KINDS[config.kind].weight_shapes(config)


def weight_dtypes(config: ModelConfig) -> dict[str, str]:
    """Arrays stored in another dtype than float32 (the spiking reservoir's int8 synapses)."""
    f = getattr(_KINDS[config.kind], "weight_dtypes", None)
    return f(config) if f else {}


def activation_names(config: ModelConfig) -> list[str]:
    return _KINDS[config.kind].activation_names(config)


def quantized_names(config: ModelConfig) -> list[str]:
    """The matrices stored as per-channel int8: every 2-D float weight."""
    low = weight_dtypes(config)
    return [n for n, s in weight_shapes(config).items() if len(s) == 2 and n not in low]


def quantized_splits(config: ModelConfig, name: str) -> tuple[int, ...]:
    """The column blocks quantized as separate matrices (`quant.quantize_per_channel`): the
    readout's state and input parts, which the step graph multiplies in two fully-connected ops."""
    if name != "readout.weight":
        return ()
    return (weight_shapes(config)[name][1] - config.input_size,)


def model_id(config: ModelConfig, weights: Mapping[str, np.ndarray]) -> str:
    """A content id of the model (config and arrays), stable across saves, 16 hex digits."""
    h = hashlib.sha256(json.dumps(config_to_dict(config), sort_keys=True).encode())
    for name in sorted(weights):
        a = np.ascontiguousarray(weights[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def unit_scale(values: np.ndarray) -> np.ndarray:
    """Per channel, the standard deviation of values float[N, D] (in their dtype); 1 for a flat channel:
    the unit of the normalisation and of the daily profile's residual."""
    std = values.std(axis=0)
    return np.where(std > 1e-8 * np.maximum(1.0, np.abs(values.mean(axis=0))), std, 1.0)


@dataclass(frozen=True)
class Normalizer:
    """x_norm = (x - mean) / std per channel, fitted on training data only."""

    mean: np.ndarray  # float32[D]
    std: np.ndarray   # float32[D]

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float32) - self.mean) / self.std).astype(np.float32, copy=False)

    def denormalize(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, np.float32) * self.std + self.mean

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


@dataclass(frozen=True)
class Artifact:
    """A loaded, validated model. `cell(precision)` gives the numpy reference step."""

    path: Path
    manifest: dict
    config: ModelConfig
    weights: dict[str, np.ndarray]
    calibration: dict[str, np.ndarray]
    normalizer: Normalizer
    scorer: Scorer
    alerts: AlertConfig

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]

    @property
    def features(self) -> list[str]:
        return self.manifest["features"]

    @property
    def precision(self) -> str:
        """The precision the scorer was calibrated for, served by default."""
        return self.manifest["precision"]

    @property
    def activation_ranges(self) -> dict[str, tuple[float, float]] | None:
        q = self.manifest.get("quantization")
        return None if q is None else {k: tuple(v) for k, v in q["activations"].items()}

    def cell(self, precision: str | None = None, arithmetic: str = "xnnpack") -> Cell:
        """The numpy reference cell; an int8 ESN's computes in `arithmetic` (`edge.quant`: "xnnpack"
        as LiteRT on a CPU, "gemmlowp" as TFLite Micro)."""
        precision = precision or self.precision
        ranges = self.activation_ranges
        if precision == "int8" and ranges is None:
            raise ArtifactError(f"{self.path}: this model was not quantized; train it with --int8")
        missing = [name for name in activation_names(self.config) if name not in (ranges or {})]
        if precision == "int8" and missing:  # e.g. an int8 GRU quantized before its gates got grids of their own
            raise ArtifactError(f"{self.path}: quantization.activations has no range for {', '.join(missing)}, "
                                f"which this rnnedge's int8 {self.config.kind} rounds on; its float model and the "
                                "targets converted from it still serve; for its int8 reference or new int8 "
                                "targets, train it again with --int8")
        return build_cell(self.config, self.weights, precision, ranges, arithmetic)


_CELLS = {("gru", "float32"): gru.GRUCell, ("gru", "int8"): gru.GRUInt8Cell,
          ("esn", "float32"): esn.ESNCell, ("esn", "int8"): esn.ESNInt8Cell, ("lsm", "float32"): lsm.LSMCell}


def build_cell(config: ModelConfig, weights: Mapping[str, np.ndarray], precision: str = "float32",
               ranges: Mapping[str, tuple[float, float]] | None = None, arithmetic: str = "xnnpack") -> Cell:
    """The numpy reference cell of `config` at `precision` (int8 needs the activation ranges and
    computes in `arithmetic`, see `edge.quant`)."""
    if precision not in PRECISIONS:
        raise ArtifactError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    if (config.kind, precision) not in _CELLS:
        raise ArtifactError(f"a {config.kind} model has no {precision} cell (its synapses are int8 already)")
    cls = _CELLS[config.kind, precision]
    if precision == "float32":
        return cls.from_weights(config, weights)
    return cls.from_weights(config, weights, ranges, arithmetic)


def atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_artifact(path: str | Path, manifest: dict, weights: Mapping[str, np.ndarray],
                  calibration: Mapping[str, np.ndarray]) -> Path:
    """Write an artifact directory; the manifest (with files' digests and the model id) goes last.

    `manifest` holds every section but format, schema_version, model_id and files, which this fills.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, arrays in ((WEIGHTS, weights), (CALIBRATION, calibration)):
        np.savez_compressed(path / name, **{k: np.asarray(v) for k, v in arrays.items()})
        files[name] = {"sha256": sha256_file(path / name), "bytes": (path / name).stat().st_size}
    config = config_from_dict(manifest["model"])
    full = {"format": FORMAT, "schema_version": SCHEMA_VERSION,
            "model_id": model_id(config, weights), **manifest, "files": files}
    atomic_write(path / MANIFEST, (json.dumps(full, indent=2) + "\n").encode())
    return path


def _read_manifest(path: Path) -> dict:
    if not path.is_dir():
        raise MissingFileError(f"{path}: no such model directory")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise MissingFileError(f"{mpath}: missing; is {path} an rnnedge model directory?")
    try:
        manifest = json.loads(mpath.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{mpath}: not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{mpath}: not an rnnedge model manifest (format must be {FORMAT!r})")
    version = manifest.get("schema_version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        hint = "upgrade rnnedge" if type(version) is int and version > SCHEMA_VERSION else "re-train it"
        raise SchemaVersionError(f"{mpath}: schema_version {version!r} is not one this rnnedge reads "
                                 f"({', '.join(map(str, READABLE_VERSIONS))}); {hint}")
    for key in ("model_id", "model", "features", "normalization", "precision", "scorer", "alerts", "files"):
        if key not in manifest:
            raise ArtifactError(f"{mpath}: missing key {key!r}")
    return manifest


def _read_arrays(path: Path, name: str, entry: object) -> dict[str, np.ndarray]:
    fpath = path / name
    if not fpath.is_file():
        raise MissingFileError(f"{fpath}: missing (listed in manifest.json)")
    if not isinstance(entry, dict) or "sha256" not in entry:
        raise ArtifactError(f"{path / MANIFEST}: files.{name} has no sha256")
    digest = sha256_file(fpath)
    if digest != entry["sha256"]:
        raise DigestMismatchError(f"{fpath}: sha256 is {digest[:12]}..., manifest.json recorded "
                                  f"{str(entry['sha256'])[:12]}...; the file was changed or damaged")
    try:
        with np.load(fpath, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise ArtifactError(f"{fpath}: unreadable ({e})") from None


def _check_array(fname: str, name: str, a: np.ndarray | None, shape: tuple, dtype: str) -> None:
    if a is None:
        raise ShapeMismatchError(f"{fname}: missing array {name!r} (expected {dtype}{list(shape)})")
    if a.shape != tuple(shape):
        raise ShapeMismatchError(f"{fname}: array {name!r} has shape {list(a.shape)}, "
                                 f"the manifest's model needs {list(shape)}")
    if a.dtype != np.dtype(dtype):
        raise ShapeMismatchError(f"{fname}: array {name!r} is {a.dtype}, expected {dtype}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise NonFiniteError(f"{fname}: array {name!r} holds {int((~np.isfinite(a)).sum())} NaN/inf values")


def _floats(mpath: Path, key: str, value: object, n: int | None = None) -> np.ndarray:
    try:
        a = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise ArtifactError(f"{mpath}: {key} must be a list of numbers") from None
    if a.ndim != 1 or (n is not None and a.shape[0] != n):
        raise ShapeMismatchError(f"{mpath}: {key} must hold {n} numbers, got shape {list(a.shape)}")
    if not np.isfinite(a).all():
        raise NonFiniteError(f"{mpath}: {key} holds NaN or infinity")
    return a


def load_artifact(path: str | Path) -> Artifact:
    """Load and validate a model directory; raises an ArtifactError subclass naming what is wrong."""
    path = Path(path)
    mpath = path / MANIFEST
    manifest = _read_manifest(path)
    files = manifest["files"]
    if not isinstance(files, dict) or WEIGHTS not in files or CALIBRATION not in files:
        raise ArtifactError(f"{mpath}: files must list {WEIGHTS} and {CALIBRATION}")
    weights = _read_arrays(path, WEIGHTS, files[WEIGHTS])
    calibration = _read_arrays(path, CALIBRATION, files[CALIBRATION])
    config = config_from_dict(manifest["model"])

    dtypes = weight_dtypes(config)
    for name, shape in weight_shapes(config).items():
        _check_array(WEIGHTS, name, weights.get(name), shape, dtypes.get(name, "float32"))
    quant = manifest.get("quantization")
    if quant is not None:
        for name in quantized_names(config):
            shape = weight_shapes(config)[name]
            _check_array(WEIGHTS, f"{name}.q", weights.get(f"{name}.q"), shape, "int8")
            blocks = len(quantized_splits(config, name)) + 1
            _check_array(WEIGHTS, f"{name}.scale", weights.get(f"{name}.scale"),
                         shape[:1] + ((blocks,) if blocks > 1 else ()), "float32")
        acts = quant.get("activations") if isinstance(quant, dict) else None
        if not isinstance(acts, dict):
            raise ArtifactError(f"{mpath}: quantization.activations must map tensor names to [lo, hi]")
        # a range this rnnedge's int8 cell needs and the artifact lacks is refused where the cell is
        # built (Artifact.cell): the artifact's float model and converted targets still serve
        for name in acts:
            lo, hi = _floats(mpath, f"quantization.activations.{name}", acts.get(name), 2)
            if lo > hi:
                raise ArtifactError(f"{mpath}: quantization.activations.{name} has lo {lo} > hi {hi}")
    if manifest["precision"] not in PRECISIONS or (manifest["precision"] == "int8" and quant is None):
        raise ArtifactError(f"{mpath}: precision must be one of {PRECISIONS} (int8 only when quantized), "
                            f"got {manifest['precision']!r}")
    d = config.input_size
    for name in ("x", "state") if (config.kind, "int8") in _CELLS else ():  # what int8 targets calibrate on
        a = calibration.get(name)
        width = d if name == "x" else config.state_size
        if a is None or a.ndim != 2 or a.shape[1] != width:
            raise ShapeMismatchError(f"{CALIBRATION}: array {name!r} must be float32[N, {width}], "
                                     f"got {None if a is None else list(a.shape)}")
        _check_array(CALIBRATION, name, a, a.shape, "float32")
    stream = calibration.get("stream")  # optional: the training data's last rows, raw units
    if stream is not None:
        if stream.ndim != 2 or stream.shape[1] != d:
            raise ShapeMismatchError(f"{CALIBRATION}: array 'stream' must be float32[T, {d}], "
                                     f"got {list(stream.shape)}")
        _check_array(CALIBRATION, "stream", stream, stream.shape, "float32")

    features = manifest["features"]
    if not isinstance(features, list) or len(features) != d or not all(isinstance(f, str) for f in features):
        raise ShapeMismatchError(f"{mpath}: features must name {d} input channels, got {features!r}")
    norm = manifest["normalization"]
    if not isinstance(norm, dict):
        raise ArtifactError(f"{mpath}: normalization must be an object with mean and std")
    mean = _floats(mpath, "normalization.mean", norm.get("mean"), d)
    std = _floats(mpath, "normalization.std", norm.get("std"), d)
    if (std <= 0).any():
        raise ArtifactError(f"{mpath}: normalization.std must be positive")
    return Artifact(path, manifest, config, weights, calibration,
                    Normalizer(mean.astype(np.float32), std.astype(np.float32)),
                    Scorer.from_dict(manifest["scorer"], d), AlertConfig.from_dict(manifest["alerts"]))
