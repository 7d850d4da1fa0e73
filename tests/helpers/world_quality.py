"""Real motion seen through simulated cameras with TRACE-like errors, and WHAM's world metrics.

Used by benchmarks/bench_world_quality.py and the world-stage tests.

Truth: CMU motion capture (tests/helpers/mocap.py) placed in a z-up world, floor z = 0. A camera
(OpenCV axes) films it; what TRACE would report is made per person: camera-frame pose and hip
centre, and world arrays in the camera frame of the track's first frame (TRACE's world; a person
entering late lives in another one). Errors (`NoiseLevel`), as TRACE makes them:
* per-frame jitter of the hip centre in the camera frame, `ray_m` along the viewing ray and
  `across_m` across it, plus a slow depth drift (`drift_m`, a few sinusoids of 0.02-0.15 Hz);
* an independent, smaller error of the world branch (`world_m`), so the camera is not exact;
* rotation noise of the global orientation (`orient_deg`) and of every joint (`pose_deg`);
* outlier frames (`outlier_rate`): the body flipped 180 degrees about its up axis, or the hip
  thrown 0.5 m along the ray;
* a few infilled frames (observed False, doubled errors, low confidence).

Metrics follow WHAM `lib/eval/eval_utils.py` / `evaluate_emdb.py` (on the 24 SMPL joints; WHAM
uses SMPL joints for jitter and the MPJPEs and four foot vertices for sliding: here the ankle and
toe joints 7, 10, 8, 11):
* W-MPJPE100 / WA-MPJPE100: chunks of 100 frames, similarity (Umeyama, with scale) fitted on the
  chunk's first two frames / on the whole chunk, mean joint error (mm);
* RTE: rigid fit (no scale) of the whole root trajectory, per-frame error / total length of the
  ground-truth path, mean, in %;
* jitter: mean |third difference| x fps^3 of the joints, divided by 10 as WHAM does (units of
  10 m/s^3);
* foot sliding: per foot joint, frames where the ground truth moves < 1 cm to the next frame;
  mean displacement of the prediction over those frame pairs (mm).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from trace_format.schema import CameraInfo, FramesProcessed, TraceResult, TrackResult, VideoInfo
from trace_format.fk import forward_kinematics, hip_centers
from trace_format.rotations import axis_angle_to_matrix, matrix_to_axis_angle

from .mocap import MocapClip, load_clip

FPS = 30.0
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])   # capture (y up) -> world (z up)
LEVEL_CAMERA = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])     # OpenCV camera looking along +Y
FOOT = (7, 10, 8, 11)


def _rot(axis: int, angle) -> np.ndarray:
    """Rotations [...,3,3] about x (0), y (1) or z (2)."""
    angle = np.asarray(angle, float)
    c, s, o, z = np.cos(angle), np.sin(angle), np.ones_like(angle), np.zeros_like(angle)
    rows = {0: [o, z, z, z, c, -s, z, s, c], 1: [c, z, s, z, o, z, -s, z, c], 2: [c, -s, z, s, c, z, z, z, o]}[axis]
    return np.stack(rows, -1).reshape(angle.shape + (3, 3))


def _exp(rotvec: np.ndarray) -> np.ndarray:
    return axis_angle_to_matrix(rotvec)


@dataclass(frozen=True)
class NoiseLevel:
    name: str
    ray_m: float = 0.0
    across_m: float = 0.0
    drift_m: float = 0.0
    world_m: float = 0.0
    orient_deg: float = 0.0
    pose_deg: float = 0.0
    outlier_rate: float = 0.0
    infill: bool = False


EXACT = NoiseLevel("exact")
LOW = NoiseLevel("low", ray_m=0.02, across_m=0.005, drift_m=0.02, world_m=0.003, orient_deg=1.0, pose_deg=1.5)
MEDIUM = NoiseLevel("medium", ray_m=0.08, across_m=0.015, drift_m=0.08, world_m=0.008, orient_deg=3.0, pose_deg=3.0,
                    outlier_rate=0.005, infill=True)
# Calibrated so that the raw output has TRACE's published EMDB magnitudes (jitter ~3000 x 10 m/s^3,
# foot sliding ~370 mm): see the benchmark's "raw" columns.
TRACE_LEVEL = NoiseLevel("trace", ray_m=0.24, across_m=0.035, drift_m=0.24, world_m=0.02, orient_deg=5.0, pose_deg=5.0,
                         outlier_rate=0.01, infill=True)
LEVELS = {level.name: level for level in (EXACT, LOW, MEDIUM, TRACE_LEVEL)}


@dataclass
class Person:
    clip: MocapClip
    start: int                      # first scene frame
    poses: np.ndarray               # [T,24,3] joint 0 = orientation in the z-up world
    joints: np.ndarray              # [T,24,3] z-up world (ground truth)

    @property
    def frames(self) -> np.ndarray:
        return self.start + np.arange(len(self.poses))

    @property
    def hips(self) -> np.ndarray:
        return hip_centers(self.joints)


def place(clip: MocapClip, heading_deg: float, origin_xy, start: int = 0) -> Person:
    """The clip in the z-up world, turned by heading_deg about z and its first root moved to origin_xy."""
    turn = _rot(2, math.radians(heading_deg)) @ Y_UP_TO_Z_UP
    orientation = turn @ axis_angle_to_matrix(clip.poses[:, 0])
    poses = clip.poses.copy()
    poses[:, 0] = matrix_to_axis_angle(orientation)
    root = clip.root @ turn.T
    root[:, :2] += np.asarray(origin_xy, float) - root[0, :2]
    _, joints = forward_kinematics(clip.rest_joints, poses, root)
    return Person(clip=clip, start=start, poses=poses, joints=joints)


@dataclass
class Scene:
    name: str
    people: list[Person]
    cam_r: np.ndarray               # [F,3,3] camera -> world (OpenCV axes)
    cam_c: np.ndarray               # [F,3] camera centre
    frames: int = field(init=False)

    def __post_init__(self) -> None:
        self.frames = len(self.cam_r)


def _camera(frames: int, height: float, pitch_deg: float, roll_deg: float, position_xy, yaw_deg=None,
            centre_offset=None) -> tuple[np.ndarray, np.ndarray]:
    yaw = np.zeros(frames) if yaw_deg is None else np.radians(yaw_deg)
    rotation = _rot(2, yaw) @ LEVEL_CAMERA @ _rot(0, np.full(frames, -math.radians(pitch_deg))) \
        @ _rot(2, np.full(frames, math.radians(roll_deg)))
    centre = np.tile([position_xy[0], position_xy[1], height], (frames, 1)).astype(float)
    if centre_offset is not None:
        centre += centre_offset
    return rotation, centre


def build_scenes(frames_limit: int | None = None) -> list[Scene]:
    """The benchmark's camera set-ups (truth only). frames_limit shortens every clip (fast tests)."""
    def clip(name: str) -> MocapClip:
        return load_clip(name, slice(0, frames_limit) if frames_limit else None)

    scenes = []
    # 1. Static camera, tilted 20 deg down and rolled 4 deg, 1.6 m high, one walker ~5 m away.
    walker = place(clip("cmu_131_02"), 90.0, (0.5, 5.0))
    r, c = _camera(len(walker.poses), 1.6, 20.0, 4.0, (0.0, 0.0))
    scenes.append(Scene("static_tilted", [walker], r, c))
    # 2. Handheld, walking alongside two people at ~0.3 m/s, shaking (1.5 deg, 2 cm at 1-3 Hz).
    a = place(clip("cmu_131_02"), 90.0, (-0.8, 4.5))
    b = place(clip("cmu_131_01"), 90.0, (0.6, 6.0))
    count = max(len(a.poses), len(b.poses))
    t = np.arange(count) / FPS
    shake = np.stack([np.sin(2 * math.pi * 1.3 * t), np.sin(2 * math.pi * 2.1 * t + 1), np.sin(2 * math.pi * 2.9 * t + 2)], 1)
    r, c = _camera(count, 1.5, 12.0, -3.0, (-1.5, 0.0), yaw_deg=1.5 * shake[:, 0],
                   centre_offset=np.stack([0.25 * t, 0.02 * shake[:, 1], 0.02 * shake[:, 2]], 1))
    r = r @ _rot(0, np.radians(1.5) * shake[:, 1]) @ _rot(2, np.radians(1.0) * shake[:, 2])
    scenes.append(Scene("handheld_walk", [a, b], r, c))
    # 3. Panning camera on a tripod, three people, the third entering 2 s late (own TRACE world).
    p = place(clip("cmu_131_02"), 60.0, (-1.5, 6.0))
    q = place(clip("cmu_131_03"), 120.0, (1.5, 7.0))
    late = place(clip("cmu_131_01"), 0.0, (-0.5, 4.5), start=min(60, len(q.poses) // 4))
    count = max(len(p.poses), len(q.poses), late.start + len(late.poses))
    t = np.arange(count) / FPS
    r, c = _camera(count, 1.7, 15.0, 2.0, (0.0, 0.0), yaw_deg=20.0 * np.sin(2 * math.pi * 0.1 * t))
    scenes.append(Scene("panning_three", [p, q, late], r, c))
    return scenes


def side_by_side_scene(frames_limit: int | None = None, heading_deg: float = 0.0, spacing_m: float = 1.4) -> Scene:
    """Issue 9's two-person case: a static camera (1.6 m, pitched 15 deg, rolled 3 deg) and two
    people walking side by side `spacing_m` apart (their feet span ~1.4 m across)."""
    span = slice(0, frames_limit) if frames_limit else None
    a = place(load_clip("cmu_131_02", span), heading_deg, (-spacing_m / 2, 5.0))
    b = place(load_clip("cmu_131_01", span), heading_deg, (spacing_m / 2, 5.0))
    r, c = _camera(max(len(a.poses), len(b.poses)), 1.6, 15.0, 3.0, (0.0, 0.0))
    return Scene("side_by_side", [a, b], r, c)


def _smooth_noise(rng: np.random.Generator, count: int, scale: float) -> np.ndarray:
    """Slow drift [count]: sum of three sinusoids of 0.02-0.15 Hz (periods 7-50 s), RMS ~scale."""
    t = np.arange(count) / FPS
    out = np.zeros(count)
    for _ in range(3):
        out += np.sin(2 * math.pi * rng.uniform(0.02, 0.15) * t + rng.uniform(0, 2 * math.pi))
    return scale * out / math.sqrt(1.5)


def observe(scene: Scene, person: Person, track_id: int, level: NoiseLevel, rng: np.random.Generator) -> TrackResult:
    """What TRACE reports for `person` at noise `level` (world = the camera at the track's first frame)."""
    frames = person.frames
    count = len(frames)
    r_cam, c_cam = scene.cam_r[frames], scene.cam_c[frames]
    r0, c0 = scene.cam_r[frames[0]], scene.cam_c[frames[0]]
    r_body = axis_angle_to_matrix(person.poses[:, 0])
    hips = person.hips
    hip_cam = np.einsum("tji,tj->ti", r_cam, hips - c_cam)                    # R_cam^T (hip - c)
    ray = hip_cam / np.linalg.norm(hip_cam, axis=1, keepdims=True)
    helper = np.cross(ray, [0.0, 1.0, 0.0])
    helper /= np.linalg.norm(helper, axis=1, keepdims=True)
    other = np.cross(ray, helper)
    factor = np.ones(count)
    observed = np.ones(count, bool)
    confidence = np.clip(0.85 + 0.08 * np.sin(np.arange(count) / 17.0) + 0.02 * rng.standard_normal(count), 0.3, 1.0)
    if level.infill and count > 60:
        gap = slice(count // 2, count // 2 + 5)
        observed[gap], factor[gap], confidence[gap] = False, 2.0, 0.4
    error = (rng.standard_normal(count)[:, None] * level.ray_m * ray
             + rng.standard_normal(count)[:, None] * level.across_m * helper
             + rng.standard_normal(count)[:, None] * level.across_m * other) * factor[:, None]
    error += _smooth_noise(rng, count, level.drift_m)[:, None] * ray
    noisy_cam = hip_cam + error
    r_cam_body = np.swapaxes(r_cam, -1, -2) @ r_body
    noisy_r_cam_body = r_cam_body @ _exp(np.radians(level.orient_deg) * factor[:, None] * rng.standard_normal((count, 3)))
    # World branch: the same estimate seen through the (true) camera motion, plus its own error.
    to_first = r0.T @ r_cam                                                    # camera t -> camera at frame 0
    hip_world = np.einsum("tij,tj->ti", to_first, noisy_cam) + (c_cam - c0) @ r0 \
        + rng.standard_normal((count, 3)) * level.world_m
    r_world_body = to_first @ noisy_r_cam_body @ _exp(
        np.radians(0.3 * level.orient_deg) * rng.standard_normal((count, 3)))
    body = person.poses[:, 1:]
    if level.pose_deg:
        body = matrix_to_axis_angle(axis_angle_to_matrix(body) @ _exp(
            np.radians(level.pose_deg) * factor[:, None, None] * rng.standard_normal((count, 23, 3))))
    if level.outlier_rate:
        flips = np.flatnonzero(rng.random(count) < level.outlier_rate / 2)
        jumps = np.flatnonzero(rng.random(count) < level.outlier_rate / 2)
        up = r_body[flips] @ [0.0, 1.0, 0.0]                                  # body up axis (canonical y), world
        half_turn = _exp(math.pi * up)                                        # about the world up of the body
        world_turn = r0.T @ half_turn @ r0
        r_world_body[flips] = world_turn @ r_world_body[flips]
        noisy_r_cam_body[flips] = np.swapaxes(r_cam[flips], -1, -2) @ half_turn @ r_cam[flips] @ noisy_r_cam_body[flips]
        shift = 0.5 * ray[jumps]
        noisy_cam[jumps] += shift
        hip_world[jumps] += np.einsum("tij,tj->ti", to_first[jumps], shift)
    poses = np.concatenate([matrix_to_axis_angle(noisy_r_cam_body)[:, None], body], axis=1)
    return TrackResult(
        track_id=track_id, frames=frames, times=frames / FPS, poses=poses,
        global_orient_world=matrix_to_axis_angle(r_world_body), betas=np.zeros((count, 10)),
        hip_center_cam=noisy_cam, hip_center_world=hip_world, confidence=confidence, observed=observed,
        center_2d=np.full((count, 2), 640.0))


def trace_result(scene: Scene, level: NoiseLevel, seed: int = 0) -> TraceResult:
    rng = np.random.default_rng(seed)
    tracks = [observe(scene, person, k, level, rng) for k, person in enumerate(scene.people)]
    return TraceResult(tracks=tracks, video=VideoInfo(path=f"{scene.name}.mp4", fps=FPS, width=1280, height=720,
                                                      frame_count=scene.frames),
                       camera=CameraInfo(fov_deg=50.0, focal_px=1372.4), notes=["synthetic: CMU mocap + TRACE-like noise"],
                       frames_processed=FramesProcessed(first=0, last=scene.frames - 1))


def truth_in_track_world(scene: Scene, person: Person) -> np.ndarray:
    """Ground-truth joints [T,24,3] in the TRACE world of the person's track."""
    r0, c0 = scene.cam_r[person.frames[0]], scene.cam_c[person.frames[0]]
    return (person.joints - c0) @ r0


def track_joints(rest: np.ndarray, track: TrackResult, cleaned: bool) -> np.ndarray:
    """FK joints [T,24,3] of a track's raw or stored world motion, in the track's TRACE world."""
    rotations, joints = forward_kinematics(rest, track.world_poses(cleaned))
    return joints - hip_centers(joints)[:, None] + track.world_hip_centers(cleaned)[:, None]


# ------------------------------------------------------------------------------------------------
# WHAM metrics (lib/eval/eval_utils.py), numpy
# ------------------------------------------------------------------------------------------------


def _umeyama(target: np.ndarray, source: np.ndarray, scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """s, R, t with s R source + t ~ target (points [N,3]); WHAM's align_pcl."""
    mt, ms = target.mean(0), source.mean(0)
    y0, x0 = target - mt, source - ms
    covariance = y0.T @ x0 / len(target)
    u, d, vh = np.linalg.svd(covariance)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vh) < 0:
        sign[2, 2] = -1
    rotation = u @ sign @ vh
    s = float(np.trace(np.diag(d) @ sign) / (np.sum(x0 ** 2) / len(target))) if scale else 1.0
    return s, rotation, mt - s * rotation @ ms


def w_mpjpe(truth: np.ndarray, pred: np.ndarray, chunk: int = 100) -> tuple[float, float]:
    """(W-MPJPE100, WA-MPJPE100) in mm: joints [T,J,3]."""
    first, whole = [], []
    for begin in range(0, len(truth), chunk):
        gt, pr = truth[begin:begin + chunk], pred[begin:begin + chunk]
        s, r, t = _umeyama(gt[:2].reshape(-1, 3), pr[:2].reshape(-1, 3))
        first.append(np.linalg.norm(gt - (s * pr @ r.T + t), axis=-1).mean(-1))
        s, r, t = _umeyama(gt.reshape(-1, 3), pr.reshape(-1, 3))
        whole.append(np.linalg.norm(gt - (s * pr @ r.T + t), axis=-1).mean(-1))
    return 1000 * float(np.concatenate(first).mean()), 1000 * float(np.concatenate(whole).mean())


def rte(truth_root: np.ndarray, pred_root: np.ndarray) -> float:
    """Root translation error, % of the ground-truth path length (rigid fit, no scale)."""
    _, r, t = _umeyama(truth_root, pred_root, scale=False)
    error = np.linalg.norm(truth_root - (pred_root @ r.T + t), axis=-1)
    length = np.linalg.norm(np.diff(truth_root, axis=0), axis=-1).sum()
    return 100 * float((error / max(length, 1e-9)).mean())


def jitter(joints: np.ndarray, fps: float = FPS) -> float:
    """WHAM jitter (units of 10 m/s^3)."""
    d3 = joints[3:] - 3 * joints[2:-1] + 3 * joints[1:-2] - joints[:-3]
    return float(np.linalg.norm(d3 * fps ** 3, axis=-1).mean() / 10.0)


def truth_contacts_joint(truth: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """[T-1,4] ground-truth contact of the foot joints (7, 10, 8, 11) between t and t+1 (WHAM rule)."""
    return np.linalg.norm(np.diff(truth[:, list(FOOT)], axis=0), axis=-1) < threshold


def foot_sliding_mm(truth: np.ndarray, pred: np.ndarray) -> float:
    contact = truth_contacts_joint(truth)
    displacement = np.linalg.norm(np.diff(pred[:, list(FOOT)], axis=0), axis=-1)
    return 1000 * float(displacement[contact].mean()) if contact.any() else float("nan")


def truth_contacts_foot(truth: np.ndarray) -> np.ndarray:
    """[T,2] a foot in contact when its ankle or toe moves < 1 cm to the next frame (last frame: copied)."""
    joint = truth_contacts_joint(truth)
    foot = np.stack([joint[:, 0] | joint[:, 1], joint[:, 2] | joint[:, 3]], axis=1)
    return np.concatenate([foot, foot[-1:]])


def precision_recall(detected: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    detected, truth = np.asarray(detected, bool), np.asarray(truth, bool)
    hits = np.count_nonzero(detected & truth)
    precision = hits / np.count_nonzero(detected) if detected.any() else float("nan")
    recall = hits / np.count_nonzero(truth) if truth.any() else float("nan")
    return float(precision), float(recall)


def rotation_error_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    relative = np.swapaxes(a, -1, -2) @ b
    cosine = np.clip((np.trace(relative, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)
    return np.degrees(np.arccos(cosine))


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    return float(np.degrees(np.arccos(np.clip(a @ b, -1.0, 1.0))))


# ------------------------------------------------------------------------------------------------
# Running the world stage on a scene and scoring it
# ------------------------------------------------------------------------------------------------


def evaluate(scene: Scene, level: NoiseLevel, seed: int = 0, **processing) -> dict:
    """Run `apply_world_processing` on the scene at `level`; before/after metrics per person.

    processing: keyword arguments of apply_world_processing (align, foot_cleanup, denoise, settings).
    Returns {"people": [per-person dict], "floor_deg": (before, after), "floor": method/confidence,
    "camera": {...}, "result": processed TraceResult}.
    """
    from core.world.postprocess import apply_world_processing

    raw = trace_result(scene, level, seed)
    rest = {k: person.clip.rest_joints for k, person in enumerate(scene.people)}
    processed = apply_world_processing(raw, rest_joints_for_track=lambda track: rest[track.track_id], **processing)
    people = []
    for k, person in enumerate(scene.people):
        truth = truth_in_track_world(scene, person)
        before_track, after_track = raw.track(k), processed.track(k)
        before = track_joints(rest[k], before_track, cleaned=False)
        after = track_joints(rest[k], after_track, cleaned=True)
        row = {"person": k, "clip": person.clip.name, "frames": len(truth)}
        for name, joints in (("before", before), ("after", after)):
            w, wa = w_mpjpe(truth, joints)
            row[name] = {"w_mpjpe": w, "wa_mpjpe": wa, "rte": rte(truth[:, 0], joints[:, 0]), "jitter": jitter(joints),
                         "foot_sliding": foot_sliding_mm(truth, joints)}
        row["mocap_jitter"] = jitter(truth)
        contacts = after_track.contacts if after_track.contacts is not None else np.zeros((len(truth), 2), bool)
        row["contact_precision"], row["contact_recall"] = precision_recall(contacts, truth_contacts_foot(truth))
        row["change_mm"] = 1000 * float(np.linalg.norm(after - before, axis=-1).mean())
        row["change_w_mpjpe"] = w_mpjpe(before, after)[0]
        people.append(row)
    # Floor: true up in the shot world (= the TRACE world of the first track).
    r0 = scene.cam_r[scene.people[0].frames[0]]
    true_up = r0.T @ np.array([0.0, 0.0, 1.0])
    shot = processed.shots[0]
    info = shot.alignment_info or {}
    metrics = ((processed.world_processing or {}).get("metrics") or {}).get("shots") or [{}]
    ground = metrics[0].get("ground") or {}
    normal = ground.get("floor_normal_trace")
    floor_after = angle_deg(np.asarray(normal), true_up) if normal is not None else float("nan")
    floor_before = angle_deg(np.array([0.0, -1.0, 0.0]), true_up)
    # Camera: raw per-frame camera of track 0 vs the scene camera, both in the shot world.
    track = raw.track(0)
    frames = track.frames
    truth_r = np.swapaxes(r0, -1, -2)[None] @ scene.cam_r[frames]
    truth_c = (scene.cam_c[frames] - scene.cam_c[frames[0]]) @ r0
    raw_r = axis_angle_to_matrix(track.global_orient_world) @ np.swapaxes(axis_angle_to_matrix(track.poses[:, 0]), -1, -2)
    raw_c = track.hip_center_world - np.einsum("tij,tj->ti", raw_r, track.hip_center_cam)
    camera = {"before_deg": float(rotation_error_deg(truth_r, raw_r).mean()),
              "before_m": float(np.linalg.norm(truth_c - raw_c, axis=1).mean())}
    if processed.scene_camera is not None:
        path = processed.scene_camera
        rows = np.searchsorted(path.frames, frames)
        camera["after_deg"] = float(rotation_error_deg(truth_r, path.rotations[rows]).mean())
        camera["after_m"] = float(np.linalg.norm(truth_c - path.positions[rows], axis=1).mean())
    return {"people": people, "floor_deg": (floor_before, floor_after),
            "floor": {"method": ground.get("method", info.get("method")), "confidence": ground.get("confidence"),
                      "note": ground.get("note")},
            "camera": camera, "result": processed}
