"""Firmware profiles: what one device allows, read from firmware_profiles/<name>.toml.

Every key is required and typed; an unknown key, a missing key or a wrong type is refused with the
file and the key named, so a typo never silently loosens a budget.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import firmware_profiles
from edge.errors import ConfigError
from edge.targets import TARGETS

RUNTIMES = ("onnxruntime", "litert", "tflite-micro")
PRECISIONS = ("float32", "float16", "int8")


class ProfileError(ConfigError):
    """A firmware profile that is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class MqttDefaults:
    broker: str
    subscribe: str
    qos: int
    keepalive_s: int


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    arch: str
    runtime: str           # onnxruntime | litert | tflite-micro
    delegate: str          # how that runtime executes: xnnpack, gpu, cuda, tensorrt, edgetpu, cmsis-nn, ...
    targets: list[str]     # the targets this device takes, preferred first
    precisions: list[str]
    ops: list[str]         # every op a target may use, in its format's names
    flash_kib: int         # storage budget for the model file(s)
    ram_kib: int           # memory budget for the model at run time
    weights_in: str        # "flash" (executed in place, MCU) or "ram" (loaded)
    sample_rate_hz: float
    step_budget_us: float  # per-step latency budget for one stream
    speed_factor: float    # device step time ~= step time measured on the host x speed_factor
    mqtt: MqttDefaults


_TYPES = {str: "a string", int: "an integer", float: "a number", list: "a list of strings"}


def _check(file: Path, key: str, value: object, kind: type) -> object:
    if kind is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:  # bool is an int in Python but never a number here; an integer is a fine float
        ok = isinstance(value, (int, float) if kind is float else kind) and not isinstance(value, bool)
    if not ok:
        raise ProfileError(f"{file}: key {key!r} must be {_TYPES[kind]}, got {value!r}")
    return float(value) if kind is float else value


def _typed(file: Path, cls, table: dict, prefix: str = "") -> dict:
    known = {f.name: f for f in fields(cls)}
    for key in table:
        if key not in known:
            raise ProfileError(f"{file}: unknown key {prefix + key!r}; expected {', '.join(known)}")
    out = {}
    for name, f in known.items():
        if name not in table:
            raise ProfileError(f"{file}: missing key {prefix + name!r}")
        if f.type == "MqttDefaults":
            if not isinstance(table[name], dict):
                raise ProfileError(f"{file}: key {prefix + name!r} must be a table [{name}]")
            out[name] = MqttDefaults(**_typed(file, MqttDefaults, table[name], f"{name}."))
        else:
            kind = {"str": str, "int": int, "float": float, "list[str]": list}[f.type]
            out[name] = _check(file, prefix + name, table[name], kind)
    return out


def load_profile(name_or_path: str | Path) -> Profile:
    """A shipped profile by name (`raspberry-pi-4`) or any profile file by path."""
    p = Path(name_or_path)
    file = p if p.suffix == ".toml" else firmware_profiles.path(str(name_or_path))
    if not file.is_file():
        raise ProfileError(f"no firmware profile {str(name_or_path)!r}; shipped profiles: "
                           f"{', '.join(firmware_profiles.names())}")
    try:
        table = tomllib.loads(file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ProfileError(f"{file}: not valid TOML: {e}") from None
    prof = Profile(**_typed(file, Profile, table))
    if prof.runtime not in RUNTIMES:
        raise ProfileError(f"{file}: key 'runtime' must be one of {RUNTIMES}, got {prof.runtime!r}")
    if prof.weights_in not in ("flash", "ram"):
        raise ProfileError(f"{file}: key 'weights_in' must be 'flash' or 'ram', got {prof.weights_in!r}")
    for key, allowed in (("targets", TARGETS), ("precisions", PRECISIONS)):
        bad = [v for v in getattr(prof, key) if v not in allowed]
        if bad or not getattr(prof, key):
            raise ProfileError(f"{file}: key {key!r} must list some of {', '.join(allowed)}; got {bad or '[]'}")
    for t in prof.targets:
        if TARGETS[t].precision not in prof.precisions:
            raise ProfileError(f"{file}: target {t!r} is {TARGETS[t].precision}, not in precisions {prof.precisions}")
    for key in ("flash_kib", "ram_kib", "sample_rate_hz", "step_budget_us", "speed_factor"):
        if getattr(prof, key) <= 0:
            raise ProfileError(f"{file}: key {key!r} must be positive, got {getattr(prof, key)}")
    if prof.mqtt.qos not in (0, 1, 2):
        raise ProfileError(f"{file}: key 'mqtt.qos' must be 0, 1 or 2, got {prof.mqtt.qos}")
    return prof


def all_profiles() -> list[Profile]:
    return [load_profile(n) for n in firmware_profiles.names()]
