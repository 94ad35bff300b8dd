"""The `rnnedge` command. Library errors become one line on stderr and exit 1; usage errors exit 2.

Host-only subcommands import the trainer lazily and say how to install what they need.
"""

from __future__ import annotations

import sys

from ..errors import RnnEdgeError
from .parser import build_parser

__all__ = ["build_parser", "main"]


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
