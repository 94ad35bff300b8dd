"""`run` and `replay`: the MQTT edge runtime and its recorded-data publisher."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import RnnEdgeError
from .common import _broker, _read


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

    from .. import broker
    from ..engine import EngineConfig
    from ..runtime import Runtime, RuntimeConfig
    from ..serve import load

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    work = tempfile.TemporaryDirectory(prefix="rnnedge-run-")
    embedded = None
    try:
        def loader():
            return load(args.model, backend=args.backend, target=args.target, workdir=work.name,
                        threads=args.threads, accelerator=args.accelerator)

        served = loader()
        mq = served.bundle.runtime.get("mqtt", {}) if served.bundle else {}
        url = args.broker or os.environ.get("RNNEDGE_BROKER")
        if url is None:
            embedded = broker.embedded(Path(work.name) / "broker")
            url = embedded.url
            print(f"embedded {embedded.name} on {url} (pid {embedded.proc.pid})", file=sys.stderr)
            if embedded.name == "amqtt" and args.mqtt_version == "5":
                raise RnnEdgeError("the embedded amqtt broker speaks MQTT 3.1.1 only; install Mosquitto for "
                                   "--mqtt-version 5")
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

    from ..data import read_csv
    from ..replay import replay
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


def cmd_replay(args) -> int:
    from ..replay import replay
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
