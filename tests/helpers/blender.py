"""Helpers for the Blender tests: synthetic TRACE results, reference FK and scene inspection.

Synthetic motion: varied joint rotations (sums of sines with per-joint frequencies), a root that
turns and walks along a curve, per-person shapes, optional gaps in the frame numbers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.result_file import CameraInfo, TraceResult, TrackResult, VideoInfo, write_result
from core.rig import fk, frames, rotations, skeleton


def synthetic_track(track_id: int, num_frames: int, seed: int, first_frame: int = 0) -> TrackResult:
    """One person moving for num_frames consecutive video frames starting at first_frame."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames, dtype=np.float64)[:, None]  # [T, 1]
    amplitude = rng.uniform(0.1, 0.7, size=(1, 24 * 3))
    frequency = rng.uniform(0.01, 0.15, size=(1, 24 * 3))
    phase = rng.uniform(0, 2 * np.pi, size=(1, 24 * 3))
    poses = (amplitude * np.sin(frequency * t + phase)).reshape(num_frames, 24, 3)
    # Root in the camera frame: upright (pi about x) plus a slow turn about the vertical and some sway.
    heading = 0.02 * t[:, 0] * (1 + track_id % 3) + rng.uniform(0, 2 * np.pi)
    upright = rotations.axis_angle_to_matrix(np.array([np.pi, 0.0, 0.0]))
    turn = rotations.axis_angle_to_matrix(np.stack([np.zeros(num_frames), heading, np.zeros(num_frames)], 1))
    sway = rotations.axis_angle_to_matrix(0.15 * np.sin(0.05 * t + phase[:, :3]))
    orient_world = rotations.matrix_to_axis_angle(turn @ upright @ sway)  # [T, 3]
    poses[:, 0] = orient_world  # camera = world for this synthetic clip (static camera)
    radius = 1.5 + track_id
    hips = np.stack([radius * np.cos(0.01 * t[:, 0]) - radius, -0.9 + 0.05 * np.sin(0.3 * t[:, 0]),
                     5.0 + radius * np.sin(0.01 * t[:, 0])], axis=1)
    betas = np.tile(rng.normal(scale=0.8, size=(1, 10)), (num_frames, 1)) + rng.normal(scale=0.05, size=(num_frames, 10))
    video_frames = np.arange(first_frame, first_frame + num_frames, dtype=np.int64)
    return TrackResult(
        track_id=track_id, frames=video_frames, times=video_frames / 30.0, poses=poses,
        global_orient_world=orient_world, betas=betas, hip_center_cam=hips, hip_center_world=hips,
        confidence=np.full(num_frames, 0.9), observed=np.ones(num_frames, bool),
        center_2d=np.full((num_frames, 2), 100.0))


def synthetic_result(num_people: int = 2, num_frames: int = 300, seed: int = 0, fps: float = 30.0,
                     offsets: tuple[int, ...] | None = None) -> TraceResult:
    """A TraceResult with several moving people (person k starts at video frame offsets[k])."""
    offsets = offsets or tuple(3 * k for k in range(num_people))
    tracks = [synthetic_track(k + 1, num_frames, seed + 17 * k, offsets[k]) for k in range(num_people)]
    frame_count = max(offsets) + num_frames + 2
    return TraceResult(tracks=tracks, video=VideoInfo(path="synthetic.mp4", fps=fps, width=640, height=480,
                                                      frame_count=frame_count),
                       camera=CameraInfo(fov_deg=50.0), notes=[])


def write_synthetic_result(path: str | Path, **kwargs: Any) -> Path:
    return write_result(path, synthetic_result(**kwargs))


def reference_joints_blender(track: TrackResult, rest_joints: np.ndarray) -> np.ndarray:
    """numpy SMPL FK of a track in the documented Blender frame: [T, 24, 3]."""
    poses = np.array(track.poses, np.float64)
    poses[:, 0] = track.global_orient_world
    _, joints = fk.forward_kinematics(rest_joints, poses)
    placed = fk.place_by_hip_center(joints, np.asarray(track.hip_center_world))
    return frames.map_points(frames.trace_to_blender_transform(), placed)


def evaluated_bone_heads(bpy: Any, armature: Any, scene_frame: int,
                         names: tuple[str, ...] = skeleton.SMPL_JOINT_NAMES) -> np.ndarray:
    """World positions [J, 3] of the evaluated bone heads at a scene frame."""
    scene = bpy.context.scene
    scene.frame_set(int(scene_frame))
    evaluated = armature.evaluated_get(bpy.context.evaluated_depsgraph_get())
    world = np.array(evaluated.matrix_world)
    heads = np.array([list(evaluated.pose.bones[n].head) + [1.0] for n in names])
    return (heads @ world.T)[:, :3]


def evaluated_vertices(bpy: Any, mesh_object: Any, scene_frame: int) -> np.ndarray:
    """World positions [V, 3] of a mesh object's evaluated (deformed) vertices at a scene frame."""
    scene = bpy.context.scene
    scene.frame_set(int(scene_frame))
    evaluated = mesh_object.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    try:
        coordinates = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", coordinates)
    finally:
        evaluated.to_mesh_clear()
    world = np.array(evaluated.matrix_world)
    return coordinates.reshape(-1, 3).astype(np.float64) @ world[:3, :3].T + world[:3, 3]


