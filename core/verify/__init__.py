"""`python -m core.verify {maps,tracking} ...`: compare our outputs with the official reference data.

Each subcommand lives in its own module exposing ``register(subparsers)`` (adds its parser with
``set_defaults(func=run)``) and ``run(args) -> int`` (the process exit status).
"""
from __future__ import annotations

import argparse

from . import maps, tracking

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core.verify", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="{maps,tracking}")
    subparsers.required = True
    maps.register(subparsers)
    tracking.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))
