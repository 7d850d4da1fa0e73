"""`python -m core ...` runs the command line (core.cli.main)."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
