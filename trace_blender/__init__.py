"""TRACE for Blender: drag a video in, get every tracked person as an animated SMPL character.

Blender extension entry point. Importing this package does not import bpy (the process-driving
code in `runner` is tested without Blender); `register()` loads the Blender side.
Headless: `python -m trace_blender import RESULT [--fbx ...]` (see `cli`).
"""
from __future__ import annotations


def register() -> None:
    from . import registration

    registration.register()


def unregister() -> None:
    from . import registration

    registration.unregister()
