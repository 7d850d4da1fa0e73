"""`python -m core ...` runs the command line (core.cli.main)."""
from .cli import exit_status, main

if __name__ == "__main__":
    raise SystemExit(exit_status(main()))
