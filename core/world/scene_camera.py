"""One camera for the scene, recovered from what TRACE says about each person (numpy only).

For every person and frame TRACE gives the body in the camera frame (orientation `poses[:, 0]`,
`hip_center_cam`) and in its world (`global_orient_world`, `hip_center_world`). The rigid motion that
maps one onto the other is the camera pose in the world:

    R_cam_to_world = R_world_body @ R_cam_body^T,   camera centre t = hip_world - R_cam_to_world @ hip_cam

Each person is one noisy witness. This module
1. registers tracks: a track that starts later was put by TRACE in the world of the camera where it
   first appeared, not in the first frame's camera. Each track gets one rigid correction mapping its
   world into the scene world (estimated where it overlaps tracks already registered; a track that
   overlaps none continues from the last known camera pose). Apply `registrations[k]` to that
   track's world arrays so that every person shares one world;
2. fuses the witnesses per frame: confidence-weighted chordal L2 mean of the rotations (SVD
   projection of the weighted sum) and weighted mean centre, re-weighted twice with Tukey's biweight
   on each witness's angle and distance to the fused pose (a witness beyond 3 scales is ignored, so
   one bad track cannot drag the camera);
3. smooths the observed frames over time with a Gaussian local-linear fit (unbiased on
   constant-velocity motion and at the ends of the data) on the centre and on the rotation matrix
   entries (projected back to SO(3));
4. fills frames without any witness: linear interpolation of the centre and slerp of the rotation
   between the nearest supported frames, held constant before the first and after the last one.
   Those frames are flagged `interpolated`.

Scaling: each track is stored sparsely (only its own frames), a track is registered by looking at
its own frames only (at most `registration_frames` shared ones), and the fusion runs over blocks of
frames stacking only the people present there. Time and memory therefore grow linearly with the
video length and with the person-frames; the people seen together in one frame enter squared
(the medoid start), never the number of tracks of the whole shot.

All rotations act on column vectors; the camera frame is OpenCV's (x right, y down, z forward).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from trace_format.rotations import (axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quaternion,
                                    quaternion_to_matrix)


__all__ = [
    "SceneCameraError",
    "CameraEvidence",
    "SceneCameraSettings",
    "SceneCamera",
    "camera_poses_from_track",
    "register_tracks",
    "apply_world_transform",
    "estimate_scene_camera",
]

# Witness pairs x frames fused at once (each pairwise array of that many float64 is 8 MB).
_PAIRWISE_BUDGET = 1 << 20


class SceneCameraError(ValueError):
    """Inputs the scene camera cannot be built from (shapes, no usable frame)."""


@dataclass(frozen=True)
class CameraEvidence:
    """What one track says about the camera (arrays per track frame, from the result file)."""

    frames: np.ndarray        # [T] int video frame indices, increasing
    orient_cam: np.ndarray    # [T,3] axis-angle body orientation in the camera frame (poses[:, 0])
    orient_world: np.ndarray  # [T,3] axis-angle body orientation in TRACE world (global_orient_world)
    hip_cam: np.ndarray       # [T,3] hip centre in the camera frame (metres)
    hip_world: np.ndarray     # [T,3] hip centre in TRACE world
    weights: np.ndarray | None = None  # [T] >= 0, e.g. confidence * observed (infilled frames: 0)

    def checked(self) -> "CameraEvidence":
        frames = np.asarray(self.frames).astype(np.int64).reshape(-1)
        count = frames.size
        if count > 1 and np.any(np.diff(frames) <= 0):
            raise SceneCameraError("track frames must be strictly increasing")
        arrays = []
        for name in ("orient_cam", "orient_world", "hip_cam", "hip_world"):
            value = np.asarray(getattr(self, name), np.float64)
            if value.shape != (count, 3):
                raise SceneCameraError(f"{name} must be [T={count},3], got {value.shape}")
            arrays.append(value)
        weights = np.ones(count) if self.weights is None else np.asarray(self.weights, np.float64).reshape(-1)
        if weights.shape != (count,):
            raise SceneCameraError(f"weights must be [T={count}], got {weights.shape}")
        finite = np.all(np.isfinite(np.concatenate(arrays, axis=1)), axis=1) & np.isfinite(weights)
        weights = np.where(finite, np.clip(weights, 0.0, None), 0.0)
        arrays = [np.nan_to_num(a) for a in arrays]
        return CameraEvidence(frames, *arrays, weights=weights)


@dataclass(frozen=True)
class SceneCameraSettings:
    """Fusion and smoothing parameters (frames, degrees, metres)."""

    smoothing_sigma_frames: float = 2.0    # Gaussian local-linear smoother; 0 disables smoothing
    robust_angle_deg: float = 8.0          # biweight scale of a witness's angle to the fused rotation
    robust_distance_m: float = 0.5         # biweight scale of a witness's distance to the fused centre
    robust_iterations: int = 2
    register_tracks: bool = True           # put late tracks into the scene world (see module doc)
    min_overlap_weight: float = 1.0        # summed weight of overlapping frames to register on them
    registration_frames: int = 900         # at most this many shared frames (evenly spread) register a track; 0 = all
    block_frames: int = 1024               # frames fused at once (memory ~ block x people seen together^2)


@dataclass(frozen=True)
class SceneCamera:
    """Per-frame camera pose in TRACE world for frames first_frame .. last_frame."""

    frames: np.ndarray          # [F] int, consecutive video frame indices
    rotations: np.ndarray       # [F,3,3] camera (OpenCV axes) -> TRACE world
    positions: np.ndarray       # [F,3] camera centre in TRACE world (metres)
    observed: np.ndarray        # [F] bool: at least one person gave evidence at this frame
    interpolated: np.ndarray    # [F] bool: no evidence; pose bridged or held (= ~observed)
    witnesses: np.ndarray       # [F] int: people that gave evidence
    spread_deg: np.ndarray      # [F] weighted RMS angle of the witnesses to the fused rotation (nan < 2)
    spread_m: np.ndarray        # [F] weighted RMS distance of their centres to the fused centre (nan < 2)
    registrations: list[np.ndarray]  # per input track [4,4]: its TRACE world -> the scene world

    def in_world(self, alignment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Poses mapped by a rigid world transform [4,4] (e.g. the ground alignment): (R [F,3,3], t [F,3])."""
        rotation, translation = alignment[:3, :3], alignment[:3, 3]
        return rotation @ self.rotations, self.positions @ rotation.T + translation


