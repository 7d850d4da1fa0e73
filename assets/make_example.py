"""Make assets/example.trace.npz: a small TRACE result from real motion capture, world stage applied.

    python assets/make_example.py

Two people of the CMU motion capture database (subject 131, clips 02 and 01: tests/data/mocap,
licence there) walking side by side for 4 s at 30 fps, seen by a static camera, with TRACE-like
estimation errors (the `low` level of tests/helpers/world_quality.py), then the world stage (floor
alignment, denoising, foot-skate cleanup) as `python -m core run` applies it. The file lets the
Blender half be tried without weights or a GPU:
`python -m trace_blender import assets/example.trace.npz --fbx example.fbx --preset unity`.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from core.world.postprocess import apply_world_processing  # noqa: E402
from tests.helpers.world_quality import LOW, side_by_side_scene, trace_result  # noqa: E402
from trace_format.npz import write_result  # noqa: E402

EXAMPLE = REPO_ROOT / "assets" / "example.trace.npz"
FRAMES = 120


def main() -> None:
    scene = side_by_side_scene(frames_limit=FRAMES)
    raw = trace_result(scene, LOW, seed=0)
    processed = apply_world_processing(raw)   # feet cleaned on the default skeleton, which the import uses
    processed.notes = list(processed.notes) + ["example: CMU mocap 131_02 and 131_01 (mocap.cs.cmu.edu), "
                                               "TRACE-like noise, world stage applied (assets/make_example.py)"]
    print(f"wrote {write_result(EXAMPLE, processed)} ({EXAMPLE.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
