"""Helpers the command modules share: reading CSVs, broker settings, timestamps, host-only checks."""

from __future__ import annotations

from datetime import datetime, timezone

from ..errors import MissingDependencyError, RnnEdgeError


HOST_INSTALL = "pip install torch==2.13.0 'rnnedge[host]'"


def _read_options(args) -> dict:
    """`read_csv`'s keyword options from the input CSV flags (`parser._csv_args`)."""
    return {"timestamp_column": args.timestamp_column, "columns": args.columns.split(",") if args.columns else None,
            "sep": args.sep, "on_missing": args.on_missing, "on_unordered": args.on_unordered}


def _read(args):
    from ..data import read_csv
    return read_csv(args.data, **_read_options(args))


def _broker(args, url: str, keepalive: int):
    from ..mqtt import BrokerConfig
    return BrokerConfig.from_url(url, ca=args.ca, cert=args.cert, key=args.key, username=args.username,
                                 password_file=args.password_file, keepalive=args.keepalive or keepalive,
                                 protocol=args.mqtt_version, session_expiry_s=args.session_expiry)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


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
