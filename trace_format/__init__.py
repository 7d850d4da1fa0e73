"""TRACE for Blender's file formats and shared math: the only code both the torch core and the
Blender add-on import (standard library + numpy, never torch or bpy).

Modules: `schema` (result dataclasses and constants), `validate` (content checks), `npz` (write /
read the result file, upgrades of older versions), `trace2` (the official trace2 result reader),
`safe_pickle` (unpickling that cannot run code), `smpl_file` (SMPL model file reader), `rotations`,
`skeleton`, `fk` (rig math), `atomic` (atomic file writes), `protocol` (exit codes and progress
events of the core process). The add-on ships this package as a bundled wheel (build.py).
"""

__version__ = "0.1.0"
