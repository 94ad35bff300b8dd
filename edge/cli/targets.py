"""`profiles`, `convert`, `verify` and `deploy`: converter targets, their proof and device budgets."""

from __future__ import annotations

import json

from ..errors import MissingDependencyError, RnnEdgeError
from .common import _host, _stream


def _target_list(text: str | None, art, profile) -> list[str]:
    """--targets as given; else the profile's (or every) target the model can make: int8 ones only
    when it was trained with --int8."""
    from ..targets import TARGETS
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

    from ..report import text_table
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

    from ..report import text_table
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

    from ..report import text_table
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
    from ..artifact import load_artifact
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
    from ..artifact import load_artifact
    from ..targets import GPU_TARGETS, TARGETS, open_target, preflight, recorded
    from converters.verify import table, verify
    art = load_artifact(args.model)
    names = _target_list(args.targets, art, None)
    if args.accelerator == "gpu" and not args.targets:
        names = [n for n in names if n in GPU_TARGETS]
    present = [n for n in names if (art.path / TARGETS[n].file).is_file()]
    if not present:
        raise RnnEdgeError(f"{art.path}: no converted targets among {names}; run `rnnedge convert` first")
    values, source = _stream(args, art)
    runtime = lambda n: args.runtime if TARGETS[n].format == "tflite" else None  # noqa: E731
    for n in present:  # a file no record vouches for is first prepared where a crash cannot take us down
        if not recorded(art.path, n):
            preflight(art.path, n, runtime(n))
    results = [verify(art, n, open_target(art.path / TARGETS[n].file, n, art.config, accelerator=args.accelerator,
                                          runtime=runtime(n)), values) for n in present]
    if args.json:
        print(json.dumps([{**r.to_dict(), "accelerator": args.accelerator} for r in results], indent=2))
    else:
        on = "LiteRT's GPU accelerator" if args.accelerator == "gpu" else "the CPU"
        print(f"model {art.model_id} ({art.config.kind}); verified on {source}, targets run on {on}")
        print(table(results))
    return 0 if all(r.passed for r in results) else 1


def cmd_deploy(args) -> int:
    from dataclasses import asdict

    from ..artifact import load_artifact
    from ..bundle import make_bundle
    from ..targets import TARGETS
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