def scene_fingerprint(bpy: Any) -> dict[str, Any]:
    """Names of every datablock kind an import creates, plus scene timing (to prove nothing changed)."""
    scene = bpy.context.scene
    kinds = ("objects", "meshes", "armatures", "actions", "collections", "materials")
    summary: dict[str, Any] = {kind: sorted(item.name for item in getattr(bpy.data, kind)) for kind in kinds}
    summary["timing"] = (scene.render.fps, round(scene.render.fps_base, 9), scene.frame_start, scene.frame_end)
    summary["scene_children"] = sorted(c.name for c in scene.collection.children)
    return summary


# ------------------------------------------------------------------------------------------------ fake core
FAKE_CORE_SOURCE = r'''
"""Stands in for `python -m core` (and for the interpreter check) in the add-on tests.

Behaviour from the video's file name prefix: ok_, error_, partial_, crash_, nocore_, slow_, stubborn_.
"""
import json
import os
import signal
import sys
import time

REPO = {repo!r}


def emit(**event):
    print(json.dumps(event), flush=True)


def main(args):
    if args[:1] == ["-c"]:  # the add-on's interpreter check: `python -c "import core.cli, torch"`
        return 0
    if args[:2] == ["-m", "core"]:
        args = args[2:]
    if args[:1] != ["run"]:
        print("usage: fake core run VIDEO -o OUT", file=sys.stderr)
        return 2
    video, out = args[1], args[args.index("-o") + 1]
    with open(os.path.join(out, "argv.json"), "w") as stream:
        json.dump(args, stream)
    mode = os.path.basename(video).split("_")[0]
    if mode == "nocore":
        print(sys.executable + ": No module named core", file=sys.stderr)
        return 1
    emit(event="start", total_frames=40, fps=25.0, input=video)
    emit(event="progress", stage="load_weights", done=0, total=3, fps=None, eta_s=None)
    emit(event="progress", stage="load_weights", done=3, total=3, fps=12.5, eta_s=0.0)
    print("a log line that is not JSON", flush=True)
    for done in range(0, 41, 10):
        emit(event="progress", stage="inference", done=done, total=40, fps=20.0, eta_s=(40 - done) / 20.0)
    if mode == "error":
        emit(event="error", code="weights_missing", message="TRACE weights not found in /nowhere: run once online",
             exit_code=4)
        return 4
    if mode == "crash":
        print("Traceback (most recent call last):\nRuntimeError: simulated crash", file=sys.stderr, flush=True)
        return 1
    if mode in ("slow", "stubborn"):
        if mode == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open(os.path.join(out, "work_in_progress.tmp"), "w") as stream:
            stream.write("x")
        emit(event="progress", stage="smpl", done=1, total=2, fps=1.0, eta_s=1.0)
        time.sleep(120)
        return 0
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from helpers.blender import write_synthetic_result
    result = write_synthetic_result(os.path.join(out, "result.npz"), num_people=2, num_frames=30, fps=25.0)
    if mode == "partial":
        emit(event="warning", message="frame 31 could not be decoded; the result covers frames 0-30")
        emit(event="done", result=str(result), tracks=2, exit_code=10)
        return 10
    emit(event="progress", stage="write", done=1, total=1, fps=None, eta_s=0.0)
    emit(event="done", result=str(result), tracks=2, exit_code=0)
    return 0


sys.exit(main(sys.argv[1:]))
'''


def write_fake_core(directory: str | Path, python: str | None = None) -> Path:
    """An executable fake interpreter/core script (see FAKE_CORE_SOURCE); returns its path."""
    import os
    import sys

    repo = str(Path(__file__).resolve().parents[2])
    path = Path(directory) / "fake_python"
    path.write_text(f"#!{python or sys.executable}\n" + FAKE_CORE_SOURCE.replace("{repo!r}", repr(repo)))
    os.chmod(path, 0o755)
    return path


def fake_video(directory: str | Path, mode: str) -> Path:
    """An (empty) file with a video extension whose name selects the fake core's behaviour."""
    path = Path(directory) / f"{mode}_clip.mp4"
    path.write_bytes(b"not really a video")
    return path


# ------------------------------------------------------------------------------------------------ UI fakes
class RecordedOperator:
    """What `layout.operator()` returns: accepts property assignments and remembers them."""

    def __init__(self, idname: str) -> None:
        self.__dict__["idname"] = idname
        self.__dict__["properties"] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        self.properties[name] = value


class RecordingLayout:
    """Stands in for bpy.types.UILayout: records every call; sub-layouts share one call log.

    `prop(data, name)` checks that the property exists, so a typo in a panel fails the test.
    """

    _SUB_LAYOUTS = ("row", "column", "box", "split", "column_flow", "grid_flow", "panel")

    def __init__(self, calls: list | None = None) -> None:
        self.__dict__["calls"] = [] if calls is None else calls
        self.__dict__["attributes"] = {}

    def __setattr__(self, name: str, value: Any) -> None:  # enabled, alert, active, scale_y, ...
        self.attributes[name] = value
        self.calls.append(("set", name, value))

    def __getattr__(self, name: str) -> Any:
        if name in self.attributes:
            return self.attributes[name]

        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            if name in self._SUB_LAYOUTS:
                return RecordingLayout(self.calls)
            if name == "prop":
                data, prop_name = args[0], args[1]
                if prop_name not in data.bl_rna.properties:
                    raise AttributeError(f"layout.prop: {type(data).__name__} has no property {prop_name!r}")
            if name == "operator":
                return RecordedOperator(args[0])
            return None

        return record

    def operators(self) -> list[str]:
        return [call[1][0] for call in self.calls if call[0] == "operator"]

    def texts(self) -> list[str]:
        return [str(call[2].get("text", "")) for call in self.calls if call[0] in ("label", "operator", "progress")]
