"""Firmware profiles: one TOML file per target device, shipped as package data.

`names()` lists the profiles this install carries; `path(name)` locates one.
"""

from __future__ import annotations

from pathlib import Path

PROFILE_DIR = Path(__file__).resolve().parent


def names() -> list[str]:
    """The profile names shipped with this install (file stems), sorted."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def path(name: str) -> Path:
    """The TOML file of profile `name` (it may not exist; the loader says so)."""
    return PROFILE_DIR / f"{name}.toml"
