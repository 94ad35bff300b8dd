"""The `rnnedge` command. Library errors become one line on stderr and exit 1; usage errors exit 2.

Host-only subcommands import the trainer lazily and say how to install what they need.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .errors import MissingDependencyError, RnnEdgeError

HOST_INSTALL = "pip install torch==2.13.0 'rnnedge[host]'"


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _csv_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input CSV")
    g.add_argument("--timestamp-column", metavar="NAME", help="timestamp column (default: detected)")
    g.add_argument("--columns", metavar="A,B", help="value columns to use (default: all others)")
    g.add_argument("--sep", help="field separator (default: detected among , ; tab |)")
    g.add_argument("--on-missing", choices=("error", "ffill", "drop"), default="error",
                   help="what to do with empty/NaN cells (default: error)")
    g.add_argument("--on-unordered", choices=("error", "keep"), default="error",
                   help="repeated or backward timestamps: refuse, or keep file order (default: error)")


def _verify_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="CSV", help="stream to verify on (default: the rows stored at training)")
    _csv_args(p)


def _read(args):
    from .data import read_csv
    cols = args.columns.split(",") if args.columns else None
    return read_csv(args.data, timestamp_column=args.timestamp_column, columns=cols, sep=args.sep,
                    on_missing=args.on_missing, on_unordered=args.on_unordered)


def _model_args(p: argparse.ArgumentParser) -> None:
    """The model, training and alert options `train` and `evaluate` share."""
    p.add_argument("--kind", choices=("esn", "gru", "lsm"), default="esn",
                   help="model kind: echo-state network, GRU, or spiking reservoir (default: esn)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="held-out tail (default: 0.2)")
    p.add_argument("--washout", type=int, default=50, help="samples before scores count (default: 50)")
    p.add_argument("--int8", action="store_true", help="quantize to int8 and serve int8 by default")
    g = p.add_argument_group("GRU")
    g.add_argument("--hidden", type=int, default=32, help="hidden units per layer (default: 32)")
    g.add_argument("--layers", type=int, default=1, choices=(1, 2), help="GRU layers (default: 1)")
    g.add_argument("--epochs", type=int, default=150, help="max epochs, early-stopped (default: 150)")
    g.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default: 3e-3)")
    g.add_argument("--window", type=int, default=64, help="truncated-BPTT window (default: 64)")
    g.add_argument("--patience", type=int, default=12, help="early-stopping patience in epochs (default: 12)")
    g.add_argument("--prune", type=float, default=0.0, metavar="S", help="target sparsity per matrix, 0-0.99")
    g.add_argument("--prune-units", type=float, default=0.0, metavar="F",
                   help="fraction of hidden units to remove (structured)")
    g.add_argument("--prune-steps", type=int, default=4, help="gradual pruning steps (default: 4)")
    g.add_argument("--finetune-epochs", type=int, default=8, help="epochs after each pruning step (default: 8)")
    g = p.add_argument_group("ESN")
    g.add_argument("--units", type=int, help="reservoir units (default: 200; 500 for --kind lsm)")
    g.add_argument("--spectral-radius", type=float, default=0.9, help="(default: 0.9)")
    g.add_argument("--leak", type=float, default=0.3, help="leak rate in (0, 1] (default: 0.3)")
    g.add_argument("--input-scaling", type=float, default=0.5, help="(default: 0.5)")
    g.add_argument("--density", type=float, default=0.1, help="recurrent density (default: 0.1)")
    g.add_argument("--bias-scaling", type=float, default=0.2, help="(default: 0.2)")
    g = p.add_argument_group("LSM (spiking reservoir; --units and --density as for the ESN)")
    g.add_argument("--synapses", choices=("ternary", "int8"), default="ternary", help="(default: ternary)")
    g.add_argument("--tau-mem", type=float, default=8.0, help="membrane time constant, samples (default: 8)")
    g.add_argument("--tau-trace", type=float, default=8.0, help="readout trace time constant, samples (default: 8)")
    g.add_argument("--input-gain", type=float, default=0.8, help="(default: 0.8)")
    g.add_argument("--recurrent-gain", type=float, default=1.0, help="(default: 1.0)")
    g = p.add_argument_group("alerts")
    g.add_argument("--alert-on", choices=("adaptive", "calibrated"), default="adaptive",
                   help="the score the alert machine watches: the drift-adaptive one (default), or the "
                        "calibrated probability under the training residuals")
    g.add_argument("--adaptive-threshold", type=float, default=0.7,
                   help="raise at this adaptive score, clear under half of it (default: 0.7)")
    g.add_argument("--false-alarm-rate", type=float, default=1e-3,
                   help="with --alert-on calibrated: per-sample rate above threshold on normal data (default: 1e-3)")
    g.add_argument("--raise-after", type=int, default=None,
                   help="consecutive samples to raise (default: 1 on the adaptive score, 3 on the calibrated)")
    g.add_argument("--clear-after", type=int, default=5, help="consecutive samples to clear (default: 5)")
    g.add_argument("--cooldown", type=int, default=0, help="samples after a clear with no raise (default: 0)")
    g.add_argument("--novelty-margin", type=float, default=0.0,
                   help="a value is novel (adaptive score at least 0.9) only beyond the range seen so far by "
                        "this fraction of it; 0.05 is NAB's HTM spatial tolerance (default: 0)")
    g.add_argument("--novelty-refractory", type=float, default=50.0,
                   help="samples after a novel one in which further novel samples do not get the novelty "
                        "score again: one novelty episode, one onset (default: 50; 0: every one does)")


def _broker_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("broker")
    g.add_argument("--broker", metavar="URL", required=required,
                   help="mqtt://host:port or mqtts://host:port" + ("" if required else
                        " (default: $RNNEDGE_BROKER, else an embedded Mosquitto on a free loopback port)"))
    g.add_argument("--username", help="default: $RNNEDGE_MQTT_USERNAME")
    g.add_argument("--password-file", metavar="FILE", help="first line is the password (else $RNNEDGE_MQTT_PASSWORD)")
    g.add_argument("--ca", metavar="PEM", help="CA certificate to verify the broker (implies TLS)")
    g.add_argument("--cert", metavar="PEM", help="client certificate for mutual TLS")
    g.add_argument("--key", metavar="PEM", help="client certificate key")
    g.add_argument("--keepalive", type=int, help="seconds (default: the bundle's, else 30)")


def _broker(args, url: str, keepalive: int):
    from .mqtt import BrokerConfig
    return BrokerConfig.from_url(url, ca=args.ca, cert=args.cert, key=args.key, username=args.username,
                                 password_file=args.password_file, keepalive=args.keepalive or keepalive)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .targets import TARGETS
    target_names = list(TARGETS)
    parser = argparse.ArgumentParser(prog="rnnedge", description=(
        "Anomaly detection with small recurrent models (GRU, echo-state networks) on edge devices."))
    parser.add_argument("--version", action="version", version=f"rnnedge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("train", formatter_class=fmt, help="train a forecaster and calibrate its scorer",
                       description="Train a GRU or ESN next-step forecaster on a CSV, optionally prune and "
                                   "int8-quantize it, calibrate the anomaly scorer on the held-out tail, "
                                   "and write a model directory.",
                       epilog=_examples(
                           "rnnedge train data.csv --kind esn -o models/taxi-esn",
                           "rnnedge train data.csv --kind gru --hidden 64 --prune 0.5 --int8 -o models/taxi-gru",
                           "rnnedge train data.csv --rows 750 --kind esn --units 300 -o models/probation"))
    p.add_argument("data", help="CSV with a timestamp column and numeric value columns")
    p.add_argument("-o", "--out", required=True, help="model directory to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing model directory")
    p.add_argument("--rows", type=int, metavar="N", help="train on the first N rows only")
    _csv_args(p)
    _model_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("info", formatter_class=fmt, help="describe a model directory",
                       description="Kind, shapes, sizes, sparsity, int8 error, calibration and provenance "
                                   "of a model; validates every file on the way.",
                       epilog=_examples("rnnedge info models/taxi-gru", "rnnedge info models/taxi-gru --json"))
    p.add_argument("model", help="model directory")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("detect", formatter_class=fmt, help="score a recorded CSV offline and print alerts",
                       description="Step a recorded stream through the numpy reference one sample at a "
                                   "time with the model's scorer and alert machine (what the runtime "
                                   "does live) and print each alert raised and cleared.",
                       epilog=_examples("rnnedge detect models/taxi-esn data.csv",
                                        "rnnedge detect models/taxi-esn data.csv --from-row 3400 --scores out.csv",
                                        "rnnedge detect models/taxi-esn data.csv --target tflite-int8"))
    p.add_argument("model", help="model directory")
    p.add_argument("data", help="CSV with the model's feature columns")
    p.add_argument("--precision", choices=("float32", "int8"), help="default: the model's")
    p.add_argument("--target", choices=target_names,
                   help="step a converted target in its interpreter instead of the numpy reference")
    p.add_argument("--from-row", type=int, default=0, metavar="N",
                   help="rows before N only warm the state; report alerts from row N on")
    p.add_argument("--scores", metavar="CSV", help="also write timestamp,value...,score,event per row")
    _csv_args(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("profiles", formatter_class=fmt, help="list the known devices and what each allows",
                       description="The firmware profiles shipped in firmware_profiles/: runtime, delegate, "
                                   "targets, op set, flash/RAM budgets and per-step latency budget.",
                       epilog=_examples("rnnedge profiles", "rnnedge profiles --json"))
    p.add_argument("--json", action="store_true", help="print every profile as JSON")
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser("convert", formatter_class=fmt, help="emit ONNX/TFLite targets, verify them, check a profile",
                       description="Write the step graph as ONNX and TFLite targets next to the model, prove each "
                                   "one against the numpy reference over a long closed-loop stream (float32 to "
                                   "1e-5, float16 to 1e-2, int8 alert decisions on >= 99%% of steps), measure "
                                   "size, memory and step time, and with --profile check them against a device. "
                                   "Fails when a target misses its gate or the device's budget.",
                       epilog=_examples(
                           "rnnedge convert models/taxi-gru --targets onnx,onnx-int8,tflite,tflite-fp16,tflite-int8",
                           "rnnedge convert models/taxi-gru --profile raspberry-pi-4",
                           "rnnedge convert models/taxi-gru --profile esp32-s3 --data data.csv"))
    p.add_argument("model", help="model directory")
    p.add_argument("--targets", metavar="A,B", help="targets to emit (default: the profile's, else all "
                                                     "the model allows): " + ", ".join(target_names) +
                   "; nir for a spiking reservoir (its default)")
    p.add_argument("--profile", metavar="NAME", help="firmware profile name or .toml path")
    _verify_data_args(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("verify", formatter_class=fmt, help="re-prove converted targets against the reference",
                       description="Step every converted target in its real interpreter next to the numpy "
                                   "reference over a recorded stream, state fed back, and report forecast error, "
                                   "state drift and alert agreement. Exit 1 when a target misses its gate.",
                       epilog=_examples("rnnedge verify models/taxi-gru --data data.csv",
                                        "rnnedge verify models/taxi-gru --targets tflite-int8"))
    p.add_argument("model", help="model directory")
    p.add_argument("--targets", metavar="A,B", help="targets to verify (default: every converted one)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    _verify_data_args(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("deploy", formatter_class=fmt, help="convert for a device and pack one deploy bundle",
                       description="Convert and check the targets a firmware profile takes, then write one tar "
                                   "archive with the model, those targets, the profile name and a runtime "
                                   "config, every file with its sha256. `rnnedge run` takes it as it is.",
                       epilog=_examples("rnnedge deploy models/taxi-gru --profile raspberry-pi-4 -o taxi.rpi4.tar"))
    p.add_argument("model", help="model directory")
    p.add_argument("--profile", required=True, metavar="NAME", help="firmware profile name or .toml path")
    p.add_argument("-o", "--out", required=True, help="bundle file to write (.tar)")
    _verify_data_args(p)
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("evaluate", formatter_class=fmt, help="score a detector on a benchmark, strictly online",
                       description="Benchmarks, each run strictly online: per file, train and calibrate on the "
                                   "first records only, then score the rest one record at a time through the "
                                   "runtime's detector.")
    ev = p.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    q = ev.add_parser("nab", formatter_class=fmt, help="the Numenta Anomaly Benchmark (58 files)",
                      description="For each NAB file, train on the probationary period only (the first "
                                  "min(floor(0.15 n), 750) records), score every record online, write NAB's "
                                  "result layout (<detector>/<category>/<detector>_<file>.csv), choose one "
                                  "threshold per profile over the corpus and print the normalised scores "
                                  "(null detector 0, perfect 100).",
                      epilog=_examples("rnnedge evaluate nab --data data/nab --kind esn -o results/",
                                       "rnnedge evaluate nab --data data/nab --kind esn --int8 --backend tflite -o results/",
                                       "rnnedge evaluate nab --data data/nab --files nyc_taxi,art_daily -o results/"))
    q.add_argument("--data", required=True, metavar="DIR", help="the NAB folder (data/, combined_windows.json)")
    q.add_argument("-o", "--out", required=True, help="results folder")
    q.add_argument("--backend", choices=("numpy", "onnx", "tflite"), default="numpy",
                   help="score through this backend's target (default: the numpy reference)")
    q.add_argument("--files", metavar="A,B", help="only files whose name contains one of these")
    q.add_argument("--per-file", action="store_true", help="also print the per-file table")
    q.add_argument("--keep-models", action="store_true", help="keep each file's model under OUT/models/")
    q.add_argument("--plot", metavar="A,B", help="PNG plots (OUT/plots/) for files whose name contains one of these")
    _model_args(q)
    q.set_defaults(func=cmd_evaluate_nab)

    q = ev.add_parser("csv", formatter_class=fmt, help="labelled (multivariate) CSV files, one model each",
                      description="For each file: train on the first N rows, score the rest online through the "
                                  "runtime's detector and alert machine, and compare the alert state with the "
                                  "label column: point-wise precision, recall, F1 and false-alarm rate (no point "
                                  "adjustment), event-wise recall and detection delay; per file and pooled.",
                      epilog=_examples("rnnedge evaluate csv plant/*.csv --label-column anomaly --train-rows 2000",
                                       "rnnedge evaluate csv a.csv b.csv --label-column label -o results/"))
    q.add_argument("files", nargs="+", help="CSV files with a timestamp, value columns and a 0/1 label column")
    q.add_argument("--label-column", required=True, metavar="C", help="the label column (non-zero: anomalous)")
    q.add_argument("--train-rows", type=int, metavar="N", help="rows to train on (default: a fifth, at least 100)")
    q.add_argument("--timestamp-column", metavar="NAME", help="timestamp column (default: detected)")
    q.add_argument("-o", "--out", metavar="DIR", help="per-row results, mirroring the input paths")
    q.add_argument("--json", action="store_true", help="print the metrics as JSON")
    _model_args(q)
    q.set_defaults(func=cmd_evaluate_csv)

    p = sub.add_parser("run", formatter_class=fmt, help="serve a model to MQTT sensor streams and publish alerts",
                       description="The edge runtime: subscribe to sensor topics, keep one model state per "
                                   "stream, score every sample and publish raise/clear alerts at QoS 1 to "
                                   "<alerts-prefix>/<stream>; bad messages go to a dead-letter topic with the "
                                   "reason. With no --broker (nor RNNEDGE_BROKER) it starts an embedded Mosquitto "
                                   "on a free 127.0.0.1 port. With --replay it also publishes a CSV to it and "
                                   "stops when every row is processed. SIGTERM/SIGINT: drain, checkpoint, stop; "
                                   "SIGHUP: reload the model.",
                       epilog=_examples(
                           "rnnedge run taxi.rpi4.tar --broker mqtt://127.0.0.1:1883 --subscribe 'sensors/+/+'",
                           "rnnedge run models/taxi-esn --broker mqtts://hub:8883 --ca ca.pem --username edge "
                           "--password-file /etc/rnnedge/pw --checkpoint /var/lib/rnnedge/state.npz",
                           "rnnedge run models/taxi-esn --replay data.csv --replay-from-row 3000"))
    p.add_argument("model", help="model directory or deploy bundle (.tar)")
    p.add_argument("--backend", choices=("numpy", "onnx", "litert"),
                   help="default: the bundle's target, else the numpy reference")
    p.add_argument("--target", choices=target_names, help="serve this converted target")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads (default: 1)")
    _broker_args(p)
    g = p.add_argument_group("topics")
    g.add_argument("--subscribe", action="append", metavar="FILTER",
                   help="topic filter, repeatable (default: the bundle's, else sensors/+/+); the stream id is "
                        "the topic from the first wildcard on")
    g.add_argument("--qos", type=int, choices=(0, 1, 2), help="subscription QoS (default: the bundle's, else 1)")
    g.add_argument("--client-id", help="MQTT client id, fixed so the broker keeps our session (default: rnnedge-<host>)")
    g.add_argument("--alerts-prefix", default="alerts", help="alerts go to PREFIX/<stream> (default: alerts)")
    g.add_argument("--scores-prefix", metavar="PREFIX", help="also publish every score to PREFIX/<stream> (QoS 0)")
    g.add_argument("--dead-letter-topic", metavar="T", help="default: rnnedge/<client id>/deadletter")
    g.add_argument("--status-topic", metavar="T", help="retained status and last will (default: rnnedge/<client id>/status)")
    g.add_argument("--status-interval", type=float, default=10.0, metavar="S", help="(default: 10)")
    g.add_argument("--ha-discovery", action="store_true", help="announce each stream as a Home Assistant binary sensor")
    g = p.add_argument_group("engine and durability")
    g.add_argument("--checkpoint", metavar="FILE", help="checkpoint file; resumed from on start when the model matches")
    g.add_argument("--checkpoint-interval", type=float, default=10.0, metavar="S", help="(default: 10)")
    g.add_argument("--max-streams", type=int, default=4096, help="(default: 4096)")
    g.add_argument("--idle-expiry", type=float, default=0.0, metavar="S",
                   help="drop a stream's state after S seconds without samples (default: never)")
    g.add_argument("--max-gap", type=float, default=0.0, metavar="S",
                   help="a gap over S seconds between a stream's timestamps restarts its model state (default: never)")
    g.add_argument("--queue-size", type=int, default=10_000, help="hand-off queue length (default: 10000)")
    g.add_argument("--on-overflow", choices=("block", "drop-newest", "drop-oldest"), default="block",
                   help="when the queue is full (default: block, which loses nothing)")
    g.add_argument("--max-payload", type=int, default=65_536, metavar="BYTES", help="(default: 65536)")
    g.add_argument("--watch", action="store_true", help="reload the model when its file changes")
    g = p.add_argument_group("demo and tests")
    g.add_argument("--replay", metavar="CSV", help="publish this CSV to the broker and stop when it is processed")
    g.add_argument("--replay-topic", metavar="T", help="(default: sensors/replay/<file name>)")
    g.add_argument("--replay-from-row", type=int, default=0, metavar="N", help="replay rows N on (default: 0)")
    g.add_argument("--speed", type=float, default=0.0, help="replay speed-up; 0: as fast as possible (default)")
    g.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    g.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("replay", formatter_class=fmt, help="publish a CSV to an MQTT topic as a live sensor",
                       description="Publish a recorded CSV to a topic at its recorded timing divided by --speed, "
                                   "or as fast as the broker takes it, one or several rows per message, JSON or "
                                   "the binary form. At QoS 1/2 it returns when the broker has acknowledged all.",
                       epilog=_examples(
                           "rnnedge replay data.csv --broker mqtt://127.0.0.1:1883 --topic sensors/dev1/taxi --speed 100",
                           "rnnedge replay data.csv --broker mqtt://127.0.0.1:1883 --topic sensors/dev1/taxi "
                           "--rows-per-message 32 --format binary"))
    p.add_argument("data", help="CSV with a timestamp column and value columns")
    p.add_argument("--topic", required=True, help="topic to publish to")
    p.add_argument("--speed", type=float, default=0.0, help="speed-up of the recorded timing; 0: as fast as possible")
    p.add_argument("--qos", type=int, choices=(0, 1, 2), default=1, help="(default: 1)")
    p.add_argument("--rows-per-message", type=int, default=1, metavar="N", help="(default: 1)")
    p.add_argument("--format", choices=("json", "binary"), default="json", help="(default: json)")
    p.add_argument("--from-row", type=int, default=0, metavar="N", help="start at row N")
    p.add_argument("--rows", type=int, metavar="N", help="publish N rows at most")
    _broker_args(p, required=True)
    _csv_args(p)
    p.set_defaults(func=cmd_replay)
    return parser


def _host(what: str) -> None:
    try:
        import ai_edge_litert  # noqa: F401
        import ai_edge_quantizer  # noqa: F401
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(f"{what} needs {e.name}; install the host extras: {HOST_INSTALL}") from None


def _stream(args, art):
    """The raw stream targets are verified on: --data, else the rows stored at training."""
    if args.data:
        args.columns = args.columns or ",".join(art.features)
        series = _read(args)
        return series.values, f"{args.data} ({len(series.values)} rows)"
    stream = art.calibration.get("stream")
    if stream is None:
        raise RnnEdgeError(f"{art.path} stores no verification stream (trained by an older rnnedge); pass --data CSV")
    return stream, f"the last {len(stream)} training rows stored in {art.path.name}/calibration.npz"


def _target_list(text: str | None, art, profile) -> list[str]:
    """--targets as given; else the profile's (or every) target the model can make: int8 ones only
    when it was trained with --int8."""
    from .targets import TARGETS
    if text:
        return [t.strip() for t in text.split(",") if t.strip()]
    names = profile.targets if profile is not None else list(TARGETS)
    names = [n for n in names if TARGETS[n].precision != "int8" or art.activation_ranges is not None]
    if not names:
        raise RnnEdgeError(f"profile {profile.name} takes only {profile.targets}; train the model with --int8")
    return names


def _convert(args, art, names, profile):
    from converters.convert import convert, read_record
    values, source = _stream(args, art)
    print(f"model {art.model_id} ({art.config.kind}); verifying on {source}")
    try:
        done, _ = convert(art, names, values, source, profile=profile)
    finally:  # what was measured, pass or fail (targets.json is written before any gate error)
        _print_record(read_record(art.path), names)
    if profile is not None:
        print(f"fits profile {profile.name} ({profile.runtime}/{profile.delegate})")
    return done


def _print_record(record: dict | None, names: list[str]) -> None:
    from converters.verify import Parity, table

    from .report import text_table
    if not record:
        return
    rows = [("target", "file", "bytes", "convert", "ops", "weights", "activations", "step B=1 here")]
    found = [n for n in names if n in record["targets"]]
    for n in found:
        r = record["targets"][n]
        f = r["facts"]
        act = f"{f['activation_bytes']} B" + (" (TFLM arena)" if f["arena_measured"] else "")
        rows.append((n, r["file"], str(r["bytes"]), f"{r['convert_seconds']:.2f} s", str(len(f["ops"])),
                     f"{f['weight_bytes']} B", act, f"{f['step_us']:.1f} us"))
    print(text_table(rows))
    print()
    print(table([Parity(**record["targets"][n]["parity"]) for n in found]))


def cmd_profiles(args) -> int:
    from dataclasses import asdict

    from converters.profiles import all_profiles

    from .report import text_table
    profs = all_profiles()
    if args.json:
        print(json.dumps([asdict(p) for p in profs], indent=2))
        return 0
    rows = [("profile", "runtime/delegate", "targets", "flash", "ram", "step budget", "speed factor")]
    for p in profs:
        rows.append((p.name, f"{p.runtime}/{p.delegate}", ",".join(p.targets), f"{p.flash_kib} KiB",
                     f"{p.ram_kib} KiB", f"{p.step_budget_us:g} us", f"x{p.speed_factor:g}"))
    print(text_table(rows))
    from converters import neuromorphic
    rows = [("neuromorphic profile", "neurons", "synapses", "weight bits", "source")]
    for n in neuromorphic.names():
        p = neuromorphic.load(n)
        rows.append((p.name, f"{p.neurons:,}", f"{p.synapses:,}", str(p.weight_bits), p.source))
    print()
    print(text_table(rows))
    return 0


def _convert_nir(args, art) -> int:
    """A spiking reservoir to NIR, proved in Norse and in snnTorch where they are installed."""
    from converters import nir_target
    path = nir_target.write(art)
    print(f"wrote {path} ({path.stat().st_size} bytes): input {2 * art.config.input_size} spike channels -> "
          f"{art.config.units} LIF neurons, recurrent, dt {nir_target.DT} sample; re-read with nir.read")
    values, source = _stream(args, art)
    inputs, ref = nir_target.reference_spikes(art, values)
    rc = 0
    for name, run in (("Norse (norse.torch.from_nir)", nir_target.norse_spikes),
                      ("snnTorch (its NIR node converter)", nir_target.snntorch_spikes)):
        try:
            got = run(path, inputs)
        except MissingDependencyError as e:
            print(f"not proved in {name.split()[0]}: {e}")
            continue
        bad = int((got != ref).any(axis=1).sum())
        print(f"{name} on {source}: {len(ref)} steps, {int(ref.sum())} reference spikes, "
              f"{bad} step(s) differ" + (" - spike-exact" if not bad else ""))
        rc = rc or int(bad > 0)
    return rc


def _check_neuromorphic(args, art) -> int:
    from converters import neuromorphic
    from converters.check import violations_table

    from .report import text_table
    prof = neuromorphic.load(args.profile)
    need = neuromorphic.needs(art)
    rows = [("", "needs", f"{prof.name} allows")]
    rows += [(k, f"{need[k]:,}", f"{getattr(prof, k):,}") for k in ("neurons", "synapses", "weight_bits")]
    print(text_table(rows))
    bad = neuromorphic.check(prof, art)
    if bad:
        print(violations_table(bad))
        raise RnnEdgeError(f"the model does not fit {prof.name} ({prof.source})")
    print(f"fits {prof.name} by its published limits ({prof.source}); budget check only, not run on the device")
    return 0


def cmd_convert(args) -> int:
    from .artifact import load_artifact
    art = load_artifact(args.model)
    if args.targets == "nir" or (art.config.kind == "lsm" and not args.targets):
        rc = _convert_nir(args, art)
        return rc or (_check_neuromorphic(args, art) if args.profile else 0)
    _host("convert")
    from converters.profiles import load_profile
    profile = load_profile(args.profile) if args.profile else None
    _convert(args, art, _target_list(args.targets, art, profile), profile)
    return 0


def cmd_verify(args) -> int:
    from .artifact import load_artifact
    from .targets import TARGETS, open_target
    _host("verify")
    from converters.verify import table, verify
    art = load_artifact(args.model)
    names = _target_list(args.targets, art, None)
    present = [n for n in names if (art.path / TARGETS[n].file).is_file()]
    if not present:
        raise RnnEdgeError(f"{art.path}: no converted targets among {names}; run `rnnedge convert` first")
    values, source = _stream(args, art)
    results = [verify(art, n, open_target(art.path / TARGETS[n].file, n, art.config), values) for n in present]
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print(f"model {art.model_id} ({art.config.kind}); verified on {source}")
        print(table(results))
    return 0 if all(r.passed for r in results) else 1


def cmd_deploy(args) -> int:
    from dataclasses import asdict

    from .artifact import load_artifact
    from .bundle import make_bundle
    from .targets import TARGETS
    _host("deploy")
    from converters.profiles import load_profile
    art = load_artifact(args.model)
    profile = load_profile(args.profile)
    names = _target_list(None, art, profile)
    _convert(args, art, names, profile)
    serve = names[0]
    runtime = {"target": serve, "backend": TARGETS[serve].format, "precision": TARGETS[serve].precision,
               "interpreter": profile.runtime, "delegate": profile.delegate, "mqtt": asdict(profile.mqtt)}
    out = make_bundle(art.path, names, profile.name, runtime, args.out)
    print(f"wrote {out} ({out.stat().st_size} bytes): model {art.model_id}, targets {', '.join(names)}, "
          f"serves {serve} on {profile.runtime}/{profile.delegate}")
    return 0


def _train_config(args, d: int):
    from trainer.config import GRUTrainConfig, PruneConfig, TrainConfig

    from .scoring import Adaptive
    from .specs import ESNConfig, GRUConfig, LSMConfig
    if args.kind == "gru":
        model = GRUConfig(input_size=d, hidden=args.hidden, layers=args.layers)
    elif args.kind == "lsm":
        model = LSMConfig(input_size=d, units=500 if args.units is None else args.units, density=args.density,
                          weights=args.synapses, tau_mem=args.tau_mem, tau_trace=args.tau_trace,
                          input_gain=args.input_gain, recurrent_gain=args.recurrent_gain, seed=args.seed)
    else:
        model = ESNConfig(input_size=d, units=200 if args.units is None else args.units,
                          spectral_radius=args.spectral_radius, leak=args.leak,
                          input_scaling=args.input_scaling, density=args.density,
                          bias_scaling=args.bias_scaling, seed=args.seed)
    cfg = TrainConfig(model=model,
                      gru=GRUTrainConfig(epochs=args.epochs, lr=args.lr, window=args.window, patience=args.patience),
                      prune=PruneConfig(sparsity=args.prune, units=args.prune_units, steps=args.prune_steps,
                                        finetune_epochs=args.finetune_epochs),
                      int8=args.int8, seed=args.seed, val_fraction=args.val_fraction, washout=args.washout,
                      false_alarm_rate=args.false_alarm_rate, alert_on=args.alert_on,
                      adaptive_threshold=args.adaptive_threshold, raise_after=args.raise_after,
                      clear_after=args.clear_after, cooldown=args.cooldown,
                      adaptive=Adaptive(novelty_margin=args.novelty_margin,
                                        novelty_refractory=args.novelty_refractory))
    return cfg


def cmd_evaluate_csv(args) -> int:
    from .report import text_table
    _need_torch(args.kind)
    from trainer.evaluate import evaluate_csv
    from .data import read_csv
    first = read_csv(args.files[0], timestamp_column=args.timestamp_column, exclude=(args.label_column,))
    per, pooled = evaluate_csv(args.files, args.label_column, _train_config(args, first.values.shape[1]),
                               train_rows=args.train_rows, out=args.out, timestamp_column=args.timestamp_column)
    if args.json:
        print(json.dumps({"files": {f: c.metrics() for f, c in per.items()}, "pooled": pooled.metrics()}, indent=2))
        return 0
    rows = [("file", "precision", "recall", "F1", "false alarms", "events", "detected", "mean delay")]
    for name, c in [*per.items(), ("pooled", pooled)]:
        m = c.metrics()
        rows.append((name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}",
                     f"{m['false_alarm_rate']:.4f}", str(c.events), str(c.detected),
                     f"{m['mean_delay_rows']:.1f} rows" if c.detected else "-"))
    print(text_table(rows))
    return 0


def cmd_evaluate_nab(args) -> int:
    from .report import text_table
    _need_torch(args.kind)
    if args.backend != "numpy":
        _host(f"evaluate --backend {args.backend}")
    from trainer.evaluate import evaluate_nab
    only = [f.strip() for f in args.files.split(",")] if args.files else None
    rep = evaluate_nab(args.data, _train_config(args, 1), args.out, backend=args.backend, only=only,
                       keep_models=args.keep_models, plots=[p.strip() for p in args.plot.split(",")] if args.plot else [])
    if args.per_file:
        rows = [("file", "rows", "probation", "windows", "score", "TP", "FP", "FN")]
        rows += [(r["file"], str(r["rows"]), str(r["probation"]), str(r["windows"]), f"{r['score']:.3f}",
                  str(r["tp"]), str(r["fp"]), str(r["fn"])) for r in rep.files]
        print(text_table(rows))
        print()
    rows = [("profile", "threshold", "raw", "NAB score", "alerts as deployed")]
    rows += [(p, f"{rep.thresholds[p]:.6f}", f"{rep.raw[p]:.3f}", f"{rep.normalised[p]:.2f}", f"{rep.alerts[p]:.2f}")
             for p in rep.raw]
    print(f"{rep.detector}: {len(rep.files)} files in {rep.seconds:.1f} s; results in {args.out}/{rep.detector}/")
    print(text_table(rows))
    print("NAB score: the onset score, at the threshold NAB's protocol sweeps per profile over the corpus; "
          "alerts as deployed: the raise events of the model's own alert machine as the detections")
    return 0


def _need_torch(kind: str) -> None:
    if kind == "gru":
        try:
            import torch  # noqa: F401
            import tqdm  # noqa: F401
        except ImportError as e:
            raise MissingDependencyError(f"training a GRU needs {e.name}; install the host extras: "
                                         f"{HOST_INSTALL}") from None


def cmd_train(args) -> int:
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise RnnEdgeError(f"{out} exists and is not empty; pass --force to overwrite it")
    _need_torch(args.kind)
    from trainer.pipeline import train

    series = _read(args)
    if args.rows is not None:
        if args.rows < 1:
            raise RnnEdgeError(f"--rows must be positive, got {args.rows}")
        series = series.head(args.rows)
    cfg = _train_config(args, series.values.shape[1])
    path = train(series, cfg, out)
    from .artifact import load_artifact
    from .report import describe
    print(describe(load_artifact(path)))
    return 0


def cmd_info(args) -> int:
    from .artifact import load_artifact
    from .report import describe
    art = load_artifact(args.model)
    print(json.dumps(art.manifest, indent=2) if args.json else describe(art))
    return 0


def cmd_detect(args) -> int:
    import numpy as np

    from .alerts import RAISED
    from .artifact import load_artifact
    from .detector import Detector
    art = load_artifact(args.model)
    series = _read(args)
    if series.columns != art.features:
        raise RnnEdgeError(f"{args.data}: columns {series.columns} do not match the model's features "
                           f"{art.features}; pick them with --columns")
    if args.target:
        from .targets import TARGETS, open_target
        det = Detector(art, cell=open_target(art.path / TARGETS[args.target].file, args.target, art.config))
    else:
        det = Detector(art, args.precision)
    out = det.run(series.values)
    raised = 0
    served = args.target or det.cell.__class__.__name__
    print(f"model {art.model_id} ({art.config.kind}, {served}), "
          f"alerts on the {art.alerts.source} score >= {art.alerts.threshold:.6g}, {len(series.values)} rows, "
          f"alerts from row {args.from_row}")
    for t in np.flatnonzero(out["events"] != 0):
        if t < args.from_row:
            continue
        event = "raised" if out["events"][t] == RAISED else "cleared"
        raised += event == "raised"
        vals = ", ".join(f"{c}={v:.6g}" for c, v in zip(series.columns, series.values[t]))
        print(f"{_iso(series.timestamps[t])}  row {t:>6}  {event:<7}  score {out['score'][t]:.6f}  "
              f"adaptive {out['adaptive'][t]:.3f}  {vals}")
    print(f"{raised} alert(s) raised")
    if args.scores:
        with open(args.scores, "w") as f:
            f.write(",".join(["timestamp", *series.columns, "score", "adaptive", "event"]) + "\n")
            for t in range(len(series.values)):
                vals = ",".join(f"{v:.9g}" for v in series.values[t])
                f.write(f"{_iso(series.timestamps[t])},{vals},{out['score'][t]:.9f},{out['adaptive'][t]:.9f},"
                        f"{int(out['events'][t])}\n")
    return 0


def cmd_replay(args) -> int:
    from .replay import replay
    series = _read(args)
    ts, values = series.timestamps[args.from_row:], series.values[args.from_row:]
    if args.rows is not None:
        ts, values = ts[:args.rows], values[:args.rows]
    if not len(ts):
        raise RnnEdgeError(f"{args.data}: no rows from row {args.from_row} on")
    st = replay(ts, values, _broker(args, args.broker, 30), args.topic, speed=args.speed, qos=args.qos,
                rows_per_message=args.rows_per_message, fmt=args.format)
    print(f"published {st.rows} rows in {st.messages} messages to {args.topic} in {st.seconds:.2f} s "
          f"({st.rate:.0f} msg/s), QoS {args.qos}" + (f", all {st.acknowledged} acknowledged" if args.qos else ""))
    return 0


def _print_alert(alert: dict) -> None:
    top = alert["channels"][0]
    print(f"{alert['time'][:19].replace('T', ' ')}  {alert['stream']}  {alert['event']:<7}  "
          f"score {alert['score']:.6f}  adaptive {alert['adaptive']:.3f}  "
          f"{top['name']}={top['value']:.6g} (expected {top['expected']:.6g})",
          flush=True)


def cmd_run(args) -> int:
    import logging
    import os
    import signal
    import tempfile

    from . import broker
    from .engine import EngineConfig
    from .runtime import Runtime, RuntimeConfig
    from .serve import load

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    work = tempfile.TemporaryDirectory(prefix="rnnedge-run-")
    embedded = None
    try:
        def loader():
            return load(args.model, backend=args.backend, target=args.target, workdir=work.name,
                        threads=args.threads)

        served = loader()
        mq = served.bundle.runtime.get("mqtt", {}) if served.bundle else {}
        url = args.broker or os.environ.get("RNNEDGE_BROKER")
        if url is None:
            embedded = broker.embedded(Path(work.name) / "broker")
            url = embedded.url
            print(f"embedded {embedded.name} on {url} (pid {embedded.proc.pid})", file=sys.stderr)
        subscribe = tuple(args.subscribe or [mq.get("subscribe", "sensors/+/+")])
        cfg = RuntimeConfig(subscribe=subscribe, qos=args.qos if args.qos is not None else mq.get("qos", 1),
                            **({"client_id": args.client_id} if args.client_id else {}),
                            alerts_prefix=args.alerts_prefix, scores_prefix=args.scores_prefix,
                            dead_letter_topic=args.dead_letter_topic, status_topic=args.status_topic,
                            status_interval_s=args.status_interval, checkpoint=args.checkpoint,
                            checkpoint_interval_s=args.checkpoint_interval, queue_size=args.queue_size,
                            on_overflow=args.on_overflow, max_payload=args.max_payload, watch=args.watch,
                            ha_discovery=args.ha_discovery)
        eng = EngineConfig(max_streams=args.max_streams, idle_expiry_s=args.idle_expiry, max_gap_s=args.max_gap)
        rt = Runtime(served, _broker(args, url, mq.get("keepalive_s", 30)), cfg, eng, loader=loader,
                     on_alert=_print_alert, watch_path=args.model)
        signal.signal(signal.SIGTERM, lambda *a: rt.stop_event.set())
        signal.signal(signal.SIGINT, lambda *a: rt.stop_event.set())
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *a: rt.reload_event.set())
        until = None
        if args.replay:
            until = _start_replay(args, rt)
        if args.duration:
            end = time.monotonic() + args.duration
            inner = until
            until = (lambda r: time.monotonic() >= end or (inner is not None and inner(r)))
        counters = rt.run(until=until)
    finally:
        if embedded is not None:
            embedded.close()
        work.cleanup()
    print(f"{counters['samples']} samples from {len(rt.engine.slots)} stream(s), {counters['raised']} alert(s) "
          f"raised, {counters['cleared']} cleared, {counters['dead_lettered']} dead-lettered, "
          f"{counters['dropped']} dropped", file=sys.stderr)
    return 0


def _start_replay(args, rt):
    """Publish --replay in a thread once the runtime is subscribed; `until` for Runtime.run."""
    import threading

    from .data import read_csv
    from .replay import replay
    series = read_csv(args.replay, columns=rt.engine.features)
    ts, values = series.timestamps[args.replay_from_row:], series.values[args.replay_from_row:]
    topic = args.replay_topic or f"sensors/replay/{Path(args.replay).stem}"
    done, failed = threading.Event(), []

    def publish():
        try:
            if not rt.subscribed.wait(30):
                raise RnnEdgeError("the runtime did not subscribe within 30 s")
            replay(ts, values, rt.broker, topic, speed=args.speed, qos=1)
        except RnnEdgeError as e:
            failed.append(e)
        finally:
            done.set()

    threading.Thread(target=publish, name="rnnedge-replay", daemon=True).start()
    print(f"replaying {len(ts)} rows of {args.replay} to {topic}", file=sys.stderr)

    def until(r) -> bool:
        if failed:
            raise failed[0]
        return done.is_set() and r.counters["received"] >= len(ts) and r.queue.empty()
    return until


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RnnEdgeError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
