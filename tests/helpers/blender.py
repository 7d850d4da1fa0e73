"""Helpers for the Blender tests: reference FK, world scenes and scene inspection.

Synthetic tracks and results come from helpers.factories (make_track, make_result).
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from trace_format.schema import CameraInfo, TraceResult, TrackResult, VideoInfo
from trace_format.validate import validate_result
from trace_format import fk, rotations, skeleton
from trace_blender import frames, plan



def planned_camera_matrices(result: TraceResult) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """shot -> (video frames [F], Blender world matrices [F,4,4]) of the cameras an import builds."""
    return {camera.shot: (camera.path.frames,
                          frames.camera_object_matrices(camera.path.rotations, camera.path.positions, camera.base))
            for camera in plan.plan_import(result).cameras}

def reference_joints_blender(track: TrackResult, rest_joints: np.ndarray) -> np.ndarray:
    """numpy SMPL FK of a track in the documented Blender frame: [T, 24, 3]."""
    poses = np.array(track.poses, np.float64)
    poses[:, 0] = track.global_orient_world
    _, joints = fk.forward_kinematics(rest_joints, poses)
    placed = fk.place_by_hip_center(joints, np.asarray(track.hip_center_world))
    return frames.map_points(frames.trace_to_blender_transform(), placed)


@contextmanager
def visible_at_every_frame(bpy: Any) -> Iterator[None]:
    """Mute the imports' visibility drivers (people are hidden outside their frames, and a hidden object
    is not evaluated): the pose held before/after a person's frames is what exports write."""
    from trace_blender.build import keys

    drivers = [(d, d.mute, ob, ob.hide_viewport) for ob in bpy.data.objects for d in keys.visibility_drivers(ob)]
    try:
        for driver, _, ob, _ in drivers:
            driver.mute = True
            ob.hide_viewport = False
        yield
    finally:
        for driver, muted, ob, hidden in drivers:
            driver.mute = muted
            ob.hide_viewport = hidden


def evaluated_bone_heads(bpy: Any, armature: Any, scene_frame: int,
                         names: tuple[str, ...] = skeleton.SMPL_JOINT_NAMES) -> np.ndarray:
    """World positions [J, 3] of the evaluated bone heads at a scene frame (visibility drivers muted)."""
    with visible_at_every_frame(bpy):
        scene = bpy.context.scene
        scene.frame_set(int(scene_frame))
        evaluated = armature.evaluated_get(bpy.context.evaluated_depsgraph_get())
        world = np.array(evaluated.matrix_world)
        heads = np.array([list(evaluated.pose.bones[n].head) + [1.0] for n in names])
    return (heads @ world.T)[:, :3]


def evaluated_vertices(bpy: Any, mesh_object: Any, scene_frame: int) -> np.ndarray:
    """World positions [V, 3] of a mesh object's evaluated (deformed) vertices at a scene frame (visibility
    drivers muted)."""
    with visible_at_every_frame(bpy):
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
    kinds = ("objects", "meshes", "armatures", "actions", "collections", "materials", "cameras", "movieclips")
    summary: dict[str, Any] = {kind: sorted(item.name for item in getattr(bpy.data, kind)) for kind in kinds}
    summary["timing"] = (scene.render.fps, round(scene.render.fps_base, 9), scene.frame_start, scene.frame_end)
    summary["render_size"] = (scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage)
    summary["scene_camera"] = None if scene.camera is None else scene.camera.name
    summary["markers"] = sorted((m.name, m.frame) for m in scene.timeline_markers)
    summary["scene_children"] = sorted(c.name for c in scene.collection.children)
    return summary


