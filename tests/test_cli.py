"""The `rnnedge` command through its installed entry point, as a user runs it."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import DAILY, TAXI

RNNEDGE = Path(sys.executable).with_name("rnnedge")


def cli(*args, check=True):
    cmd = [str(RNNEDGE)] if RNNEDGE.exists() else [sys.executable, "-m", "edge.cli"]
    r = subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def test_help_has_examples():
    for sub in ("train", "info", "detect"):
        out = cli(sub, "--help").stdout
        assert "examples:" in out and f"rnnedge {sub}" in out


def test_train_info_detect_esn_on_nab(tmp_path):
    model = tmp_path / "taxi-esn"
    out = cli("train", TAXI, "--kind", "esn", "--int8", "-o", model).stdout
    assert "kind        esn: input 1, 200 units" in out and "serving     int8" in out
    info = cli("info", model).stdout
    for field in ("kind", "size", "forecast", "int8", "alerts", "scorer", "provenance", "nyc_taxi.csv"):
        assert field in info
    assert "profile     a week in 336 bins of 1800 s per stream, weight 0.6" in info  # half-hourly, 7 months
    cli("train", TAXI, "--rows", 500, "--profile-weight", 0, "-o", tmp_path / "flat")
    assert "profile     none: --profile-weight 0" in cli("info", tmp_path / "flat").stdout
    manifest = json.loads(cli("info", model, "--json").stdout)
    assert manifest["model"]["kind"] == "esn" and manifest["precision"] == "int8"
    det = cli("detect", model, TAXI, "--from-row", 8000, "--scores", tmp_path / "s.csv").stdout
    assert det.splitlines()[-1].endswith("alert(s) raised")
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "timestamp,value,score,adaptive,event" and len(lines) == 10321


@pytest.mark.slow
def test_train_gru_pruned_int8(tmp_path):
    model = tmp_path / "gru"
    out = cli("train", DAILY, "--kind", "gru", "--hidden", 8, "--epochs", 3, "--prune", 0.5,
              "--prune-steps", 2, "--finetune-epochs", 1, "--int8", "-o", model).stdout
    achieved = float(re.search(r"pruning     sparsity ([\d.]+)% \(target 50%\)", out).group(1))
    assert abs(achieved - 50) <= 1 and "int8        forecast vs float" in out


def test_errors_are_one_line_with_exit_1(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n2024-01-01 00:00,1\n2024-01-01 00:05,x\n")
    r = cli("train", bad, "-o", tmp_path / "m", check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == f"Error: {bad}: line 3: column 'value': 'x' is not a number"
    r = cli("info", tmp_path / "nothing", check=False)
    assert r.returncode == 1 and r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1
    (tmp_path / "m2").mkdir()
    (tmp_path / "m2" / "x").write_text("keep me")
    r = cli("train", TAXI, "-o", tmp_path / "m2", check=False)
    assert r.returncode == 1 and "--force" in r.stderr
    r = cli("train", TAXI, "--units", 0, "-o", tmp_path / "m3", check=False)
    assert r.returncode == 1
    assert "The 'units' parameter of ESNConfig must be an int in [2, 8192]. Got 0 instead." in r.stderr
    r = cli("train", TAXI, "--prune", 0.5, "-o", tmp_path / "m4", check=False)  # an ESN by default
    assert r.returncode == 1 and "pruning applies to GRU models" in r.stderr and "--units" in r.stderr


def test_usage_errors_exit_2():
    assert cli("train", check=False).returncode == 2
    assert cli("frobnicate", check=False).returncode == 2
    assert cli("train", TAXI, "-o", "x", "--kind", "lstm", check=False).returncode == 2


def test_a_cycle_reservoir_trains_converts_and_proves_its_targets(tmp_path):
    """The default ESN's reservoir is one ring at the spectral radius, `info` names it, and its int8
    and float targets compute what the reference computes. --topology random draws the sparse
    reservoir at --density, which a ring refuses."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("ai_edge_litert")
    from edge.artifact import load_artifact
    model = tmp_path / "taxi-cycle"
    out = cli("train", TAXI, "--rows", 3000, "--kind", "esn", "--units", 60, "--int8", "-o", model).stdout
    assert "60 units wired a cycle, spectral radius 0.99" in out
    art = load_artifact(model)
    assert art.config.topology == "cycle" and np.count_nonzero(art.weights["w"]) == 60
    out = cli("convert", model, "--targets", "tflite-int8,onnx").stdout
    assert out.count(" pass") == 2 and "FAIL" not in out
    out = cli("train", TAXI, "--rows", 1000, "--units", 60, "--topology", "random", "--density", 0.2,
              "-o", tmp_path / "taxi-random").stdout
    assert "60 units wired random at density 0.2" in out
    bad = cli("train", TAXI, "--rows", 500, "--density", 0.2, "-o", tmp_path / "bad", check=False)
    assert bad.returncode == 1 and "--topology random" in bad.stderr and not (tmp_path / "bad").exists()
    bad = cli("train", TAXI, "--rows", 500, "--topology", "ring", "-o", tmp_path / "bad", check=False)
    assert bad.returncode == 2 and "invalid choice: 'ring'" in bad.stderr


def test_profiles_convert_verify_deploy(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("ai_edge_litert")
    model = tmp_path / "taxi-esn"
    cli("train", TAXI, "--rows", 3000, "--kind", "esn", "--units", 60, "--int8", "-o", model)
    out = cli("profiles").stdout
    for name in ("raspberry-pi-4", "esp32-s3", "android-gpu", "coral-edgetpu", "jetson-orin-nano"):
        assert name in out
    out = cli("convert", model, "--profile", "esp32-s3").stdout
    assert "tflite-int8" in out and "pass" in out and "fits profile esp32-s3" in out
    gpu = lambda *a: cli("detect", model, TAXI, "--from-row", 3000, "--accelerator", "gpu", *a, check=False)  # noqa: E731
    bad = gpu()
    assert bad.returncode == 1 and "no float TFLite target for the GPU; run `rnnedge convert" in bad.stderr
    out = cli("convert", model, "--targets", "onnx,tflite-fp16").stdout
    assert "model.fp16.tflite" in out and "FAIL" not in out
    bad = gpu("--target", "tflite-int8")
    assert bad.returncode == 1 and "target 'tflite-int8' has no GPU path" in bad.stderr
    r = gpu()  # tflite-fp16 on LiteRT's GPU accelerator: served where there is a GPU, else refused with the reason
    if os.environ.get("RNNEDGE_TEST_GPU") == "1" or r.returncode == 0:
        assert r.returncode == 0 and "tflite-fp16 on the GPU" in r.stdout, r.stderr
    else:
        assert r.returncode == 1 and "LiteRT's GPU accelerator refused it" in r.stderr, r.stderr
    out = cli("verify", model, "--data", TAXI).stdout
    assert "10320" in out and out.count(" pass") == 3  # tflite-int8, onnx, tflite-fp16
    bad = cli("convert", model, "--profile", "android-gpu", "--targets", "onnx", check=False)
    assert bad.returncode == 1 and "do not fit profile 'android-gpu'" in bad.stderr
    out = cli("deploy", model, "--profile", "raspberry-pi-4", "-o", tmp_path / "taxi.rpi4.tar").stdout
    assert "serves tflite-int8 on litert/xnnpack" in out
    from edge.bundle import open_bundle
    b = open_bundle(tmp_path / "taxi.rpi4.tar", tmp_path / "unpacked")
    assert b.runtime["target"] == "tflite-int8" and b.runtime["mqtt"]["qos"] == 1