def _project_to_rotation(matrices: np.ndarray) -> np.ndarray:
    """Nearest rotation (Frobenius) of each [...,3,3] matrix via SVD, det +1."""
    u, _, vt = np.linalg.svd(matrices)
    sign = np.sign(np.linalg.det(u @ vt))
    u = u.copy()
    u[..., :, 2] *= sign[..., None]
    return u @ vt


def _rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between rotations [...,3,3] and [...,3,3] in degrees (robust chordal form)."""
    chord = np.linalg.norm(a - b, axis=(-2, -1))  # = 2 sqrt(2) sin(angle / 2)
    return np.degrees(2.0 * np.arcsin(np.clip(chord / (2.0 * math.sqrt(2.0)), 0.0, 1.0)))


def camera_poses_from_track(evidence: CameraEvidence) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame camera pose one track implies: (R_cam_to_world [T,3,3], centre [T,3])."""
    rotation = axis_angle_to_matrix(evidence.orient_world) @ np.swapaxes(axis_angle_to_matrix(evidence.orient_cam), -1, -2)
    centre = evidence.hip_world - np.einsum("tij,tj->ti", rotation, evidence.hip_cam)
    return rotation, centre


def _compose(transform: np.ndarray, rotation: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply a world correction [4,4] to poses (R [...,3,3], t [...,3])."""
    return transform[:3, :3] @ rotation, centre @ transform[:3, :3].T + transform[:3, 3]


def _pairwise_scaled_sq_distance(rotations: np.ndarray, centres: np.ndarray, settings: "SceneCameraSettings"
                                 ) -> np.ndarray:
    """Squared distances [J,K,F] between every two witnesses of each frame, in robust scales.

    rotations [K,F,3,3], centres [K,F,3]. Uses inner products (|a-b|^2 = |a|^2 + |b|^2 - 2 a.b and
    |Ra-Rb|_F^2 = 2 (3 - <Ra,Rb>)), i.e. a batched matrix product instead of K^2 difference arrays.
    Accurate to ~1e-7 deg / 1e-8 m, which is plenty to pick the medoid start point.
    """
    count, frames = rotations.shape[:2]
    flat = rotations.reshape(count, frames, 9)
    inner = np.einsum("jfi,kfi->jkf", flat, flat)                                           # [J,K,F]
    chord = np.sqrt(np.clip(2.0 * (3.0 - inner), 0.0, None))
    angle = np.degrees(2.0 * np.arcsin(np.clip(chord / (2.0 * math.sqrt(2.0)), 0.0, 1.0)))
    squared = np.einsum("kfi,kfi->kf", centres, centres)                                    # [K,F]
    cross = np.einsum("jfi,kfi->jkf", centres, centres)                                     # [J,K,F]
    distance = np.sqrt(np.clip(squared[:, None] + squared[None] - 2.0 * cross, 0.0, None))
    return (angle / settings.robust_angle_deg) ** 2 + (distance / settings.robust_distance_m) ** 2


def _fuse(rotations: np.ndarray, centres: np.ndarray, weights: np.ndarray, settings: SceneCameraSettings
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Robust per-frame fusion of K witnesses on a dense block of frames.

    rotations [K,F,3,3], centres [K,F,3], weights [K,F] (0 = no evidence).
    Returns (R [F,3,3], t [F,3], total weight [F], spread_deg [F], spread_m [F]).
    Every frame is fused on its own, so a long range can be processed block by block (`_fuse_sparse`).
    """
    total = weights.sum(axis=0)                                    # [F]
    safe_total = np.where(total > 0, total, 1.0)
    present = weights > 0                                           # [K,F]

    def scaled_sq_distance(reference_r: np.ndarray, reference_t: np.ndarray) -> np.ndarray:
        """Squared distance of every witness [K,F] to reference poses [...,F,...], in robust scales."""
        angle = _rotation_angle_deg(rotations, reference_r)
        distance = np.linalg.norm(centres - reference_t, axis=-1)
        return (angle / settings.robust_angle_deg) ** 2 + (distance / settings.robust_distance_m) ** 2

    # Start from the medoid witness (least weighted distance to the others), not the plain mean, so a
    # far-off witness cannot pull the start point so far that the good ones look like outliers.
    pairwise = _pairwise_scaled_sq_distance(rotations, centres, settings)          # [J,K,F]
    spread = np.einsum("jkf,kf->jf", np.sqrt(pairwise), weights)                   # [J,F]
    medoid = np.argmin(np.where(present, spread, np.inf), axis=0)   # [F]
    frame_index = np.arange(weights.shape[1])
    fused_r, fused_t = rotations[medoid, frame_index], centres[medoid, frame_index]
    robust = weights
    for _ in range(settings.robust_iterations + 1):
        tukey = np.clip(1.0 - scaled_sq_distance(fused_r[None], fused_t[None]) / 9.0, 0.0, None) ** 2  # 0 beyond 3 scales
        robust = weights * tukey           # the medoid itself always keeps its weight
        weighted = np.einsum("kf,kfij->fij", robust, rotations)
        fused_r = _project_to_rotation(np.where((total > 0)[:, None, None], weighted, np.eye(3)))
        norm = np.where(robust.sum(axis=0) > 0, robust.sum(axis=0), 1.0)
        fused_t = np.einsum("kf,kfi->fi", robust, centres) / norm[:, None]
    angle = _rotation_angle_deg(rotations, fused_r[None])
    distance = np.linalg.norm(centres - fused_t[None], axis=-1)
    several = (weights > 0).sum(axis=0) >= 2
    spread_deg = np.where(several, np.sqrt((weights * angle ** 2).sum(axis=0) / safe_total), np.nan)
    spread_m = np.where(several, np.sqrt((weights * distance ** 2).sum(axis=0) / safe_total), np.nan)
    return fused_r, fused_t, total, spread_deg, spread_m


@dataclass(frozen=True)
class _TrackPoses:
    """Sparse per-track storage: the camera poses one track implies, only on its frames with weight > 0."""

    frames: np.ndarray     # [N] int64, strictly increasing
    rotations: np.ndarray  # [N,3,3] camera -> world of this track (or the scene world once registered)
    centres: np.ndarray    # [N,3]
    weights: np.ndarray    # [N] > 0

    @classmethod
    def from_evidence(cls, evidence: CameraEvidence) -> "_TrackPoses":
        """Poses of a checked CameraEvidence; frames without weight are dropped (they count nowhere)."""
        keep = evidence.weights > 0
        rotation, centre = camera_poses_from_track(evidence)
        return cls(evidence.frames[keep], rotation[keep], centre[keep], evidence.weights[keep])

    def moved(self, transform: np.ndarray) -> "_TrackPoses":
        return _TrackPoses(self.frames, *_compose(transform, self.rotations, self.centres), self.weights)

    def rows_at(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row index [Q], present [Q] bool) of this track at the sorted query frames [Q]."""
        rows = np.minimum(np.searchsorted(self.frames, frames), len(self.frames) - 1)
        return rows, self.frames[rows] == frames


@dataclass(frozen=True)
class _Fused:
    """The fused camera at a set of query frames (the arrays of `_fuse`, plus the witness count)."""

    rotations: np.ndarray   # [Q,3,3]
    centres: np.ndarray     # [Q,3]
    total: np.ndarray       # [Q] summed weight (0: nobody there)
    spread_deg: np.ndarray  # [Q]
    spread_m: np.ndarray    # [Q]
    witnesses: np.ndarray   # [Q] int


def _fuse_sparse(tracks: Sequence[_TrackPoses], frames: np.ndarray, settings: SceneCameraSettings) -> _Fused:
    """Fuse the tracks' poses at the sorted query frames [Q], block by block.

    Each block of query frames stacks only the tracks that have a row in it, so the cost is
    ~ sum over frames of (people there)^2 and the memory ~ one block, whatever the video length.
    """
    count = len(frames)
    out = _Fused(np.broadcast_to(np.eye(3), (count, 3, 3)).copy(), np.zeros((count, 3)), np.zeros(count),
                 np.full(count, np.nan), np.full(count, np.nan), np.zeros(count, np.int64))
    if count == 0 or not tracks:
        return out
    spans = np.array([(track.frames[0], track.frames[-1]) for track in tracks])     # [K,2]
    block = max(1, int(settings.block_frames))
    for begin in range(0, count, block):
        query = frames[begin:begin + block]                                          # [B]
        near = np.flatnonzero((spans[:, 0] <= query[-1]) & (spans[:, 1] >= query[0]))
        located = [tracks[k].rows_at(query) for k in near]
        members = [(k, rows, present) for k, (rows, present) in zip(near, located) if present.any()]
        if not members:
            continue
        size = len(query)
        rotations = np.broadcast_to(np.eye(3), (len(members), size, 3, 3)).copy()  # [Kb,B,3,3]
        centres = np.zeros((len(members), size, 3))                                 # [Kb,B,3]
        weights = np.zeros((len(members), size))                                    # [Kb,B]
        for slot, (k, rows, present) in enumerate(members):
            picked = rows[present]
            rotations[slot, present] = tracks[k].rotations[picked]
            centres[slot, present] = tracks[k].centres[picked]
            weights[slot, present] = tracks[k].weights[picked]
        # Pairwise witness distances take people^2 x frames: fewer frames at once when many people are there.
        step = max(1, _PAIRWISE_BUDGET // len(members) ** 2)
        for sub in range(0, size, step):
            inner = slice(sub, sub + step)
            part = slice(begin + sub, begin + min(sub + step, size))
            fused_r, fused_t, total, spread_deg, spread_m = _fuse(rotations[:, inner], centres[:, inner],
                                                                  weights[:, inner], settings)
            out.rotations[part], out.centres[part], out.total[part] = fused_r, fused_t, total
            out.spread_deg[part], out.spread_m[part] = spread_deg, spread_m
            out.witnesses[part] = (weights[:, inner] > 0).sum(axis=0)
    return out


def _mean_rigid(target_r: np.ndarray, target_t: np.ndarray, source_r: np.ndarray, source_t: np.ndarray,
                weights: np.ndarray) -> np.ndarray:
    """Rigid G [4,4] with G * source ~ target over frames: R_G = mean(R_tgt R_src^T), t_G = mean(t_tgt - R_G t_src).

    target/source rotations [N,3,3], centres [N,3], weights [N] (> 0 somewhere).
    """
    rotation = _project_to_rotation(np.einsum("n,nij,nkj->ik", weights, target_r, source_r))
    translation = weights @ (target_t - source_t @ rotation.T) / weights.sum()
    transform = np.eye(4)
    transform[:3, :3], transform[:3, 3] = rotation, translation
    return transform


def _evenly_spread(candidates: np.ndarray, limit: int) -> np.ndarray:
    """At most `limit` (> 0) entries of a sorted array, evenly spread over it (all when it is shorter)."""
    if limit <= 0 or len(candidates) <= limit:
        return candidates
    return candidates[np.unique(np.round(np.linspace(0, len(candidates) - 1, limit)).astype(np.int64))]


def _registration_of(track: _TrackPoses, registered: list[_TrackPoses], s: SceneCameraSettings) -> np.ndarray:
    """Rigid correction [4,4] of one track onto the fused camera of the tracks registered before it.

    Only the track's own frames are looked at: those shared with registered tracks (at most
    `s.registration_frames` of them, evenly spread), else the last known camera pose before it starts.
    """
    overlapping = [other for other in registered
                   if other.frames[0] <= track.frames[-1] and other.frames[-1] >= track.frames[0]]
    shared = np.zeros(len(track.frames), bool)
    for other in overlapping:
        shared |= other.rows_at(track.frames)[1]
    rows = _evenly_spread(np.flatnonzero(shared), s.registration_frames)            # [M] rows of the track
    if rows.size:
        scene = _fuse_sparse(overlapping, track.frames[rows], s)
        overlap = np.minimum(scene.total, track.weights[rows])                     # [M]
        if overlap.sum() >= s.min_overlap_weight:
            return _mean_rigid(scene.rotations, scene.centres, track.rotations[rows], track.centres[rows], overlap)
    # Nobody (or too little) seen together: chain to the last known camera pose at or before the track's first frame.
    start = int(track.frames[0])
    before = [int(other.frames[index]) for other in registered
              if (index := int(np.searchsorted(other.frames, start, side="right")) - 1) >= 0]
    anchor = max(before) if before else min(int(other.frames[0]) for other in registered)
    at_anchor = np.array([anchor])
    scene = _fuse_sparse([other for other in registered if other.rows_at(at_anchor)[1][0]], at_anchor, s)
    return _mean_rigid(scene.rotations, scene.centres, track.rotations[:1], track.centres[:1], np.ones(1))


def _register(poses: list[_TrackPoses], s: SceneCameraSettings) -> list[np.ndarray]:
    """Registrations [4,4] of sparse track poses (empty tracks: identity); see register_tracks."""
    registrations = [np.eye(4) for _ in poses]
    usable = [k for k, track in enumerate(poses) if len(track.frames)]
    if not s.register_tracks or len(usable) < 2:
        return registrations
    order = sorted(usable, key=lambda k: (int(poses[k].frames[0]), -float(poses[k].weights.sum())))
    registered = [poses[order[0]]]
    for k in order[1:]:
        registrations[k] = _registration_of(poses[k], registered, s)
        registered.append(poses[k].moved(registrations[k]))
    return registrations


def register_tracks(evidence: Sequence[CameraEvidence], settings: SceneCameraSettings | None = None
                    ) -> list[np.ndarray]:
    """Rigid corrections [4,4] putting each track's world into the scene world (the first track's).

    Tracks are taken in order of their first weighted frame. A track is registered on the frames it
    shares with the tracks already registered (fused), else chained to the last known camera pose
    before its first frame (the camera is assumed not to jump while nobody is seen). Each track is
    compared on its own frames only (sparse storage), so the cost grows with the person-frames and
    the people seen together, not with tracks x video length.
    """
    s = settings or SceneCameraSettings()
    return _register([_TrackPoses.from_evidence(e.checked()) for e in evidence], s)


def apply_world_transform(transform: np.ndarray, orient_world: np.ndarray, hip_world: np.ndarray,
                          joints_world: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Map one track's world arrays by a rigid [4,4] (a registration, or the ground alignment).

    orient_world [T,3] axis-angle, hip_world [T,3], joints_world [T,24,3] optional ->
    the same arrays in the target world (orientation R -> R_G R, points p -> R_G p + t_G).
    """
    transform = np.asarray(transform, np.float64)
    if transform.shape != (4, 4):
        raise SceneCameraError(f"a world transform must be [4,4], got {transform.shape}")
    rotation, translation = transform[:3, :3], transform[:3, 3]
    orient = matrix_to_axis_angle(rotation @ axis_angle_to_matrix(np.asarray(orient_world, np.float64)))
    hips = np.asarray(hip_world, np.float64) @ rotation.T + translation
    joints = None if joints_world is None else np.asarray(joints_world, np.float64) @ rotation.T + translation
    return orient, hips, joints


