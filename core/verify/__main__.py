"""Entry point of `python -m core.verify`."""
import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
