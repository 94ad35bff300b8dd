"""The argument parser of every `rnnedge` subcommand."""

from __future__ import annotations

import argparse

from ..quant import HEADROOM
from ..scoring import NORMS, Adaptive
from ..specs import TOPOLOGIES, ESNConfig
from ..targets import ACCELERATORS
from .models import cmd_detect, cmd_evaluate_csv, cmd_evaluate_nab, cmd_info, cmd_train
from .serve import cmd_replay, cmd_run
from .targets import cmd_convert, cmd_deploy, cmd_profiles, cmd_verify

_ADAPTIVE = Adaptive()  # the adaptive score's defaults, stated once (edge.scoring)


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


def _backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("numpy", "onnx", "tflite", "tflite-micro"), default="numpy",
                   help="score through this backend's target (default: the numpy reference); tflite-micro: "
                        "the TFLite target in TFLite Micro's interpreter, as a microcontroller runs it")


def _verify_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="CSV", help="stream to verify on (default: the rows stored at training)")
    _csv_args(p)


def _model_args(p: argparse.ArgumentParser) -> None:
    """The model, training and alert options `train` and `evaluate` share."""
    p.add_argument("--kind", choices=("esn", "gru", "lsm"), default="esn",
                   help="model kind: echo-state network, GRU, or spiking reservoir (default: esn)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="held-out tail (default: 0.2)")
    p.add_argument("--calibrate-on", choices=("all", "heldout"), default="all",
                   help="the training rows whose forecast residuals calibrate the score: all of them after "
                        "the washout (default), or the held-out tail only")
    p.add_argument("--distance", choices=NORMS, default="rms",
                   help="how a row's channels make one distance from their standardised residuals: their RMS "
                        "(default), or the largest, so a fault in one of many channels is not diluted; one "
                        "channel: the same")
    p.add_argument("--washout", type=int, default=50, help="samples before scores count (default: 50)")
    p.add_argument("--int8", action="store_true", help="quantize to int8 and serve int8 by default")
    p.add_argument("--int8-headroom", type=float, default=HEADROOM,
                   help="int8 range of an ESN's input, output and the tensors between that grow with the "
                        "input, as a multiple of the training rows' range: room for values beyond them, at "
                        f"a coarser grid (default: {HEADROOM:g})")
    g = p.add_argument_group("GRU")
    g.add_argument("--hidden", type=int, default=32, help="hidden units per layer (default: 32)")
    g.add_argument("--layers", type=int, default=1, choices=(1, 2), help="GRU layers (default: 1)")
    g.add_argument("--epochs", type=int, default=150, help="max epochs, early-stopped (default: 150)")
    g.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default: 3e-3)")
    g.add_argument("--window", type=int, default=64, help="truncated-BPTT window (default: 64)")
    g.add_argument("--patience", type=int, default=12, help="early-stopping patience in epochs (default: 12)")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where torch trains: auto (default: CUDA where torch sees a GPU, else the CPU), cpu, "
                        "or cuda (refused without a GPU). See README, training on a GPU")
    g.add_argument("--prune", type=float, default=0.0, metavar="S", help="target sparsity per matrix, 0-0.99")
    g.add_argument("--prune-units", type=float, default=0.0, metavar="F",
                   help="fraction of hidden units to remove (structured)")
    g.add_argument("--prune-steps", type=int, default=4, help="gradual pruning steps (default: 4)")
    g.add_argument("--finetune-epochs", type=int, default=8, help="epochs after each pruning step (default: 8)")
    g = p.add_argument_group("ESN")
    g.add_argument("--units", type=int, help="reservoir units (default: 200; 500 for --kind lsm)")
    g.add_argument("--topology", choices=TOPOLOGIES, default=ESNConfig.topology,
                   help="the reservoir's wiring: cycle (default: one ring, every weight the spectral radius) or "
                        "random (sparse at --density; NAB scores vary more with --seed; README)")
    g.add_argument("--spectral-radius", type=float, default=ESNConfig.spectral_radius,
                   help=f"(default: {ESNConfig.spectral_radius:g})")
    g.add_argument("--leak", type=float, default=0.3, help="leak rate in (0, 1] (default: 0.3)")
    g.add_argument("--input-scaling", type=float, default=0.5, help="(default: 0.5)")
    g.add_argument("--density", type=float,
                   help="recurrent density of a random reservoir or an LSM (default: 0.1)")
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
    g.add_argument("--adaptive-threshold", type=float, default=0.55,
                   help="raise at this adaptive score, clear under half of it (default: 0.55)")
    g.add_argument("--false-alarm-rate", type=float, default=1e-3,
                   help="with --alert-on calibrated: per-sample rate above threshold on normal data (default: 1e-3)")
    g.add_argument("--raise-after", type=int, default=None,
                   help="consecutive samples to raise (default: 1 on the adaptive score, 3 on the calibrated)")
    g.add_argument("--clear-after", type=int, default=5, help="consecutive samples to clear (default: 5)")
    g.add_argument("--cooldown", type=int, default=0, help="samples after a clear with no raise (default: 0)")
    g.add_argument("--novelty-margin", type=float, default=_ADAPTIVE.novelty_margin,
                   help="a value is novel (adaptive score at least 0.9) only beyond the range seen so far by "
                        "this fraction of it; 0.05 is NAB's HTM spatial tolerance (default: %(default)s)")
    g.add_argument("--novelty-refractory", type=float, default=_ADAPTIVE.novelty_refractory,
                   help="samples after a novel one in which further novel samples do not get the novelty "
                        "score again: one novelty episode, one onset (default: %(default)s; 0: every one does)")
    g.add_argument("--novelty-z", type=float, default=_ADAPTIVE.novelty_z,
                   help="a novel sample gets the novelty score only where its z is at least this: new "
                        "values the forecaster saw coming are not anomalies (default: %(default)s; 0: every one)")
    g.add_argument("--fatigue", type=float, default=_ADAPTIVE.fatigue,
                   help="alert fatigue: z is divided by 1 + this x the stream's load (its recent onsets at "
                        "--fatigue-z or more), so a burst that keeps coming stops alerting (default: "
                        "%(default)s; 0: off)")
    g.add_argument("--fatigue-z", type=float, default=_ADAPTIVE.fatigue_z,
                   help="the z an onset needs to add to its stream's fatigue load (default: %(default)s)")
    g.add_argument("--fatigue-horizon", type=float, default=_ADAPTIVE.fatigue_horizon,
                   help="samples over which a stream's fatigue load decays (default: %(default)s)")
    g.add_argument("--surprise-cap", type=float, default=_ADAPTIVE.surprise_cap,
                   help="cap the calibrated surprise -log10(1 - score) at this before the adaptive score: "
                        "beyond it the calibrated tail is extrapolation (default: %(default)s; 0: no cap)")
    g.add_argument("--stat-clip", type=float, default=_ADAPTIVE.clip,
                   help="a surprise teaches the stream's running mean and variance at most this many of its "
                        "standard deviations, so an anomaly does not raise the bar for the next one; with "
                        "--fatigue 0 for sensors whose faults repeat (default: %(default)s: off)")
    g.add_argument("--profile-weight", type=float, default=0.6,
                   help="score each sample also against its stream's daily profile (the same time on "
                        "earlier days, or of earlier weeks where the training rows span two weeks; learned "
                        "online per stream); its z counts at this weight against the forecaster's. Needs "
                        "training rows spanning a day (default: 0.6; 0: off)")
    g.add_argument("--context-margin", type=float, default=0.1,
                   help="flag as novel a block of samples whose level lies this share of the training range "
                        "beyond the levels its stream reached with the same recent shape (contextual novelty; "
                        "about 37 kB of memory a stream and channel). Needs 104 training rows "
                        "(default: %(default)s; -1: off)")


