"""`python -m core.verify {maps,tracking} ...`: compare our outputs with the official reference data.

Each subcommand lives in its own module exposing ``register(subparsers)`` (adds its parser with
``set_defaults(func=run)``) and ``run(args) -> int`` (the process exit status). Modules are imported
lazily so that one subcommand still works while another one's module is absent or broken.
"""
from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "SUBCOMMANDS"]

#: subcommand -> (module, one-line help used when the module cannot be imported)
SUBCOMMANDS = {
    "maps": ("core.verify.maps", "run the network on a preprocessed clip and compare every reference array"),
    "tracking": ("core.verify.tracking", "compare 3D-centre parsing, tracker and memory unit with the reference"),
}


def _unavailable(name: str, error: BaseException):
    def run(_args: argparse.Namespace) -> int:
        print(f"core.verify {name}: this check is not available ({type(error).__name__}: {error})", file=sys.stderr)
        return 2
    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core.verify", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}")
    subparsers.required = True
    for name, (module_name, summary) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
            register = module.register
        except Exception as error:   # absent or broken: only this subcommand is affected, and says why
            stub = subparsers.add_parser(name, help=f"{summary} (unavailable: {error})")
            stub.add_argument("rest", nargs=argparse.REMAINDER)
            stub.set_defaults(func=_unavailable(name, error))
            continue
        register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))
