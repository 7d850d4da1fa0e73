"""Foot contacts and foot-skate cleanup in the aligned world (floor z = 0, +Z up; numpy only).

Detection: per foot joint (ankle, toe) a frame is "planted" when its sole is near the floor and the
joint is slow (the slower of its speeds over the frames just before and just after, so a contact
starts on the landing frame and ends on the lift-off frame). Hysteresis: a contact starts only where strict thresholds hold (`enter_*`) and lasts
while looser ones hold (`exit_*`); contacts shorter than `min_contact_s` are dropped and gaps
shorter than `max_gap_s` closed. A foot (left: ankle 7 + toe 10, right: ankle 8 + toe 11) is in
contact when either of its joints is.

Cleanup, per contact segment of a foot:
1. correction of the planted point: the horizontal motion of the contact point (the lower of ankle
   and toe, softly weighted, so heel-strike and heel-off roll are followed) is integrated and
   cancelled, so the point stands still; the anchor is the segment mean (half the correction at
   each end instead of all of it at one end). Vertically the sole is put on the floor
   (`snap_to_floor`) or held at its mean height. Outside the segment the correction fades out over
   `blend_frames` (smoothstep) on both sides, so nothing pops.
2. root: the part of the correction that both feet need (same sign on an axis: the smaller
   magnitude) moves the hip centre, so a drifting body is slowed rather than its legs stretched;
3. two-bone IK (hip-knee-ankle, analytic, knee kept in the plane of the original knee bend) moves
   each ankle to its target; the foot keeps its original global orientation (the toe follows).
Only hip, knee and ankle rotations of the legs change, plus the hip-centre translation.

Sliding metric (`foot_sliding`), as WHAM / GVHMR report "foot sliding" but on joints: for each foot
and each pair of consecutive frames (t, t+1) that are both in contact, the displacement
|p(t+1) - p(t)| of the ankle and of the toe joint (metres, 3D), averaged over both joints, all such
pairs and both feet. WHAM/GVHMR use four foot vertices (heel and toe of each foot) and contact
labels from the ground truth; here the labels are the detected contacts.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trace_format.fk import forward_kinematics, place_by_hip_center
from trace_format.rotations import matrix_to_axis_angle

from .ground import DEFAULT_FOOT_JOINT_HEIGHTS

__all__ = [
    "ContactError",
    "ContactSettings",
    "SkateCleanupSettings",
    "SkateCleanup",
    "LEGS",
    "pose_to_joints",
    "detect_foot_contacts",
    "foot_sliding",
    "two_bone_ik",
    "clean_foot_skate",
]

PELVIS = 0
# Per leg: (hip, knee, ankle, toe) joint indices of SMPL, left then right.
LEGS = ((1, 4, 7, 10), (2, 5, 8, 11))
CANONICAL_FORWARD = np.array([0.0, 0.0, 1.0])   # SMPL bodies face +z in their rest frame: knees bend forward


class ContactError(ValueError):
    """Inputs the contact detection or cleanup cannot use (shapes, times, floor)."""


@dataclass(frozen=True)
class ContactSettings:
    """Contact detection thresholds (metres above the floor for the sole, m/s).

    Every threshold grows with the track's estimated position noise `noise_m` (per frame, metres):
    threshold = base + per_noise * noise_m, so clean motion gets strict thresholds (no heel-off or
    toe-off frame counts as planted) and noisy motion loose ones (planted feet are still found).
    """

    enter_height: float = 0.03      # sole below this ...
    enter_speed: float = 0.15       # ... and joint slower than this: a contact may start
    exit_height: float = 0.04       # contact lasts while the sole stays below this ...
    exit_speed: float = 0.25        # ... and the joint slower than this
    lowest_margin: float = 0.03     # and the sole is at most this above the other foot's lowest sole
    height_per_noise: float = 0.25  # added to the heights and the margin per metre of noise
    speed_per_noise: float = 2.5    # added to the speeds (m/s) per metre of noise
    speed_window_s: float = 0.07    # speed over this span before and after a frame (the slower counts)
    min_contact_s: float = 0.1      # shorter contacts are dropped
    max_gap_s: float = 0.07         # shorter gaps between two contacts of a foot are closed


@dataclass(frozen=True)
class SkateCleanupSettings:
    """Cleanup parameters."""

    blend_frames: int = 4             # correction fades over this many frames outside each contact
    snap_to_floor: bool = True        # planted soles go to z = 0 (else held at their mean height)
    move_root: bool = True            # the correction both feet share moves the hip centre
    contact_softness_m: float = 0.02  # ankle/toe weighting: lower sole by this much ~ e times the weight
    max_reach: float = 0.999          # a leg stretches at most to this fraction of thigh + shin
    # Do no harm: a planted foot is moved by at most floor + per_noise * noise_m (the track's
    # estimated noise per frame). Clean motion keeps its real foot roll and pivots; noisy motion
    # gets the full correction.
    max_correction_floor_m: float = 0.002
    max_correction_per_noise: float = 3.0


@dataclass(frozen=True)
class SkateCleanup:
    """Result of clean_foot_skate (aligned world)."""

    poses: np.ndarray            # [T,24,3] axis-angle, joint 0 = orientation in the aligned world
    hip_centers: np.ndarray      # [T,3]
    joints: np.ndarray           # [T,24,3] posed joints after cleanup
    contacts: np.ndarray         # [T,2] bool (left, right) used
    root_offsets: np.ndarray     # [T,3] added to the hip centres
    foot_offsets: np.ndarray     # [T,2,3] ankle target - original ankle (before the root move)
    sliding_before_m: float      # foot_sliding of the input
    sliding_after_m: float       # foot_sliding of the output (same contacts)
    unreached_frames: int        # (frame, leg) pairs whose target was beyond the leg's reach


def _check_times(times: np.ndarray, count: int) -> np.ndarray:
    times = np.asarray(times, np.float64).reshape(-1)
    if times.shape != (count,):
        raise ContactError(f"times must be [T={count}], got {times.shape}")
    if count > 1 and np.any(np.diff(times) <= 0):
        raise ContactError("times must increase strictly")
    return times


def pose_to_joints(rest_joints: np.ndarray, poses: np.ndarray, hip_centers: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """FK placed by hip centre: (global rotations [T,24,3,3], joints [T,24,3]) in the poses' world.

    rest_joints [24,3] canonical; poses [T,24,3] (joint 0 = orientation in that world); hip_centers [T,3].
    """
    rotations, joints = forward_kinematics(rest_joints, poses)
    return rotations, place_by_hip_center(joints, hip_centers)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop (exclusive) indices of the True runs of a 1-D bool mask [T]."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.diff(padded)
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _hysteresis(enter: np.ndarray, stay: np.ndarray) -> np.ndarray:
    """Runs of `stay` [T] that contain at least one `enter` frame (vectorised Schmitt trigger)."""
    stay = stay | enter
    run_id = np.cumsum(np.concatenate([[stay[0]], stay[1:] & ~stay[:-1]])) * stay   # 0 outside runs
    has_enter = np.bincount(run_id, weights=enter.astype(np.float64), minlength=run_id.max() + 1) > 0
    has_enter[0] = False
    return has_enter[run_id]


def _clean_runs(mask: np.ndarray, min_length: int, max_gap: int) -> np.ndarray:
    """Close gaps shorter than max_gap frames, then drop runs shorter than min_length. [T] -> [T]."""
    out = mask.copy()
    starts, stops = _runs(out)
    for gap_start, gap_stop in zip(stops[:-1], starts[1:]):
        if gap_stop - gap_start < max_gap:
            out[gap_start:gap_stop] = True
    starts, stops = _runs(out)
    for start, stop in zip(starts, stops):
        if stop - start < min_length:
            out[start:stop] = False
    return out


def _planted_speed(positions: np.ndarray, times: np.ndarray, window_s: float) -> np.ndarray:
    """Slower of the backward and forward speeds over ~window_s: positions [T,K,3] -> [T,K] m/s.

    One-sided: at a heel strike the backward speed is high but the forward one already ~0, so the
    contact starts on the landing frame (a centred difference would miss the edges of every stance).
    """
    count = positions.shape[0]
    step = float(np.median(np.diff(times)))
    lag = max(1, int(round(window_s / step)))
    index = np.arange(count)
    earlier, later = np.clip(index - lag, 0, count - 1), np.clip(index + lag, 0, count - 1)

    def speed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        span = times[b] - times[a]                                                   # [T]
        moved = np.linalg.norm(positions[b] - positions[a], axis=-1)                 # [T,K]
        valid = (span > 0) & (span <= 1.5 * lag * step)                              # no gaps, not at an end
        return np.where(valid[:, None], moved / np.where(span > 0, span, 1.0)[:, None], np.inf)

    return np.minimum(speed(earlier, index), speed(index, later))


def detect_foot_contacts(joints: np.ndarray, times: np.ndarray, foot_heights: np.ndarray | None = None,
                         settings: ContactSettings | None = None, noise_m: float = 0.0) -> np.ndarray:
    """Foot contacts [T,2] bool (left, right) from joints [T,24,3] in the aligned world (floor z = 0).

    foot_heights [4]: rest heights of (left ankle, right ankle, left toe, right toe) above the sole
    (ground.foot_joint_heights); default: the default skeleton's. noise_m: the motion's estimated
    position noise per frame (metres); the thresholds grow with it (ContactSettings).
    """
    s = settings or ContactSettings()
    joints = np.asarray(joints, np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (24, 3):
        raise ContactError(f"joints must be [T,24,3], got {joints.shape}")
    count = joints.shape[0]
    times = _check_times(times, count)
    heights = DEFAULT_FOOT_JOINT_HEIGHTS if foot_heights is None else np.asarray(foot_heights, np.float64)
    contacts = np.zeros((count, 2), bool)
    if count < 2:
        return contacts
    step = float(np.median(np.diff(times)))
    min_length = max(1, int(round(s.min_contact_s / step)))
    max_gap = max(1, int(round(s.max_gap_s / step)) + 1)
    noise = max(0.0, float(noise_m)) if np.isfinite(noise_m) else 0.0
    grow_height, grow_speed = s.height_per_noise * noise, s.speed_per_noise * noise
    soles = np.stack([joints[:, [ankle, toe], 2] - heights[[side, side + 2]] for side, (_, _, ankle, toe)
                      in enumerate(LEGS)], axis=1)                                # [T,2 feet,2 joints]
    lowest = soles.min(axis=2)                                                    # [T,2] lowest sole per foot
    for side, (_, _, ankle, toe) in enumerate(LEGS):
        feet = joints[:, [ankle, toe]]                                           # [T,2,3]
        sole = soles[:, side]                                                    # [T,2] sole height
        speed = _planted_speed(feet, times, s.speed_window_s)                    # [T,2]
        low = sole <= lowest[:, 1 - side, None] + s.lowest_margin + grow_height   # not above the other foot
        planted = np.zeros(count, bool)
        for j in range(2):
            enter = (sole[:, j] < s.enter_height + grow_height) & (speed[:, j] < s.enter_speed + grow_speed) & low[:, j]
            stay = (sole[:, j] < s.exit_height + grow_height) & (speed[:, j] < s.exit_speed + grow_speed) & low[:, j]
            planted |= _hysteresis(enter, stay)
        contacts[:, side] = _clean_runs(planted, min_length, max_gap)
    return contacts


def foot_sliding(joints: np.ndarray, contacts: np.ndarray) -> float:
    """Mean per-frame displacement (m) of the ankle and toe joints while the foot stays in contact.

    joints [T,24,3]; contacts [T,2]. Pairs (t, t+1) with the foot in contact at both frames count;
    nan when there is no such pair.
    """
    joints = np.asarray(joints, np.float64)
    contacts = np.asarray(contacts, bool)
    displacements = []
    for side, (_, _, ankle, toe) in enumerate(LEGS):
        both = contacts[1:, side] & contacts[:-1, side]                               # [T-1]
        step = np.linalg.norm(np.diff(joints[:, [ankle, toe]], axis=0), axis=-1)      # [T-1,2]
        displacements.append(step[both].ravel())
    values = np.concatenate(displacements)
    return float(values.mean()) if values.size else float("nan")


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _foot_offsets(joints: np.ndarray, contacts: np.ndarray, foot_heights: np.ndarray,
                  settings: SkateCleanupSettings, limit_m: float = np.inf) -> np.ndarray:
    """Ankle corrections [T,2,3] that pin each planted foot (before any root move), each at most limit_m long."""
    count = joints.shape[0]
    offsets = np.zeros((count, 2, 3))
    blend = max(0, int(settings.blend_frames))
    for side, (_, _, ankle, toe) in enumerate(LEGS):
        feet = joints[:, [ankle, toe]]                                   # [T,2,3]
        sole = feet[..., 2] - foot_heights[[side, side + 2]]             # [T,2]
        # Softly pick the lower of ankle/toe as the contact point (heel strike / heel off).
        weight = np.exp(-(sole - sole.min(axis=1, keepdims=True)) / settings.contact_softness_m)
        weight /= weight.sum(axis=1, keepdims=True)                      # [T,2]
        velocity = np.einsum("tj,tjd->td", weight[:-1], np.diff(feet, axis=0))   # [T-1,3] contact point motion
        contact_sole = np.einsum("tj,tj->t", weight, sole)               # [T]
        drift = np.concatenate([np.zeros((1, 3)), np.cumsum(velocity, axis=0)])  # [T,3] running motion
        correction = np.zeros((count, 3))
        starts, stops = _runs(contacts[:, side])
        for start, stop in zip(starts, stops):
            inside = slice(start, stop)
            pinned = drift[start] - drift[inside]                        # cancels the motion since start
            pinned -= pinned.mean(axis=0)                                # anchor at the mean position
            if settings.snap_to_floor:
                pinned[:, 2] = -contact_sole[inside]
            else:
                pinned[:, 2] = contact_sole[inside].mean() - contact_sole[inside]
            length = np.linalg.norm(pinned, axis=1, keepdims=True)
            pinned = pinned * np.minimum(1.0, limit_m / np.maximum(length, 1e-12))
            correction[inside] = pinned
            if blend:
                ramp = _smoothstep(1.0 - np.arange(1, blend + 1) / (blend + 1))      # [B] 1 -> 0
                before = np.arange(start - 1, start - blend - 1, -1)
                after = np.arange(stop, stop + blend)
                for frames, edge in ((before, pinned[0]), (after, pinned[-1])):
                    ok = (frames >= 0) & (frames < count) & ~contacts[np.clip(frames, 0, count - 1), side]
                    correction[frames[ok]] += ramp[ok, None] * edge
        offsets[:, side] = correction
    return offsets


def _shared_offset(offsets: np.ndarray) -> np.ndarray:
    """The part both feet need [T,3]: per axis, same sign -> the smaller magnitude, else 0. offsets [T,2,3]."""
    left, right = offsets[:, 0], offsets[:, 1]
    same_sign = np.sign(left) == np.sign(right)
    return np.where(same_sign, np.sign(left) * np.minimum(np.abs(left), np.abs(right)), 0.0)


def _minimal_rotation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Smallest rotations [N,3,3] taking unit vectors source [N,3] onto target [N,3]."""
    axis = np.cross(source, target)
    cosine = np.einsum("nd,nd->n", source, target)
    skew = np.zeros(source.shape[:-1] + (3, 3))
    skew[..., 0, 1], skew[..., 0, 2], skew[..., 1, 2] = -axis[..., 2], axis[..., 1], -axis[..., 0]
    skew = skew - np.swapaxes(skew, -1, -2)
    factor = 1.0 / np.maximum(1.0 + cosine, 1e-9)
    rotation = np.eye(3) + skew + (skew @ skew) * factor[..., None, None]
    # Opposite vectors (never in practice for a leg): a half turn about any perpendicular axis.
    opposite = cosine < -1.0 + 1e-9
    if np.any(opposite):
        helper = np.where(np.abs(source[opposite, :1]) < 0.9, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
        perpendicular = np.cross(source[opposite], helper)
        perpendicular /= np.linalg.norm(perpendicular, axis=-1, keepdims=True)
        rotation[opposite] = 2.0 * perpendicular[:, :, None] * perpendicular[:, None, :] - np.eye(3)
    return rotation


def _transposed(matrices: np.ndarray) -> np.ndarray:
    """[...,3,3] -> [...,3,3] transposes (inverse rotations)."""
    return np.swapaxes(matrices, -1, -2)


def _unit(vectors: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norm > 1e-12, norm, 1.0)


def two_bone_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, target: np.ndarray, pole: np.ndarray,
                max_reach: float = 0.999) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Analytic two-bone IK: rotations that bring the ankle to the target, bone lengths kept.

    hip, knee, ankle, target, pole [N,3]; pole: direction the knee should bend towards (used when
    the leg is straight; otherwise the current bend plane is kept).
    Returns (thigh swing R1 [N,3,3], shin swing R2 [N,3,3], new ankle [N,3], reached [N] bool):
    new thigh rotation = R1 @ old, new shin rotation = R2 @ R1 @ old (global rotations).
    """
    thigh, shin = knee - hip, ankle - knee
    thigh_length = np.linalg.norm(thigh, axis=-1)
    shin_length = np.linalg.norm(shin, axis=-1)
    to_target = target - hip
    distance = np.linalg.norm(to_target, axis=-1)
    longest = max_reach * (thigh_length + shin_length)
    shortest = np.abs(thigh_length - shin_length) + 1e-6
    reached = (distance <= longest) & (distance >= shortest)
    distance = np.clip(distance, shortest, longest)
    direction = _unit(np.where(np.linalg.norm(to_target, axis=-1, keepdims=True) > 1e-9, to_target, ankle - hip))
    leg_axis = _unit(ankle - hip)
    bend = thigh - np.einsum("nd,nd->n", thigh, leg_axis)[:, None] * leg_axis          # knee offset from the hip-ankle line
    bend = np.where((np.linalg.norm(bend, axis=-1) > 1e-4 * thigh_length)[:, None], bend, pole)
    bend = _unit(bend - np.einsum("nd,nd->n", bend, direction)[:, None] * direction)
    cos_hip = np.clip((thigh_length ** 2 + distance ** 2 - shin_length ** 2) / (2 * thigh_length * distance), -1.0, 1.0)
    sin_hip = np.sqrt(1.0 - cos_hip ** 2)
    new_knee = hip + thigh_length[:, None] * (cos_hip[:, None] * direction + sin_hip[:, None] * bend)
    new_ankle = hip + distance[:, None] * direction
    swing_thigh = _minimal_rotation(_unit(thigh), _unit(new_knee - hip))
    moved_shin = np.einsum("nij,nj->ni", swing_thigh, shin)
    swing_shin = _minimal_rotation(_unit(moved_shin), _unit(new_ankle - new_knee))
    return swing_thigh, swing_shin, new_ankle, reached


def clean_foot_skate(rest_joints: np.ndarray, poses: np.ndarray, hip_centers: np.ndarray, times: np.ndarray,
                     contacts: np.ndarray | None = None, foot_heights: np.ndarray | None = None,
                     contact_settings: ContactSettings | None = None,
                     settings: SkateCleanupSettings | None = None, noise_m: float = 0.0) -> SkateCleanup:
    """Pin planted feet: returns corrected poses and hip centres (aligned world, floor z = 0).

    rest_joints [24,3] canonical rest joints of this body; poses [T,24,3] axis-angle with joint 0 =
    orientation in the aligned world; hip_centers [T,3]; times [T] seconds; contacts [T,2] optional
    (detected when None); foot_heights [4] (ground.foot_joint_heights) default: default skeleton.
    """
    s = settings or SkateCleanupSettings()
    poses = np.asarray(poses, np.float64)
    hip_centers = np.asarray(hip_centers, np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (24, 3):
        raise ContactError(f"poses must be [T,24,3], got {poses.shape}")
    count = poses.shape[0]
    if hip_centers.shape != (count, 3):
        raise ContactError(f"hip_centers must be [T={count},3], got {hip_centers.shape}")
    times = _check_times(times, count)
    heights = DEFAULT_FOOT_JOINT_HEIGHTS if foot_heights is None else np.asarray(foot_heights, np.float64)
    rotations, joints = pose_to_joints(rest_joints, poses, hip_centers)
    if contacts is None:
        contacts = detect_foot_contacts(joints, times, heights, contact_settings, noise_m)
    contacts = np.asarray(contacts, bool)
    if contacts.shape != (count, 2):
        raise ContactError(f"contacts must be [T={count},2], got {contacts.shape}")

    noise = max(0.0, float(noise_m)) if np.isfinite(noise_m) else 0.0
    limit = s.max_correction_floor_m + s.max_correction_per_noise * noise
    offsets = _foot_offsets(joints, contacts, heights, s, limit)               # [T,2,3]
    root_offsets = _shared_offset(offsets) if s.move_root else np.zeros((count, 3))
    moved = joints + root_offsets[:, None, :]                                  # whole body shifted
    new_poses = poses.copy()
    unreached = 0
    pelvis_rotation = rotations[:, PELVIS]
    for side, (hip, knee, ankle, _) in enumerate(LEGS):
        # Frames where this ankle has a target or the body moved under it (else the leg is untouched).
        active = np.flatnonzero(np.any(offsets[:, side] != 0.0, axis=1) | np.any(root_offsets != 0.0, axis=1))
        if active.size == 0:
            continue
        target = joints[active, ankle] + offsets[active, side]                 # where the ankle must go
        pole = np.einsum("nij,j->ni", pelvis_rotation[active], CANONICAL_FORWARD)
        swing_thigh, swing_shin, _, reached = two_bone_ik(moved[active, hip], moved[active, knee], moved[active, ankle],
                                                          target, pole, s.max_reach)
        unreached += int(np.count_nonzero(~reached))
        thigh_rotation = swing_thigh @ rotations[active, hip]
        shin_rotation = swing_shin @ swing_thigh @ rotations[active, knee]
        foot_rotation = rotations[active, ankle]                                 # foot keeps its orientation
        new_poses[active, hip] = matrix_to_axis_angle(_transposed(pelvis_rotation[active]) @ thigh_rotation)
        new_poses[active, knee] = matrix_to_axis_angle(_transposed(thigh_rotation) @ shin_rotation)
        new_poses[active, ankle] = matrix_to_axis_angle(_transposed(shin_rotation) @ foot_rotation)
    new_hips = hip_centers + root_offsets
    _, new_joints = pose_to_joints(rest_joints, new_poses, new_hips)
    return SkateCleanup(
        poses=new_poses, hip_centers=new_hips, joints=new_joints, contacts=contacts, root_offsets=root_offsets,
        foot_offsets=offsets, sliding_before_m=foot_sliding(joints, contacts),
        sliding_after_m=foot_sliding(new_joints, contacts), unreached_frames=unreached)
