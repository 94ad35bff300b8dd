"""A progress bar on stderr while training, silent when stderr is not a terminal."""

from __future__ import annotations

from typing import Iterable


def progress(it: Iterable, desc: str):
    from tqdm.auto import tqdm
    return tqdm(it, desc=desc, leave=False, disable=None, dynamic_ncols=True)
