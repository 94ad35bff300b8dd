"""Deploy bundles: one tar archive that a device runs as it is.

    bundle.json              format, version, model id, profile, targets, runtime config, sha256 of every file
    model/manifest.json      the model artifact (weights.npz, calibration.npz) ...
    model/model.int8.tflite  ... and the chosen targets

Opening checks that the archive holds exactly the files bundle.json lists, each with its recorded
sha256, none outside the bundle's own folder; any alteration is refused with the file named.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .artifact import CALIBRATION, MANIFEST, WEIGHTS, Artifact, load_artifact, sha256_file
from .errors import ArtifactError, DigestMismatchError, MissingFileError
from .targets import TARGETS

FORMAT = "rnnedge-bundle"
VERSION = 1
INDEX = "bundle.json"


class BundleError(ArtifactError):
    """A deploy bundle that is malformed or was altered."""


@dataclass(frozen=True)
class Bundle:
    path: Path              # the folder it was unpacked into
    index: dict             # bundle.json
    artifact: Artifact

    @property
    def runtime(self) -> dict:
        return self.index["runtime"]

    def target_path(self, name: str) -> Path:
        return self.artifact.path / TARGETS[name].file


def make_bundle(model_dir: str | Path, targets: list[str], profile: str, runtime: dict, out: str | Path) -> Path:
    """Write the archive `out` from a converted model directory."""
    model_dir, out = Path(model_dir), Path(out)
    members = {f"model/{n}": model_dir / n for n in (MANIFEST, WEIGHTS, CALIBRATION)}
    for name in targets:
        f = model_dir / TARGETS[name].file
        if not f.is_file():
            raise MissingFileError(f"{f}: missing; run `rnnedge convert {model_dir} --targets {name}` first")
        members[f"model/{TARGETS[name].file}"] = f
    index = {"format": FORMAT, "version": VERSION,
             "model_id": json.loads((model_dir / MANIFEST).read_text())["model_id"],
             "profile": profile, "targets": targets, "runtime": runtime,
             "files": {arc: sha256_file(src) for arc, src in members.items()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with tarfile.open(tmp, "w") as tar:
        data = (json.dumps(index, indent=2) + "\n").encode()
        info = tarfile.TarInfo(INDEX)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for arc, src in members.items():
            tar.add(src, arcname=arc, recursive=False)
    tmp.replace(out)
    return out


def open_bundle(path: str | Path, dest: str | Path) -> Bundle:
    """Verify the archive `path` and unpack it into `dest`; raises BundleError naming what is wrong."""
    path, dest = Path(path), Path(dest)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such bundle")
    try:
        tar = tarfile.open(path, "r")
    except tarfile.TarError as e:
        raise BundleError(f"{path}: not a tar archive ({e})") from None
    with tar:
        members = {m.name: m for m in tar.getmembers()}
        if INDEX not in members:
            raise BundleError(f"{path}: no {INDEX}; not an rnnedge deploy bundle")
        try:
            index = json.loads(tar.extractfile(members[INDEX]).read())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BundleError(f"{path}: {INDEX} is not valid JSON: {e}") from None
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            raise BundleError(f"{path}: {INDEX} is not an rnnedge bundle index")
        if index.get("version") != VERSION:
            raise BundleError(f"{path}: bundle version {index.get('version')!r} is not one this rnnedge reads ({VERSION})")
        files = index.get("files")
        for key in ("model_id", "profile", "targets", "runtime"):
            if key not in index:
                raise BundleError(f"{path}: {INDEX} is missing {key!r}")
        if not isinstance(files, dict):
            raise BundleError(f"{path}: {INDEX} has no files table")
        extra = sorted(set(members) - set(files) - {INDEX})
        if extra:
            raise BundleError(f"{path}: holds {extra[0]!r}, which {INDEX} does not list")
        for name, digest in files.items():
            p = PurePosixPath(name)
            if p.is_absolute() or ".." in p.parts or p.parts[0] != "model":
                raise BundleError(f"{path}: refuses member {name!r} outside model/")
            m = members.get(name)
            if m is None or not m.isfile():
                raise BundleError(f"{path}: {name} is listed in {INDEX} but missing")
            data = tar.extractfile(m).read()
            if hashlib.sha256(data).hexdigest() != digest:
                raise DigestMismatchError(f"{path}: {name} does not match its sha256 in {INDEX}; "
                                          "the bundle was altered or damaged")
            out = dest / p
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
    art = load_artifact(dest / "model")
    if art.model_id != index["model_id"]:
        raise BundleError(f"{path}: model id {art.model_id} differs from {INDEX}'s {index['model_id']}")
    return Bundle(dest, index, art)
