"""Neuromorphic device profiles (firmware_profiles/neuromorphic/<name>.toml) and the budget check
of a spiking reservoir against one: neurons, synapses (nonzero, input ones included), the weight
bits its synapses need, and neurons per core. Keys, all required: name description source neurons
synapses weight_bits cores (informational). An unknown, missing or mistyped key is refused with
file and key named."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

import firmware_profiles
from edge.artifact import Artifact
from edge.errors import RnnEdgeError

from .check import Violation
from .profiles import ProfileError

FOLDER = firmware_profiles.PROFILE_DIR / "neuromorphic"


@dataclass(frozen=True)
class NeuromorphicProfile:
    name: str
    description: str
    source: str
    neurons: int
    synapses: int
    weight_bits: int
    cores: int


def names() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.toml"))


def load(name_or_path: str | Path) -> NeuromorphicProfile:
    p = Path(name_or_path)
    file = p if p.suffix == ".toml" else FOLDER / f"{name_or_path}.toml"
    if not file.is_file():
        raise ProfileError(f"no neuromorphic profile {str(name_or_path)!r}; shipped: {', '.join(names())}")
    try:
        table = tomllib.loads(file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ProfileError(f"{file}: not valid TOML: {e}") from None
    known = {f.name: f.type for f in fields(NeuromorphicProfile)}
    for key in table:
        if key not in known:
            raise ProfileError(f"{file}: unknown key {key!r}; expected {', '.join(known)}")
    for key, kind in known.items():
        if key not in table:
            raise ProfileError(f"{file}: missing key {key!r}")
        want = str if kind == "str" else int
        value = table[key]
        if not isinstance(value, want) or isinstance(value, bool) or (want is int and value <= 0):
            raise ProfileError(f"{file}: key {key!r} must be {'a string' if want is str else 'a positive integer'}, "
                               f"got {value!r}")
    return NeuromorphicProfile(**table)


def needs(art: Artifact) -> dict[str, int]:
    """What a spiking reservoir asks of a device."""
    if art.config.kind != "lsm":
        raise RnnEdgeError(f"{art.path}: neuromorphic profiles take spiking reservoirs (--kind lsm), "
                           f"not {art.config.kind}")
    w = art.weights
    bits = 2 if art.config.weights == "ternary" else 8
    return {"neurons": art.config.units,
            "synapses": int(np.count_nonzero(w["w.q"]) + np.count_nonzero(w["w_in.q"])),
            "weight_bits": bits}


def check(profile: NeuromorphicProfile, art: Artifact) -> list[Violation]:
    need = needs(art)
    out = []
    for key in ("neurons", "synapses", "weight_bits"):
        if need[key] > getattr(profile, key):
            out.append(Violation("nir", key, f"{need[key]:,}", f"{getattr(profile, key):,}"))
    return out
