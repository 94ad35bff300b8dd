"""What the runtime serves: a model directory or a deploy bundle, on one of three backends.

    numpy   the reference cells in `edge` (float32 or int8, the artifact's precision by default)
    onnx    an ONNX target in onnxruntime
    litert  a TFLite target in ai-edge-litert (tflite-runtime as a fallback import)
    tflite-micro  a TFLite target in TFLite Micro's interpreter: a microcontroller's kernels, run here

The choice, first that applies: `target` (a target name), `backend`, the bundle's runtime config,
else numpy. A bundle's TFLite target runs in its profile's interpreter unless `backend` says
otherwise: TFLite Micro for a microcontroller's, where tflite-micro is installed (else LiteRT, with
a warning). `accelerator="gpu"` serves a float TFLite target on LiteRT's GPU accelerator (tflite-fp16
unless `target` names tflite). Backends hold no per-stream state; the engine owns it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .artifact import Artifact, load_artifact
from .bundle import Bundle, open_bundle
from .detector import Detector
from .errors import ConfigError, DigestMismatchError, MissingFileError
from .targets import (ACCELERATORS, GPU_TARGETS, TARGETS, TARGETS_FILE, open_in_runtime, open_target, preflight,
                      recorded)

BACKENDS = ("numpy", "onnx", "litert", "tflite-micro")
_BACKEND = {"onnxruntime": "onnx", "litert": "litert", "tflite-micro": "tflite-micro"}  # of a cell's runtime
_FORMAT = {"onnx": "onnx", "litert": "tflite", "tflite-micro": "tflite", "tflite": "tflite"}


@dataclass(frozen=True)
class Served:
    detector: Detector
    backend: str          # numpy | onnx | litert | tflite-micro
    target: str | None    # the target name, None for numpy
    bundle: Bundle | None
    accelerator: str = "cpu"  # cpu | gpu (LiteRT's GPU accelerator)

    @property
    def artifact(self) -> Artifact:
        return self.detector.artifact

    def describe(self) -> str:
        art = self.artifact
        what = f"target {self.target}" if self.target else f"numpy reference ({self.detector.cell.__class__.__name__})"
        src = f"bundle for {self.bundle.index['profile']}" if self.bundle else "model directory"
        scoring = "C (edge._rowstep)" if self.detector.compiled else "Python (edge._rowstep not built)"
        on = f"{self.backend}'s GPU accelerator" if self.accelerator == "gpu" else self.backend
        return (f"model {art.model_id} ({art.config.kind}, {art.features}) from {src}, {what} on {on}, "
                f"scoring in {scoring}")


def load(path: str | Path, *, backend: str | None = None, target: str | None = None,
         workdir: str | Path | None = None, threads: int = 1, accelerator: str = "cpu") -> Served:
    """Open a model directory or a bundle (.tar, unpacked under `workdir`) and build its detector."""
    path = Path(path)
    if backend is not None and backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if accelerator not in ACCELERATORS:
        raise ConfigError(f"unknown accelerator {accelerator!r}; choose one of {', '.join(ACCELERATORS)}")
    if accelerator == "gpu" and backend not in (None, "litert"):
        raise ConfigError(f"the GPU accelerator is LiteRT's; it cannot serve backend {backend}")
    bundle = None
    if path.is_file():
        if workdir is None:
            raise ConfigError("serving a bundle needs a folder to unpack it into")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        bundle = open_bundle(path, Path(workdir) / f"bundle-{digest}")
        art = bundle.artifact
    elif path.is_dir():
        art = load_artifact(path)
    else:
        raise MissingFileError(f"{path}: no such model directory or bundle")
    available = bundle.index["targets"] if bundle else [n for n, t in TARGETS.items() if (art.path / t.file).is_file()]
    if target is None and accelerator == "gpu":
        fits = [n for n in reversed(GPU_TARGETS) if n in available]  # tflite-fp16 first: made for the GPU
        if not fits:
            raise MissingFileError(f"{path}: no float TFLite target for the GPU; run `rnnedge convert {art.path} "
                                   f"--targets tflite-fp16`")
        target = fits[0]
    elif target is None and backend in ("onnx", "litert", "tflite-micro"):
        want = "int8" if art.precision == "int8" else "float32"
        fits = [n for n in available if TARGETS[n].format == _FORMAT[backend]]
        fits.sort(key=lambda n: TARGETS[n].precision != want)
        if not fits:
            raise MissingFileError(f"{path}: no {_FORMAT[backend]} target to serve on {backend}; "
                                   f"run `rnnedge convert {art.path} --targets {_FORMAT[backend]}`")
        target = fits[0]
    elif target is None and backend is None and bundle is not None:
        target = bundle.runtime["target"]
    if target is None:
        return Served(Detector(art), "numpy", None, bundle)
    if target not in available:
        raise MissingFileError(f"{path}: target {target!r} is not there (have: {', '.join(available) or 'none'})")
    t = TARGETS[target]
    if backend == "numpy" or (backend and _FORMAT[backend] != t.format):
        raise ConfigError(f"target {target} is {t.format}; it cannot run on backend {backend}")
    if bundle is None:  # a bundle's files were checked against their sha256 as it was opened
        vouched = recorded(art.path, target)
        if vouched is False:
            raise DigestMismatchError(f"{art.path / t.file}: does not match its sha256 in {TARGETS_FILE}: it "
                                      "changed after `rnnedge convert` proved it; convert it again")
        if vouched is None:
            preflight(art.path, target, "tflite-micro" if backend == "tflite-micro" else None)
    interpreter = bundle.runtime.get("interpreter") if bundle is not None else None
    if backend is None and accelerator == "cpu" and interpreter == "tflite-micro" and t.format == "tflite":
        # a microcontroller's bundle: served as its kernels compute, where TFLite Micro is installed
        cell = open_in_runtime(art.path / t.file, target, art.config, interpreter, threads=threads)
    else:
        cell = open_target(art.path / t.file, target, art.config, accelerator=accelerator,
                           runtime="tflite-micro" if backend == "tflite-micro" else None, threads=threads)
    return Served(Detector(art, cell=cell), _BACKEND[cell.runtime], target, bundle, accelerator)