def _gaussian_local_linear(values: np.ndarray, weights: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Weighted Gaussian local-linear regression on a uniform grid.

    values [F,C], weights [F] >= 0, sigma in samples. Returns (estimates [F,C], support [F]) where
    support = sum of kernel * weight (kernel peak 1). Where the window holds evidence at a single
    offset only, the local weighted mean is returned; where support is ~0 the estimate is meaningless
    and the caller fills it. The sums run over the kernel taps (2 * ceil(3 sigma) + 1 shifted adds),
    so time and memory stay linear in F.
    """
    radius = max(1, int(math.ceil(3.0 * sigma)))
    count = len(weights)
    padded_w = np.pad(weights, radius)                                   # [F+2r]
    padded_wv = np.pad(weights[:, None] * values, ((radius, radius), (0, 0)))   # [F+2r,C]
    s0, s1, s2 = np.zeros(count), np.zeros(count), np.zeros(count)      # [F]
    y0, y1 = np.zeros(values.shape), np.zeros(values.shape)              # [F,C]
    for tap in range(2 * radius + 1):
        offset = float(tap - radius)
        kernel = math.exp(-0.5 * (offset / sigma) ** 2)
        kw = kernel * padded_w[tap:tap + count]
        kwv = kernel * padded_wv[tap:tap + count]
        s0 += kw
        s1 += offset * kw
        s2 += offset * offset * kw
        y0 += kwv
        y1 += offset * kwv
    determinant = s0 * s2 - s1 ** 2
    safe_s0 = np.where(s0 > 0, s0, 1.0)
    linear_ok = determinant > 1e-3 * np.maximum(s0 * s2, 1e-12)
    safe_det = np.where(linear_ok, determinant, 1.0)
    linear = (s2[:, None] * y0 - s1[:, None] * y1) / safe_det[:, None]
    constant = y0 / safe_s0[:, None]
    return np.where(linear_ok[:, None], linear, constant), s0


def _slerp_fill(rotations: np.ndarray, centres: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill frames where known[F] is False: slerp / lerp between neighbours, hold at the ends."""
    index = np.arange(len(known))
    known_index = np.flatnonzero(known)
    last = len(known_index) - 1
    before = np.searchsorted(known_index, index, side="right") - 1      # last known frame <= index (-1: none)
    after = np.where(before >= 0, before, 0)
    after = np.where((before >= 0) & ~known, np.minimum(before + 1, last), after)  # first known frame > index
    before = np.where(before < 0, 0, before)                             # before the first known: hold it
    lo, hi = known_index[before], known_index[after]
    hi = np.where(hi < index, lo, hi)                                    # after the last known: hold it
    span = np.where(hi > lo, hi - lo, 1)
    fraction = np.where(hi > lo, (index - lo) / span, 0.0)               # [F]
    q_lo, q_hi = matrix_to_quaternion(rotations[lo]), matrix_to_quaternion(rotations[hi])
    dot = np.sum(q_lo * q_hi, axis=-1)
    q_hi = np.where((dot < 0)[:, None], -q_hi, q_hi)
    angle = np.arccos(np.clip(np.abs(dot), -1.0, 1.0))                   # half the rotation angle
    small = angle < 1e-6
    sin_angle = np.where(small, 1.0, np.sin(angle))
    w_lo = np.where(small, 1.0 - fraction, np.sin((1.0 - fraction) * angle) / sin_angle)
    w_hi = np.where(small, fraction, np.sin(fraction * angle) / sin_angle)
    filled_r = quaternion_to_matrix(w_lo[:, None] * q_lo + w_hi[:, None] * q_hi)
    filled_t = (1.0 - fraction)[:, None] * centres[lo] + fraction[:, None] * centres[hi]
    out_r = np.where(known[:, None, None], rotations, filled_r)
    out_t = np.where(known[:, None], centres, filled_t)
    return out_r, out_t


def estimate_scene_camera(evidence: Sequence[CameraEvidence], settings: SceneCameraSettings | None = None,
                          frame_range: tuple[int, int] | None = None) -> SceneCamera:
    """The scene camera over a frame range from every track's evidence.

    evidence: one CameraEvidence per track; frame_range: half-open (start, stop) of video frames to
    cover (default: first to last frame any track has evidence for). Raises SceneCameraError when no
    track has a usable frame. Time and memory grow linearly with the frames covered and with the
    person-frames given (people seen together enter squared, per frame).
    """
    s = settings or SceneCameraSettings()
    poses = [_TrackPoses.from_evidence(e.checked()) for e in evidence]
    usable = [k for k, track in enumerate(poses) if len(track.frames)]
    if not usable:
        raise SceneCameraError("no track has a frame with positive weight: nothing tells where the camera is")
    registrations = _register(poses, s)
    if frame_range is None:
        first = min(int(poses[k].frames[0]) for k in usable)
        stop = max(int(poses[k].frames[-1]) for k in usable) + 1
    else:
        first, stop = int(frame_range[0]), int(frame_range[1])
        if stop <= first:
            raise SceneCameraError(f"frame_range {frame_range} is empty")
    count = stop - first
    frames = np.arange(first, stop)
    fused = _fuse_sparse([poses[k].moved(registrations[k]) for k in usable], frames, s)
    observed = fused.total > 0
    if not observed.any():
        raise SceneCameraError(f"no track has evidence inside frames [{first}, {stop})")
    if s.smoothing_sigma_frames > 0:
        channels = np.concatenate([fused.rotations.reshape(count, 9), fused.centres], axis=1)     # [F,12]
        smoothed, _ = _gaussian_local_linear(channels, np.minimum(fused.total, 1.0), s.smoothing_sigma_frames)
        smooth_r = _project_to_rotation(np.where(observed[:, None, None], smoothed[:, :9].reshape(count, 3, 3), np.eye(3)))
        smooth_t = smoothed[:, 9:]
    else:
        smooth_r, smooth_t = fused.rotations, fused.centres
    # Frames without evidence are bridged between the smoothed observed frames (never extrapolated).
    final_r, final_t = _slerp_fill(smooth_r, smooth_t, observed)
    return SceneCamera(
        frames=frames, rotations=final_r, positions=final_t, observed=observed, interpolated=~observed,
        witnesses=fused.witnesses, spread_deg=fused.spread_deg, spread_m=fused.spread_m,
        registrations=registrations)
