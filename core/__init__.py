"""TRACE for Blender: inference core (torch side).

This package root stays import-light on purpose (no torch, no bpy). The file formats and the rig
math the Blender add-on shares live in the separate package `trace_format`, which never imports core.
"""

from trace_format import __version__

__all__ = ["__version__"]
