"""The artifact round-trips, and each damaged artifact is refused with a typed, specific error."""

import json
import shutil

import numpy as np
import pytest

from edge.artifact import load_artifact, model_id, sha256_file
from edge.errors import (ArtifactError, DigestMismatchError, MissingFileError, NonFiniteError,
                         SchemaVersionError, ShapeMismatchError)

from .conftest import train_small


@pytest.fixture(scope="module")
def esn_dir(tmp_path_factory, sine_csv):
    return train_small("esn", tmp_path_factory.mktemp("esn"), sine_csv)


@pytest.fixture
def copy(esn_dir, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(esn_dir, dst)
    return dst


def _rewrite_weights(path, mutate):
    """Change weights.npz and re-record its digest, so only the content check can catch it."""
    with np.load(path / "weights.npz") as z:
        w = {k: z[k] for k in z.files}
    mutate(w)
    np.savez_compressed(path / "weights.npz", **w)
    m = json.loads((path / "manifest.json").read_text())
    m["files"]["weights.npz"]["sha256"] = sha256_file(path / "weights.npz")
    (path / "manifest.json").write_text(json.dumps(m))


def _edit_manifest(path, edit):
    m = json.loads((path / "manifest.json").read_text())
    edit(m)
    (path / "manifest.json").write_text(json.dumps(m))


def test_round_trip(esn_dir, tmp_path):
    art = load_artifact(esn_dir)
    assert art.config.kind == "esn" and art.precision == "int8"
    assert art.model_id == model_id(art.config, art.weights)
    shutil.copytree(esn_dir, tmp_path / "again")
    again = load_artifact(tmp_path / "again")
    assert again.model_id == art.model_id
    for k in art.weights:
        np.testing.assert_array_equal(again.weights[k], art.weights[k])
    # no pickle anywhere: every array loads with allow_pickle=False
    with np.load(esn_dir / "weights.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


def test_missing_manifest(copy):
    (copy / "manifest.json").unlink()
    with pytest.raises(MissingFileError, match="manifest.json: missing"):
        load_artifact(copy)


def test_missing_directory(tmp_path):
    with pytest.raises(MissingFileError, match="no such model directory"):
        load_artifact(tmp_path / "nope")


def test_missing_weights(copy):
    (copy / "weights.npz").unlink()
    with pytest.raises(MissingFileError, match=r"weights\.npz: missing"):
        load_artifact(copy)


def test_digest_mismatch(copy):
    data = bytearray((copy / "calibration.npz").read_bytes())
    data[-30] ^= 0xFF
    (copy / "calibration.npz").write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError, match=r"calibration\.npz: sha256 is"):
        load_artifact(copy)


@pytest.mark.parametrize("version", [6, 0, "2", True])
def test_unknown_schema_version(copy, version):
    _edit_manifest(copy, lambda m: m.update(schema_version=version))
    with pytest.raises(SchemaVersionError, match=f"schema_version {version!r}.*reads \\(1, 2, 3, 4, 5\\)"):
        load_artifact(copy)


def test_a_newer_schema_asks_for_an_upgrade_and_older_ones_still_load(copy):
    """Artifacts are written at schema 5; an artifact from a newer rnnedge is refused with the
    remedy, and one written at schema 1-4 loads and scores as before (its sections default)."""
    assert json.loads((copy / "manifest.json").read_text())["schema_version"] == 5
    model = json.loads((copy / "manifest.json").read_text())["model"]
    assert model["topology"] == "cycle" and model["density"] is None
    _edit_manifest(copy, lambda m: m.update(schema_version=6))
    with pytest.raises(SchemaVersionError, match="upgrade rnnedge"):
        load_artifact(copy)
    for old in (1, 2, 3):  # before 4 an ESN's model section had no topology: every one was random
        _edit_manifest(copy, lambda m: (m.update(schema_version=old), m["model"].pop("topology", None)))
        art = load_artifact(copy)
        assert art.manifest["schema_version"] == old and art.config.topology == "random"
        assert art.config.density == 0.1  # as written then
    # the first schema-4 artifacts stored the unused default density beside a cycle
    _edit_manifest(copy, lambda m: (m.update(schema_version=4), m["model"].update(topology="cycle", density=0.1)))
    assert load_artifact(copy).config.density is None


def test_shape_inconsistent_with_manifest(copy):
    _edit_manifest(copy, lambda m: m["model"].update(units=41))
    with pytest.raises(ShapeMismatchError, match=r"array 'w_in' has shape \[40, 2\].*needs \[41, 2\]"):
        load_artifact(copy)


def test_missing_array(copy):
    _rewrite_weights(copy, lambda w: w.pop("w.q"))
    with pytest.raises(ShapeMismatchError, match="missing array 'w.q'"):
        load_artifact(copy)


def test_an_int8_model_without_a_range_its_int8_cell_needs_serves_float_but_no_int8_reference(copy):
    """An int8 model quantized before some tensor got a grid of its own (an ESN's fully-connected
    outputs, session 16; a GRU's gates, session 24) still loads, so its float model and the targets
    converted from it (a deployed bundle) keep serving after an upgrade; its int8 reference, and with
    it any new int8 target, is refused with the reason, not built on grids it does not have."""
    _edit_manifest(copy, lambda m: m["quantization"]["activations"].pop("fc_in"))
    art = load_artifact(copy)
    art.cell("float32").step(np.zeros((1, 2), np.float32), np.zeros((1, art.config.state_size), np.float32))
    with pytest.raises(ArtifactError, match="no range for fc_in.*targets converted from it still serve.*"
                                            "train it again with --int8"):
        art.cell("int8")


def test_a_readout_quantized_as_one_matrix_is_refused(copy):
    _rewrite_weights(copy, lambda w: w.update({"readout.weight.scale": w["readout.weight.scale"][:, 0].copy()}))
    with pytest.raises(ShapeMismatchError, match=r"'readout.weight.scale' has shape \[2\].*needs \[2, 2\]"):
        load_artifact(copy)


def test_nan_weights(copy):
    def poison(w):
        w["readout.weight"][0, 3] = np.nan
    _rewrite_weights(copy, poison)
    with pytest.raises(NonFiniteError, match="'readout.weight' holds 1 NaN/inf"):
        load_artifact(copy)


def test_bad_json_and_kind_and_keys(copy):
    _edit_manifest(copy, lambda m: m["model"].update(kind="lstm"))
    with pytest.raises(ArtifactError, match="model.kind must be one of"):
        load_artifact(copy)
    _edit_manifest(copy, lambda m: m["model"].update(kind="esn", colour="red"))
    with pytest.raises(ArtifactError, match=r"unknown key\(s\).*colour"):
        load_artifact(copy)
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_artifact(copy)


def test_normalization_and_scorer_checked(copy):
    _edit_manifest(copy, lambda m: m["normalization"].update(std=[1.0, 0.0]))
    with pytest.raises(ArtifactError, match="std must be positive"):
        load_artifact(copy)
    _edit_manifest(copy, lambda m: (m["normalization"].update(std=[1.0, 1.0]), m["scorer"].update(center=[0.0])))
    with pytest.raises(ArtifactError, match="scorer.center has 1 values"):
        load_artifact(copy)


def test_contextual_novelty_reads_its_range_from_the_extent(copy):
    """The section stores no range of its own: it places levels on the manifest's `extent`, and a
    manifest with the section but no extent is refused with the reason."""
    from edge.detector import Detector
    m = json.loads((copy / "manifest.json").read_text())
    assert "lo" not in m["context_novelty"]
    ctx = Detector(load_artifact(copy)).context
    assert ctx.lo.tolist() == m["extent"]["min"]
    np.testing.assert_array_equal(ctx.lo + ctx.span, m["extent"]["max"])
    _edit_manifest(copy, lambda m: m.pop("extent"))
    with pytest.raises(ArtifactError, match="context_novelty needs the training rows' extent"):
        Detector(load_artifact(copy))