# ------------------------------------------------------------------------------------------------ fake core
FAKE_CORE_SOURCE = r'''
"""Stands in for `python -m core` (and for the interpreter check) in the add-on tests.

Behaviour from the video's file name prefix: ok_, error_, partial_, elsewhere_, crash_, nocore_, slow_, stubborn_.
elsewhere_: the run folder fails at the write; the result goes to `unsaved results` two levels up (exit 11).
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
    from helpers.factories import make_result
    from trace_format.npz import write_result
    if mode == "elsewhere":
        os.remove(os.path.join(out, "argv.json"))          # the folder is unusable: nothing of this run in it
        fallback = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(out))), "unsaved results")
        os.makedirs(fallback, exist_ok=True)
        result = write_result(os.path.join(fallback, "clip.20260102-030405.trace.npz"),
                              make_result(people=2, frames=30, fps=25.0))
        emit(event="warning", message=f"cannot write into the folder {out}: No space left on device. The finished "
                                      f"result was saved to {result} instead: move it where you want it")
        emit(event="done", result=str(result), tracks=2, exit_code=11)
        return 11
    result = write_result(os.path.join(out, "result.npz"), make_result(people=2, frames=30, fps=25.0))
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

    def __init__(self, calls: list | None = None, operator_log: list | None = None, owners: list | None = None,
                 kind: str = "layout", children: list | None = None) -> None:
        self.__dict__["calls"] = [] if calls is None else calls
        self.__dict__["operator_log"] = [] if operator_log is None else operator_log  # RecordedOperator objects
        self.__dict__["owners"] = [] if owners is None else owners      # per call: the (sub-)layout it was made on
        self.__dict__["children"] = [] if children is None else children  # every sub-layout (kept alive)
        self.__dict__["kind"] = kind                                       # "layout", "row", "column", ...
        self.__dict__["attributes"] = {}

    def __setattr__(self, name: str, value: Any) -> None:  # enabled, alert, active, scale_y, ...
        self.attributes[name] = value
        self.calls.append(("set", name, value))
        self.owners.append(self)

    def __getattr__(self, name: str) -> Any:
        if name in self.attributes:
            return self.attributes[name]

        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            self.owners.append(self)
            if name in self._SUB_LAYOUTS:
                child = RecordingLayout(self.calls, self.operator_log, self.owners, name, self.children)
                self.children.append(child)
                return child
            if name == "prop":
                data, prop_name = args[0], args[1]
                if prop_name not in data.bl_rna.properties:
                    raise AttributeError(f"layout.prop: {type(data).__name__} has no property {prop_name!r}")
            if name == "operator":
                operator = RecordedOperator(args[0])
                self.operator_log.append(operator)
                return operator
            return None

        return record

    def operators(self) -> list[str]:
        return [call[1][0] for call in self.calls if call[0] == "operator"]

    def texts(self) -> list[str]:
        return [str(call[2].get("text", "")) for call in self.calls if call[0] in ("label", "operator", "progress")]


# ------------------------------------------------------------------------------------------------ world scene
# A scene with a known answer in Blender's world (floor z = 0, +Z up): people walking and standing on
# the floor, filmed by a pitched and rolled camera that dollies and pans, two shots. Each shot's TRACE
# world is its first camera's frame; a track that starts late lives in the world of the camera at its
# own first frame (as TRACE does), which its registration undoes.
WORLD_FPS = 30.0
WORLD_VIDEO_SIZE = (160, 120)       # width, height (landscape 4:3)
WORLD_SHOTS = ((0, 60), (60, 90))   # half-open source frame ranges
WORLD_FOV_DEG = 50.0


def axis_rotation(axis: str, angle: float | np.ndarray) -> np.ndarray:
    """Rotation(s) [..., 3, 3] about a coordinate axis (right-handed)."""
    vector = {"x": [1.0, 0.0, 0.0], "y": [0.0, 1.0, 0.0], "z": [0.0, 0.0, 1.0]}[axis]
    angle = np.asarray(angle, np.float64)
    return rotations.axis_angle_to_matrix(angle[..., None] * np.asarray(vector))


def camera_in_blender(yaw: np.ndarray, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Camera rotations [F, 3, 3]: OpenCV camera axes -> Blender world; looks along +Y at yaw 0, pitched down."""
    level = frames.TRACE_TO_BLENDER   # columns: camera x -> +X, y (down) -> -Z, z (forward) -> +Y
    roll = axis_rotation("z", np.radians(roll_deg))
    return axis_rotation("z", yaw) @ axis_rotation("x", -np.radians(pitch_deg)) @ level @ roll


def rigid(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = rotation, translation
    return matrix


def upright_facing(heading: np.ndarray) -> np.ndarray:
    """Body rotation [3, 3] (canonical SMPL -> Blender world): upright (+Y -> +Z), facing `heading`."""
    forward = np.asarray(heading, np.float64) / np.linalg.norm(heading)
    up = np.array([0.0, 0.0, 1.0])
    return np.stack([np.cross(up, forward), up, forward], axis=1)


def sole_heights(joints: np.ndarray, foot_heights: np.ndarray) -> np.ndarray:
    """Sole height [T, 2] (left, right) above z = 0 from ankle/toe joints [T, 24, 3] (Blender world, Z up)."""
    ankle = joints[:, [7, 8], 2] - foot_heights[[0, 1]]
    toe = joints[:, [10, 11], 2] - foot_heights[[2, 3]]
    return np.minimum(ankle, toe)


def _walk(rest: np.ndarray, count: int, start_xy: tuple[float, float], heading: np.ndarray, speed: float,
          phase: float, foot_heights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A walk on the floor in Blender world: (poses [T,24,3] joint 0 = world orientation, hips [T,3], contacts [T,2]).

    Legs swing, the hips follow the lower sole at z = 0, then the planted feet are pinned
    (core.world.contacts.clean_foot_skate with the stance phases as contacts), so the truth has no skate.
    """
    from core.world import contacts as contact_math

    t = np.arange(count) / WORLD_FPS                          # [T]
    omega = 2 * np.pi * 0.9                                   # steps per second / 2
    swing = 0.35 * np.sin(omega * t + phase)                  # [T] hip flexion of the left leg
    poses = np.zeros((count, 24, 3))
    poses[:, 0] = rotations.matrix_to_axis_angle(upright_facing(heading))
    poses[:, 1, 0] = -swing                                   # left hip (negative x: leg forward)
    poses[:, 2, 0] = swing
    poses[:, 4, 0] = 0.6 * np.clip(np.cos(omega * t + phase), 0, None)          # knees bend in swing
    poses[:, 5, 0] = 0.6 * np.clip(-np.cos(omega * t + phase), 0, None)
    poses[:, 16, 2] = -1.2 + 0.2 * np.sin(2 * omega * t)      # arms down-ish, swinging
    poses[:, 17, 2] = 1.2 + 0.2 * np.sin(2 * omega * t + 1.0)
    heading = np.asarray(heading, np.float64) / np.linalg.norm(heading)
    hips = np.zeros((count, 3))
    hips[:, :2] = np.asarray(start_xy) + speed * t[:, None] * heading[:2]
    _, joints = fk.forward_kinematics(rest, poses)
    placed = fk.place_by_hip_center(joints, hips)
    hips[:, 2] -= sole_heights(placed, foot_heights).min(axis=1)                # lower sole on z = 0
    stance = np.stack([np.cos(omega * t + phase) < -0.2, np.cos(omega * t + phase) > 0.2], axis=1)  # [T, 2]
    cleaned = contact_math.clean_foot_skate(rest, poses, hips, t, contacts=stance, foot_heights=foot_heights)
    return cleaned.poses, cleaned.hip_centers, cleaned.contacts


def _standing(rest: np.ndarray, count: int, position_xy: tuple[float, float], heading: np.ndarray,
              foot_heights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standing on both feet, waving one arm and turning the head: (poses, hips, contacts all True)."""
    t = np.arange(count) / WORLD_FPS
    poses = np.zeros((count, 24, 3))
    poses[:, 0] = rotations.matrix_to_axis_angle(upright_facing(heading))
    poses[:, 17, 2] = 0.8 * np.sin(3.0 * t)
    poses[:, 15, 1] = 0.4 * np.sin(1.5 * t)
    hips = np.zeros((count, 3))
    hips[:, :2] = position_xy
    _, joints = fk.forward_kinematics(rest, poses)
    hips[:, 2] = -sole_heights(fk.place_by_hip_center(joints, hips), foot_heights).min(axis=1)
    return poses, hips, np.ones((count, 2), bool)


def _to_track_world(to_blender: np.ndarray, poses_blender: np.ndarray, hips_blender: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Blender-world orientation (poses[:, 0]) and hips -> a track's TRACE world, given its TRACE -> Blender [4,4]."""
    inverse = np.linalg.inv(to_blender)
    orient = rotations.matrix_to_axis_angle(inverse[:3, :3] @ rotations.axis_angle_to_matrix(poses_blender[:, 0]))
    return orient, frames.map_points(inverse, hips_blender)


def write_world_video(path: str | Path, num_frames: int, size: tuple[int, int] = WORLD_VIDEO_SIZE) -> Path:
    """A tiny MPEG-4 video (cv2) whose frame i is a flat colour with the number i on it."""
    import cv2

    from helpers.factories import write_video

    width, height = size
    images = []
    for index in range(num_frames):
        image = np.full((height, width, 3), (120, 2 * index % 256, 40), np.uint8)      # RGB
        cv2.putText(image, str(index), (10, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        images.append(image)
    return write_video(path, images, fps=WORLD_FPS, codec="mp4v", size=size)


def world_scene(video_path: str | Path = "world.mp4", raw_sliding_m_per_s: float = 0.04) -> tuple[TraceResult, dict]:
    """The synthetic two-shot scene as TRACE would report it, plus its truth.

    Returns (raw result: every track in its own TRACE world, no v2 world fields; truth) with truth =
    {"shots": [{"alignment": [4,4] shared TRACE world -> Blender, "camera_blender": [F,3,3] OpenCV axes
    -> Blender, "camera_centres": [F,3], "frames": [F]}], "tracks": {id: {"shot", "registration" [4,4],
    "clean_poses" [T,24,3] and "clean_hips" [T,3] (Blender world), "contacts" [T,2]}}}.
    The raw motion is the truth plus a sideways drift of the hips (foot skate) of raw_sliding_m_per_s.
    """
    from trace_format.schema import FramesProcessed
    from core.world.ground import foot_joint_heights

    rest = skeleton.load_default_skeleton()
    feet = foot_joint_heights(rest)
    # Each shot's first camera stands above the origin looking along +Y (the gauge the ground alignment
    # uses: core.world.ground.alignment_from_plane), then pans and dollies.
    shot_cameras = (dict(yaw_rate=0.15, pitch=18.0, roll=4.0, height=1.6, velocity=(0.4, 0.2, 0.0)),
                    dict(yaw_rate=-0.1, pitch=12.0, roll=-3.0, height=1.2, velocity=(0.0, 0.3, 0.05)))
    people = (  # (track id, shot, first frame, last frame + 1, kind, start position, heading, gait phase)
        (1, 0, 0, 60, "walk", (-1.0, 4.5), np.array([1.0, 0.3, 0.0]), 0.0),
        (2, 0, 12, 60, "walk", (0.8, 5.5), np.array([-0.4, -1.0, 0.0]), 1.7),
        (3, 1, 60, 90, "stand", (0.0, 4.0), np.array([0.2, -1.0, 0.0]), 0.0),
    )
    truth: dict[str, Any] = {"shots": [], "tracks": {}}
    for (start, stop), spec in zip(WORLD_SHOTS, shot_cameras):
        local = np.arange(stop - start) / WORLD_FPS
        camera_rotation = camera_in_blender(spec["yaw_rate"] * local, spec["pitch"], spec["roll"])
        centres = np.array([0.0, 0.0, spec["height"]]) + local[:, None] * np.asarray(spec["velocity"])
        truth["shots"].append({"alignment": rigid(camera_rotation[0], centres[0]), "camera_blender": camera_rotation,
                               "camera_centres": centres, "frames": np.arange(start, stop)})
    tracks = []
    for track_id, shot, first, stop, kind, position, heading, phase in people:
        count = stop - first
        if kind == "walk":
            poses, hips, contacts = _walk(rest, count, position, heading, 1.0, phase, feet)
        else:
            poses, hips, contacts = _standing(rest, count, position, heading, feet)
        shot_truth = truth["shots"][shot]
        rows = np.arange(first, stop) - WORLD_SHOTS[shot][0]
        camera_rotation, centres = shot_truth["camera_blender"][rows], shot_truth["camera_centres"][rows]
        # TRACE puts the track in the world of the camera at its first frame.
        track_to_blender = rigid(camera_rotation[0], centres[0])
        registration = np.linalg.inv(shot_truth["alignment"]) @ track_to_blender
        t = np.arange(count) / WORLD_FPS
        drift = np.zeros((count, 3))
        drift[:, :2] = raw_sliding_m_per_s * t[:, None] * np.array([heading[1], -heading[0]]) / np.linalg.norm(heading)
        raw_hips = hips + drift
        orient_world, hips_world = _to_track_world(track_to_blender, poses, raw_hips)
        _, clean_hips_world = _to_track_world(track_to_blender, poses, hips)
        body = rotations.axis_angle_to_matrix(poses[:, 0])
        orient_cam = rotations.matrix_to_axis_angle(np.swapaxes(camera_rotation, 1, 2) @ body)
        hips_cam = np.einsum("tji,tj->ti", camera_rotation, raw_hips - centres)     # R^T (hip - c)
        video_frames = np.arange(first, stop, dtype=np.int64)
        raw_poses = np.array(poses)
        raw_poses[:, 0] = orient_cam
        tracks.append(TrackResult(
            track_id=track_id, frames=video_frames, times=video_frames / WORLD_FPS, poses=raw_poses,
            global_orient_world=orient_world, betas=np.zeros((count, 10)), hip_center_cam=hips_cam,
            hip_center_world=hips_world, confidence=np.full(count, 0.95), observed=np.ones(count, bool),
            center_2d=np.full((count, 2), 80.0)))
        truth["tracks"][track_id] = {"shot": shot, "registration": registration, "clean_poses": poses,
                                     "clean_hips": hips, "contacts": contacts, "clean_hips_world": clean_hips_world,
                                     "to_blender": track_to_blender}
    width, height = WORLD_VIDEO_SIZE
    focal = 0.5 * max(width, height) / np.tan(np.radians(WORLD_FOV_DEG) / 2)
    total = WORLD_SHOTS[-1][1]
    result = TraceResult(tracks=tracks, video=VideoInfo(path=str(video_path), fps=WORLD_FPS, width=width, height=height,
                                                        frame_count=total),
                         camera=CameraInfo(fov_deg=WORLD_FOV_DEG, focal_px=float(focal)),
                         frames_processed=FramesProcessed(first=0, last=total - 1), notes=[])
    return result, truth


def world_result_from_truth(result: TraceResult, truth: dict) -> TraceResult:
    """The v2 result the world post-processing should produce, written from the known answer:
    shots with their alignments, registrations, contacts, cleaned motion and the exact scene camera."""
    import dataclasses

    from trace_format.schema import SceneCameraPath, ShotInfo

    shots = [ShotInfo(index=index, start=start, stop=stop, aligned=True, alignment_matrix=shot["alignment"],
                      alignment_info={"method": "synthetic_truth"})
             for index, ((start, stop), shot) in enumerate(zip(WORLD_SHOTS, truth["shots"]))]
    tracks = []
    for track in result.tracks:
        known = truth["tracks"][track.track_id]
        tracks.append(dataclasses.replace(track, shot=known["shot"], registration=known["registration"],
                                          contacts=known["contacts"], clean_body_pose=known["clean_poses"][:, 1:],
                                          clean_hip_center_world=known["clean_hips_world"],
                                          clean_global_orient_world=track.global_orient_world))
    rotations_trace, positions_trace, camera_frames, camera_shots = [], [], [], []
    for index, shot in enumerate(truth["shots"]):
        inverse = np.linalg.inv(shot["alignment"])
        rotations_trace.append(inverse[:3, :3] @ shot["camera_blender"])
        positions_trace.append(frames.map_points(inverse, shot["camera_centres"]))
        camera_frames.append(shot["frames"])
        camera_shots.append(np.full(len(shot["frames"]), index))
    count = sum(len(f) for f in camera_frames)
    interpolated = np.zeros(count, bool)
    interpolated[5:9] = True   # a few bridged frames, to see them on the camera's curve
    camera = SceneCameraPath(frames=np.concatenate(camera_frames), rotations=np.concatenate(rotations_trace),
                             positions=np.concatenate(positions_trace), interpolated=interpolated,
                             shots=np.concatenate(camera_shots))
    processed = dataclasses.replace(result, tracks=tracks, shots=shots, scene_camera=camera,
                                    world_processing={"settings": {"align": True, "clean_feet": True}})
    validate_result(processed)
    return processed


def expected_camera_matrices(truth: dict, shot: int) -> np.ndarray:
    """Blender camera object world matrices [F, 4, 4] of the true camera (local -Z forward, +Y up)."""
    known = truth["shots"][shot]
    matrices = np.broadcast_to(np.eye(4), (len(known["frames"]), 4, 4)).copy()
    matrices[:, :3, :3] = known["camera_blender"] @ np.diag([1.0, -1.0, -1.0])
    matrices[:, :3, 3] = known["camera_centres"]
    return matrices