def _accelerator_arg(p: argparse.ArgumentParser, what: str = "step on the CPU (default), or serve a float "
                                                           "TFLite target (tflite-fp16 unless --target) on") -> None:
    p.add_argument("--accelerator", choices=ACCELERATORS, default="cpu",
                   help=f"{what} LiteRT's GPU accelerator (WebGPU over Vulkan on Linux; needs ai-edge-litert 2 "
                        "and a GPU driver)")


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
    g.add_argument("--mqtt-version", choices=("3.1.1", "5"), default="3.1.1", help="protocol (default: 3.1.1)")
    g.add_argument("--session-expiry", type=int, default=86400, metavar="S",
                   help="MQTT 5: seconds the broker keeps our session, and queues QoS 1 messages for it, after "
                        "a disconnect (default: 86400; 3.1.1 sessions last until the broker's own limit)")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from ..targets import TARGETS
    target_names = list(TARGETS)
    parser = argparse.ArgumentParser(prog="rnnedge", description=(
        "Anomaly detection with small recurrent models (GRU, echo-state networks) on edge devices."))
    parser.add_argument("--version", action="version", version=f"rnnedge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("train", formatter_class=fmt, help="train a forecaster and calibrate its scorer",
                       description="Train a GRU or ESN next-step forecaster on a CSV, optionally prune and "
                                   "int8-quantize it, calibrate the anomaly scorer on its training residuals, "
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
    _accelerator_arg(p)
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
                                   "1e-5, float16 to 1e-2, int8 alert decisions on >= 99% of steps), measure "
                                   "size, memory and step time, and with --profile check them against a device (and "
                                   "prove them in its runtime: TFLite Micro for a microcontroller). "
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
                                        "rnnedge verify models/taxi-gru --targets tflite-int8",
                                        "rnnedge verify models/taxi-esn --targets tflite-int8 --runtime tflite-micro",
                                        "rnnedge verify models/taxi-gru --accelerator gpu"))
    p.add_argument("model", help="model directory")
    p.add_argument("--targets", metavar="A,B", help="targets to verify (default: every converted one; with "
                                                    "--accelerator gpu, every converted float TFLite one)")
    _accelerator_arg(p, "run the targets on the CPU (default), or the float TFLite targets on")
    p.add_argument("--runtime", choices=("litert", "tflite-micro"), default="litert",
                   help="the interpreter of the TFLite targets: LiteRT (default) or TFLite Micro (a "
                        "microcontroller's runtime and kernels, run here; needs tflite-micro)")
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
    _backend_arg(q)
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
                                       "rnnedge evaluate csv a.csv b.csv --label-column label -o results/",
                                       "rnnedge evaluate csv plant/*.csv --label-column anomaly --int8 "
                                       "--backend tflite"))
    q.add_argument("files", nargs="+", help="CSV files with a timestamp, value columns and a 0/1 label column")
    q.add_argument("--label-column", required=True, metavar="C", help="the label column (1: anomalous, 0: normal)")
    q.add_argument("--train-rows", type=int, metavar="N", help="rows to train on (default: a fifth, at least 100)")
    q.add_argument("-o", "--out", metavar="DIR", help="per-row results, mirroring the input paths")
    q.add_argument("--json", action="store_true", help="print the metrics as JSON")
    _backend_arg(q)
    _csv_args(q)
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
    p.add_argument("--backend", choices=("numpy", "onnx", "litert", "tflite-micro"),
                   help="default: the bundle's target, else the numpy reference; tflite-micro: a TFLite target "
                        "in TFLite Micro's interpreter (a microcontroller's kernels, run here)")
    p.add_argument("--target", choices=target_names, help="serve this converted target")
    _accelerator_arg(p)
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
