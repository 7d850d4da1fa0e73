"""Speed of exporting imported people (bpy module); prints figures, asserts nothing.

    python benchmarks/bench_export.py [--people 3] [--frames 1800] [--fps 30] [--no-body] [--repeat 1]

Imports N people x F frames (default: 3 people, one minute at 30 fps, each with the default
mannequin body), then times `exporting.export_people` for every format as one combined file
(BVH, .smpl, AMASS: one file per person), and the motion sampling step alone. Target (issue 10): <= 5 s per
format for 3 people x 1 minute.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))  # the synthetic-data helpers live with the tests

import bpy  # noqa: E402
from helpers.factories import make_result  # noqa: E402

from trace_blender import build, exporting, plan  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=3)
    parser.add_argument("--frames", type=int, default=1800)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--no-body", dest="body", action="store_false")
    parser.add_argument("--repeat", type=int, default=1, help="runs per format (the best is printed)")
    args = parser.parse_args()

    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = make_result(people=args.people, frames=args.frames, seed=0, fps=args.fps)
    started = time.perf_counter()
    summary = build.import_result(result, bpy.context, plan.ImportOptions(build_camera=False, build_mesh=args.body))
    print(f"import: {args.people} people x {args.frames} frames in {time.perf_counter() - started:.2f} s "
          f"(bodies: {'yes' if args.body else 'no'})")
    armatures = [person.armature for person in summary.people]
    frames = exporting.export_frames(bpy.context.scene)
    started = time.perf_counter()
    for armature in armatures:
        exporting.sample_motion(bpy.context, armature, frames)
    print(f"sampling the motion (F-curves + FK, bodies): {time.perf_counter() - started:.2f} s")
    with tempfile.TemporaryDirectory() as folder:
        for export_format in exporting.EXPORT_FORMATS:
            best = float("inf")
            for _ in range(args.repeat):
                started = time.perf_counter()
                written = exporting.export_people(bpy.context, armatures, Path(folder) / "people", export_format,
                                                  per_person=export_format in exporting.ONE_PERSON_FORMATS)
                best = min(best, time.perf_counter() - started)
            size = sum(path.stat().st_size for path in written) / 1e6
            print(f"{exporting.FORMAT_LABELS[export_format]:>20}: {best:6.2f} s  ({len(written)} file(s), {size:.1f} MB)")


if __name__ == "__main__":
    main()
