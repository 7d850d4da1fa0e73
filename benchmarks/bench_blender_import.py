"""Speed of building animated people in Blender (bpy module); prints figures, asserts nothing.

    python benchmarks/bench_blender_import.py [--people 3] [--frames 10000] [--insert-frames 300]

1. Bulk import (the add-on's path: numpy FK + layered-action F-curves filled with foreach_set) of
   N people x F frames with the default skeleton: seconds and keys/s.
2. The same data keyed the naive way, pose_bone.keyframe_insert per frame and bone, on a shorter
   clip: keys/s and the ratio.
3. A skinned body from an SMPL-sized synthetic model (6890 vertices): seconds per person.
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
import numpy as np  # noqa: E402
from helpers.factories import make_result  # noqa: E402
from helpers.synthetic_smpl import write_synthetic_smpl_pkl  # noqa: E402

from bpy_extras import anim_utils  # noqa: E402

from trace_blender import build, plan  # noqa: E402
from trace_blender.build import armature as armature_build  # noqa: E402

KEYS_PER_FRAME = 24 * 4 + 3  # quaternion per bone + pelvis location


def bulk_import(people: int, frames: int) -> tuple[float, float, int]:
    """(whole import seconds, seconds spent creating and filling F-curves, keys)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = make_result(people=people, frames=frames, seed=0)
    keying = [0.0]
    original = armature_build.key_armature

    def timed_key_armature(*args, **kwargs):
        started_keying = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            keying[0] += time.perf_counter() - started_keying

    armature_build.key_armature = timed_key_armature
    try:
        started = time.perf_counter()
        build.import_result(result, bpy.context)
        seconds = time.perf_counter() - started
    finally:
        armature_build.key_armature = original
    return seconds, keying[0], people * frames * KEYS_PER_FRAME


def per_frame_keyframe_insert(frames: int) -> tuple[float, int]:
    """Key one person with keyframe_insert, from the same pose-bone values the bulk path computes."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = make_result(people=1, frames=frames, seed=0)
    summary = build.import_result(result, bpy.context)
    armature = summary.people[0].armature
    channelbag = anim_utils.animdata_get_channelbag_for_assigned_slot(armature.animation_data)
    values = {}
    for curve in channelbag.fcurves:
        keys = np.empty(2 * len(curve.keyframe_points), np.float32)
        curve.keyframe_points.foreach_get("co", keys)
        values[(curve.data_path, curve.array_index)] = keys[1::2]
    armature.animation_data_clear()
    scene_frames = (1 + result.tracks[0].frames).tolist()
    bones = [armature.pose.bones[name] for name in armature_build.JOINT_NAMES]
    started = time.perf_counter()
    for row, frame in enumerate(scene_frames):
        for bone in bones:
            path = f'pose.bones["{bone.name}"].rotation_quaternion'
            bone.rotation_quaternion = [float(values[(path, i)][row]) for i in range(4)]
            bone.keyframe_insert("rotation_quaternion", frame=frame)
        pelvis_path = 'pose.bones["pelvis"].location'
        bones[0].location = [float(values[(pelvis_path, i)][row]) for i in range(3)]
        bones[0].keyframe_insert("location", frame=frame)
    return time.perf_counter() - started, frames * KEYS_PER_FRAME


def skinned_body_seconds(frames: int) -> float:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    with tempfile.TemporaryDirectory() as folder:
        model = write_synthetic_smpl_pkl(Path(folder) / "smpl_sized.pkl", n_vertices=6890)
        result = make_result(people=1, frames=frames, seed=0)
        options = plan.ImportOptions(smpl_model_path=str(model))
        started = time.perf_counter()
        build.import_result(result, bpy.context, options)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=3)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--insert-frames", type=int, default=300)
    args = parser.parse_args()
    print(f"Blender {bpy.app.version_string}, numpy {np.__version__}")
    seconds, keying_seconds, keys = bulk_import(args.people, args.frames)
    bulk_rate, keying_rate = keys / seconds, keys / keying_seconds
    print(f"bulk import: {args.people} people x {args.frames} frames = {keys:,} keys in {seconds:.2f} s "
          f"-> {bulk_rate:,.0f} keys/s end to end (FK and frame conversion included); "
          f"F-curve keying alone {keying_seconds:.2f} s -> {keying_rate:,.0f} keys/s")
    insert_seconds, insert_keys = per_frame_keyframe_insert(args.insert_frames)
    insert_rate = insert_keys / insert_seconds
    print(f"keyframe_insert per frame: 1 person x {args.insert_frames} frames = {insert_keys:,} keys in "
          f"{insert_seconds:.2f} s -> {insert_rate:,.0f} keys/s")
    print(f"speed-up over keyframe_insert: {bulk_rate / insert_rate:.0f}x end to end, "
          f"{keying_rate / insert_rate:.0f}x for the keying itself")
    print(f"skinned body (6890 vertices, 24 groups) + 300 frames: {skinned_body_seconds(300):.2f} s per person")


if __name__ == "__main__":
    main()
