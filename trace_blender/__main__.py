"""`python -m trace_blender import RESULT ...` (see trace_blender.cli)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
