"""TRACE for Blender: inference core.

This package root stays import-light on purpose (no torch, no bpy): the result-file reader and the
rig math are imported by the Blender extension, which ships without torch.
"""

__version__ = "0.1.0"
