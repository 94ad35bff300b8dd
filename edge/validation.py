"""Parameter checks with one message shape, used by every config dataclass.

    The 'hidden' parameter of GRUConfig must be an int in [1, 4096]. Got 0 instead.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from .errors import ConfigError


def _fail(owner: str, name: str, what: str, value: object) -> None:
    raise ConfigError(f"The {name!r} parameter of {owner} must be {what}. Got {value!r} instead.")


def check_int(owner: str, name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or not lo <= value <= hi:
        _fail(owner, name, f"an int in [{lo}, {hi}]", value)


def check_float(owner: str, name: str, value: object, lo: float, hi: float, *,
                lo_open: bool = False, hi_open: bool = False) -> None:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (lo < value if lo_open else lo <= value) and (value < hi if hi_open else value <= hi)
    if not ok:
        _fail(owner, name, f"a float in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}", value)


def check_choice(owner: str, name: str, value: object, choices: tuple) -> None:
    if value not in choices:
        _fail(owner, name, "one of " + ", ".join(repr(c) for c in choices), value)
