"""Temporal denoising of tracked world motion: root trajectory, global orientation, joint rotations.

TRACE's world output jitters by centimetres to decimetres per frame, mostly along the camera ray
(depth), with occasional outlier frames (a jump, a 180-degree flip of the body). This module
smooths every track of a shot in that shot's world (numpy only):

* **Model**: a constant-acceleration state (value, velocity, acceleration) per channel, driven by
  white jerk (process noise `*_jerk`), observed with per-frame noise; a Kalman filter forward and
  a Rauch-Tung-Striebel (RTS) smoother backward give the minimum-variance estimate of the whole
  track (the same answer as the penalised least-squares "data + jerk" optimisation, in O(T)).
* **Root** (hip centre): one coupled 3D filter whose measurement covariance is anisotropic,
  `s_perp^2 I + (s_ray^2 - s_perp^2) r r^T` with r the camera ray of that frame, so depth noise is
  smoothed hard and image-plane motion hardly at all.
* **Rotations** (global orientation and the 23 joint rotations): unit quaternions, four channels per
  joint sharing one covariance; each measurement takes the sign nearest the prediction (no
  long-way spins, no sign chains broken by an outlier); the result is renormalised.
* **Noise levels** are estimated per track from the data (robust scale of third differences: a
  white error of sigma gives third differences of sigma * sqrt(20), real motion very little at
  30 fps), separately along the ray and across it; clean input therefore gets almost no smoothing.
* **Weights**: the measurement variance is divided by the frame's weight (confidence x observed);
  weight 0 frames are bridged by the model.
* **Outliers**: a measurement whose innovation is beyond the chi-square gate is down-weighted by
  gate / distance^2 (a Huber-like rule), so a flip or a jump barely moves the estimate.

Long tracks are smoothed in blocks of `block_frames` with a `lookahead_frames` overlap (the filter
state is carried exactly; the smoother's dependence on data further ahead is negligible), so
memory stays bounded. `denoise_tracks` processes several tracks of one shot in one batch.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from trace_format.rotations import axis_angle_to_quaternion, make_quaternions_continuous, quaternion_to_axis_angle

__all__ = ["DenoiseSettings", "TrackMotion", "DenoisedTrack", "estimate_position_noise", "estimate_rotation_noise",
           "sampled_rotation_noise", "motion_noise", "denoise_tracks", "MIN_DENOISE_FRAMES"]

MIN_DENOISE_FRAMES = 8   # shorter tracks are passed through unchanged (noise cannot be estimated)


@dataclass(frozen=True)
class DenoiseSettings:
    """Smoother parameters (SI units; chosen on benchmarks/bench_world_quality.py, docs/world.md)."""

    method: str = "rts"                # "rts" (chosen) | "one_euro" | "gaussian" (compared in the benchmark)
    position_jerk: float = 5.0         # m/s^3 / sqrt(Hz): how fast the root may change acceleration
    rotation_jerk: float = 10.0        # quaternion units / s^3 / sqrt(Hz), joint rotations
    orientation_jerk: float = 15.0     # same for the global orientation
    one_euro_min_cutoff: float = 1.0   # Hz (method "one_euro": TRACE's filter, beta as TRACE builds it)
    one_euro_beta: float = 0.7
    gaussian_sigma_s: float = 0.15     # method "gaussian": kernel width (seconds)
    min_position_noise_m: float = 0.0002
    min_rotation_noise: float = 0.0001   # quaternion units (~0.01 degrees)
    gate_position: float = 16.3          # chi-square 3 dof, 99.9 %
    gate_rotation: float = 18.5          # chi-square 4 dof, 99.9 %
    outlier_min_m: float = 0.15          # an outlier is also this far from the prediction (root) ...
    outlier_min_rotation: float = 0.1    # ... or this far in quaternion units (~11 degrees), global orientation
    # Body joints: real fast motion (a hop's ankles and wrists) moves them > 11 degrees past the
    # constant-acceleration prediction, so their gate starts far higher (~47 degrees; a flip is ~180).
    outlier_min_body_rotation: float = 0.4
    min_weight: float = 0.05             # weights below this count as no measurement
    block_frames: int = 1024
    lookahead_frames: int = 120

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TrackMotion:
    """One track's raw world motion on a regular frame grid (frames may have gaps)."""

    frames: np.ndarray                  # [T] int, strictly increasing
    global_orient: np.ndarray           # [T,3] axis-angle, world
    body_pose: np.ndarray               # [T,23,3] axis-angle
    hip_centers: np.ndarray             # [T,3] world, metres
    weights: np.ndarray                 # [T] >= 0 (confidence x observed)
    rays: np.ndarray | None = None      # [T,3] unit camera ray towards the person, world (None: isotropic)


@dataclass
class DenoisedTrack:
    """Smoothed motion (same frames as the input) and what was estimated."""

    global_orient: np.ndarray           # [T,3]
    body_pose: np.ndarray               # [T,23,3]
    hip_centers: np.ndarray             # [T,3]
    denoised: bool                      # False: passed through unchanged (see note)
    position_noise_m: tuple[float, float] = (0.0, 0.0)   # (along the ray, across it), per frame
    rotation_noise_deg: float = 0.0     # median over joints, per frame and axis
    outlier_frames: int = 0             # frames whose root or orientation was gated as an outlier
    note: str = ""

    def motion_noise_m(self) -> float:
        """One number for the input's noise (metres per frame, RMS per axis) incl. the rotations' share."""
        return motion_noise(self.position_noise_m[0], self.position_noise_m[1], self.rotation_noise_deg)

    def summary(self) -> dict:
        return {"denoised": self.denoised, "position_noise_ray_m": self.position_noise_m[0],
                "position_noise_across_m": self.position_noise_m[1], "rotation_noise_deg": self.rotation_noise_deg,
                "outlier_frames": self.outlier_frames, "note": self.note}


LIMB_LEVER_M = 0.9   # rotation noise moves a foot by about this lever (hip to sole)


def motion_noise(along_m: float, across_m: float, rotation_deg: float) -> float:
    """Per-frame position noise of the feet (RMS per axis, metres) from the root's noise along and
    across the camera ray and the joint-rotation noise (per axis) over a leg's lever."""
    root = (along_m ** 2 + 2.0 * across_m ** 2) / 3.0
    return float(np.sqrt(root + (LIMB_LEVER_M * np.radians(rotation_deg)) ** 2))


def _third_differences(values: np.ndarray, frames: np.ndarray, lag: int = 1) -> np.ndarray:
    """Third differences [N,...] with spacing `lag` over runs of consecutive frames only."""
    span = 3 * lag
    if len(frames) <= span:
        return values[:0]
    consecutive = (frames[span:] - frames[:-span]) == span
    d3 = values[span:] - 3 * values[2 * lag:-lag] + 3 * values[lag:-2 * lag] - values[:-span]
    return d3[consecutive]


def _noise_variance(lag1: np.ndarray, lag2: np.ndarray, axis=None) -> np.ndarray:
    """White-noise variance from robust variances of third differences at spacing 1 and 2.

    White noise of variance s^2 gives 20 s^2 at any spacing; smooth motion with jerk J gives
    J^2 at spacing 1 and 64 J^2 at spacing 2, so s^2 = (64 V1 - V2) / (63 * 20): real motion of
    clean capture is not mistaken for noise.
    """
    v1 = (1.4826 * np.median(np.abs(lag1), axis=axis)) ** 2
    v2 = (1.4826 * np.median(np.abs(lag2), axis=axis)) ** 2
    return np.maximum((64.0 * v1 - v2) / (63.0 * 20.0), 0.0)


def estimate_position_noise(hip_centers: np.ndarray, frames: np.ndarray, rays: np.ndarray | None) -> tuple[float, float]:
    """Per-frame white-noise scale of the root (along the ray, across it), metres."""
    parts = []
    for lag in (1, 2):
        d3 = _third_differences(hip_centers, frames, lag)                             # [N,3]
        if d3.shape[0] == 0:
            return 0.0, 0.0
        if rays is None:
            parts.append((d3.ravel(), d3.ravel()))
            continue
        span = 3 * lag
        ray = rays[span:][(frames[span:] - frames[:-span]) == span]                    # [N,3]
        along = np.einsum("nd,nd->n", d3, ray)
        across = d3 - along[:, None] * ray
        # Two components across the ray: pool them after projecting on a fixed pair of axes.
        helper = np.cross(ray, np.where(np.abs(ray[:, 1:2]) < 0.9, [[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]]))
        helper /= np.maximum(np.linalg.norm(helper, axis=1, keepdims=True), 1e-12)
        other = np.cross(ray, helper)
        parts.append((along, np.concatenate([np.einsum("nd,nd->n", across, helper),
                                             np.einsum("nd,nd->n", across, other)])))
    along_var = _noise_variance(parts[0][0], parts[1][0])
    across_var = _noise_variance(parts[0][1], parts[1][1])
    return float(np.sqrt(along_var)), float(np.sqrt(across_var))


def estimate_rotation_noise(quaternions: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Per-joint white-noise scale of sign-continuous quaternions [T,J,4] -> [J] (quaternion units)."""
    lag1 = _third_differences(quaternions, frames, 1)                               # [N,J,4]
    lag2 = _third_differences(quaternions, frames, 2)
    if lag2.shape[0] == 0:
        return np.zeros(quaternions.shape[1])
    flat1 = np.moveaxis(lag1, 1, 0).reshape(quaternions.shape[1], -1)
    flat2 = np.moveaxis(lag2, 1, 0).reshape(quaternions.shape[1], -1)
    return np.sqrt(_noise_variance(flat1, flat2, axis=1))


NOISE_WINDOWS = 2048   # third-difference windows per spacing that the rotation noise is estimated from


def sampled_rotation_noise(rotations_at: Callable[[np.ndarray], np.ndarray], frames: np.ndarray,
                           max_windows: int = NOISE_WINDOWS) -> np.ndarray:
    """Per-joint white-noise scale [J] (quaternion units) like `estimate_rotation_noise`, from at most
    `max_windows` evenly spread third-difference windows per spacing, so that its memory does not
    grow with the track. rotations_at(indices [K]) -> axis-angle [K,J,3] of those frames; frames [T]
    the frame numbers (strictly increasing). Signs are taken relative to each window's first frame.
    """
    parts = []
    for lag in (1, 2):
        span = 3 * lag
        starts = np.flatnonzero(frames[span:] - frames[:-span] == span) if len(frames) > span else np.zeros(0, np.int64)
        if len(starts) == 0:
            return np.zeros(rotations_at(np.zeros(1, np.int64)).shape[1])
        if len(starts) > max_windows:
            starts = starts[np.linspace(0, len(starts) - 1, max_windows).astype(np.int64)]
        window = starts[:, None] + lag * np.arange(4)[None]                               # [M,4]
        rotations = rotations_at(window.ravel())
        q = axis_angle_to_quaternion(rotations).reshape(len(starts), 4, rotations.shape[1], 4)   # [M,4,J,4]
        q = q * np.where(np.sum(q * q[:, :1], axis=-1, keepdims=True) < 0, -1.0, 1.0)
        d3 = q[:, 3] - 3 * q[:, 2] + 3 * q[:, 1] - q[:, 0]                                  # [M,J,4]
        parts.append(np.moveaxis(d3, 1, 0).reshape(d3.shape[1], -1))
    return np.sqrt(_noise_variance(parts[0], parts[1], axis=1))


def _constant_acceleration(dt: float, jerk: float) -> tuple[np.ndarray, np.ndarray]:
    """Transition F [3,3] and process covariance Q [3,3] of a white-jerk model (one channel)."""
    transition = np.array([[1.0, dt, 0.5 * dt * dt], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
    q = jerk ** 2
    process = q * np.array([[dt ** 5 / 20, dt ** 4 / 8, dt ** 3 / 6],
                            [dt ** 4 / 8, dt ** 3 / 3, dt ** 2 / 2],
                            [dt ** 3 / 6, dt ** 2 / 2, dt]])
    return transition, process


class _Smoother:
    """Batched Kalman + RTS smoother over a regular grid, blockwise.

    Two kinds of batch members: "coupled 3D" (state 9 = 3 axes x (p, v, a), full 3x3 measurement
    covariance) for roots and "shared quaternion" (state 3 per channel, 4 channels sharing one 3x3
    covariance and one scalar measurement variance) for rotations.
    """

    def __init__(self, dt: float, settings: DenoiseSettings) -> None:
        self.s = settings
        self.dt = dt

    # --- root: coupled 3D --------------------------------------------------------------------
    def smooth_positions(self, z: np.ndarray, present: np.ndarray, cov: np.ndarray, jerk: float
                         ) -> tuple[np.ndarray, np.ndarray]:
        """z [T,B,3], present [T,B] bool, cov [T,B,3,3] measurement covariance -> (smoothed [T,B,3], outlier [T,B])."""
        f1, q1 = _constant_acceleration(self.dt, jerk)
        eye3 = np.eye(3)
        transition = np.kron(f1, eye3)               # state order: p(3), v(3), a(3)
        process = np.kron(q1, eye3)
        steps, batch = present.shape
        out = np.empty((steps, batch, 3))
        outliers = np.zeros((steps, batch), bool)
        x = np.zeros((batch, 9))
        p = np.tile(np.eye(9) * 1e6, (batch, 1, 1))
        started = np.zeros(batch, bool)
        block, ahead = self.s.block_frames, self.s.lookahead_frames
        gate = self.s.gate_position
        for begin in range(0, steps, block):
            stop = min(steps, begin + block)
            end = min(steps, stop + ahead)
            n = end - begin
            xf = np.empty((n, batch, 9))
            pf = np.empty((n, batch, 9, 9))
            xp = np.empty((n, batch, 9))
            pp = np.empty((n, batch, 9, 9))
            carry = None
            for k in range(n):
                t = begin + k
                # predict
                if k or begin:
                    x = x @ transition.T
                    p = transition @ p @ transition.T + process
                xp[k], pp[k] = x, p
                here = present[t]
                fresh = here & ~started
                if np.any(fresh):                      # first measurement of a track: start there
                    x[fresh] = 0.0
                    x[fresh, :3] = z[t, fresh]
                    p[fresh] = np.diag([1.0] * 3 + [4.0] * 3 + [100.0] * 3)
                    p[fresh, :3, :3] = cov[t, fresh]
                    started |= fresh
                    xp[k, fresh], pp[k, fresh] = x[fresh], p[fresh]
                update = here & ~fresh
                if np.any(update):
                    innovation = z[t, update] - x[update, :3]                          # [U,3]
                    s_matrix = p[update, :3, :3] + cov[t, update]
                    s_inverse = np.linalg.inv(s_matrix)
                    distance = np.einsum("ui,uij,uj->u", innovation, s_inverse, innovation)
                    bad = (distance > gate) & (np.linalg.norm(innovation, axis=1) > self.s.outlier_min_m)
                    if np.any(bad):
                        inflate = np.where(bad, distance / gate, 1.0)
                        s_matrix = p[update, :3, :3] + cov[t, update] * inflate[:, None, None]
                        s_inverse = np.linalg.inv(s_matrix)
                        rows = np.flatnonzero(update)[bad]
                        outliers[t, rows] = True
                    gain = p[update][:, :, :3] @ s_inverse                               # [U,9,3]
                    x[update] = x[update] + np.einsum("uij,uj->ui", gain, innovation)
                    p[update] = p[update] - gain @ p[update][:, :3, :]
                xf[k], pf[k] = x, p
                if t == stop - 1:
                    carry = (x.copy(), p.copy(), started.copy())
            # backward (RTS) over the block + lookahead; keep the block part
            xs = xf[-1].copy()
            result = np.empty((n, batch, 9))
            result[-1] = xs
            for k in range(n - 2, -1, -1):
                gain = pf[k] @ transition.T @ np.linalg.inv(pp[k + 1])
                xs = xf[k] + np.einsum("bij,bj->bi", gain, xs - xp[k + 1])
                result[k] = xs
            out[begin:stop] = result[:stop - begin, :, :3]
            x, p, started = carry
        return out, outliers

    # --- rotations: shared-covariance quaternion channels ---------------------------------------
    def smooth_quaternions(self, steps: int, fetch: Callable[[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]],
                           store: Callable[[int, np.ndarray, np.ndarray], None], jerk: np.ndarray,
                           outlier_min: np.ndarray) -> None:
        """Smooth B quaternion channels over `steps` frames, one block at a time (bounded memory).

        fetch(begin, end) -> (z [n,B,4] unit quaternions, present [n,B], variance [n,B] per-frame
        scalar) for frames begin..end-1; store(begin, smoothed unit quaternions [m,B,4], outlier
        [m,B]) receives the result block by block, in order. jerk [B], outlier_min [B] (smallest
        innovation norm that may be gated)."""
        batch = len(jerk)
        dt = self.dt
        transition = np.array([[1.0, dt, 0.5 * dt * dt], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
        _, unit_process = _constant_acceleration(dt, 1.0)
        process = unit_process[None] * (jerk ** 2)[:, None, None]                         # [B,3,3]
        x = np.zeros((batch, 3, 4))                     # (p, v, a) x 4 channels
        p = np.tile(np.eye(3) * 1e6, (batch, 1, 1))
        started = np.zeros(batch, bool)
        block, ahead = self.s.block_frames, self.s.lookahead_frames
        gate = self.s.gate_rotation
        for begin in range(0, steps, block):
            stop = min(steps, begin + block)
            end = min(steps, stop + ahead)
            n = end - begin
            z, present, variance = fetch(begin, end)
            outliers = np.zeros((n, batch), bool)
            xf = np.empty((n, batch, 3, 4))
            pf = np.empty((n, batch, 3, 3))
            xp = np.empty((n, batch, 3, 4))
            pp = np.empty((n, batch, 3, 3))
            carry = None
            for k in range(n):
                t = begin + k
                if k or begin:
                    x = transition @ x
                    p = transition @ p @ transition.T + process
                xp[k], pp[k] = x, p
                here = present[k]
                fresh = here & ~started
                if np.any(fresh):
                    x[fresh] = 0.0
                    x[fresh, 0] = z[k, fresh]
                    p[fresh] = np.diag([1.0, 100.0, 1e4])
                    p[fresh, 0, 0] = variance[k, fresh]
                    started |= fresh
                    xp[k, fresh], pp[k, fresh] = x[fresh], p[fresh]
                update = here & ~fresh
                if np.any(update):
                    measured = z[k, update]                                                 # [U,4]
                    predicted = x[update, 0]
                    sign = np.where(np.sum(measured * predicted, axis=-1) < 0, -1.0, 1.0)
                    innovation = sign[:, None] * measured - predicted                        # [U,4]
                    s_value = p[update, 0, 0] + variance[k, update]                         # [U]
                    distance = np.sum(innovation ** 2, axis=-1) / s_value
                    bad = (distance > gate) & (np.linalg.norm(innovation, axis=-1) > outlier_min[update])
                    if np.any(bad):
                        s_value = p[update, 0, 0] + variance[k, update] * np.where(bad, distance / gate, 1.0)
                        outliers[k, np.flatnonzero(update)[bad]] = True
                    gain = p[update][:, :, 0] / s_value[:, None]                              # [U,3]
                    x[update] = x[update] + gain[:, :, None] * innovation[:, None, :]
                    p[update] = p[update] - gain[:, :, None] * p[update][:, None, 0, :]
                xf[k], pf[k] = x, p
                if t == stop - 1:
                    carry = (x.copy(), p.copy(), started.copy())
            xs = xf[-1].copy()
            result = np.empty((n, batch, 4))
            result[-1] = xs[:, 0]
            for k in range(n - 2, -1, -1):
                gain = pf[k] @ transition.T @ np.linalg.inv(pp[k + 1])                       # [B,3,3]
                xs = xf[k] + gain @ (xs - xp[k + 1])
                result[k] = xs[:, 0]
            kept = result[:stop - begin]
            norm = np.linalg.norm(kept, axis=-1, keepdims=True)
            store(begin, kept / np.where(norm > 1e-9, norm, 1.0), outliers[:stop - begin])
            x, p, started = carry


def _baseline_smoothing(s: DenoiseSettings, fps: float, z_root: np.ndarray, z_rot: np.ndarray, present: np.ndarray,
                        cov_root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The methods the RTS smoother was compared with (benchmarks/bench_world_quality.py --method).

    one_euro: TRACE's own One-Euro filter (core.smoothing, min cutoff 1 Hz, beta 0.7) run forward
    over root and quaternion channels, frames without a measurement hold the last output.
    gaussian: confidence-weighted Gaussian local-linear regression (isotropic, fixed width).
    Both treat every direction alike and have no outlier rule. Returns (root [T,B,3], quats [T,B,J,4]).
    """
    from ..smoothing import OneEuroFilter
    from .scene_camera import _gaussian_local_linear

    steps, batch = present.shape
    values = np.concatenate([z_root, z_rot.reshape(steps, batch, -1)], axis=2)                # [T,B,3+4J]
    out = values.copy()
    for b in range(batch):
        rows = np.flatnonzero(present[:, b])
        if s.method == "one_euro":
            smoother = OneEuroFilter(s.one_euro_min_cutoff, s.one_euro_beta, freq=fps)
            last = None
            for t in range(rows[0], steps):
                if present[t, b]:
                    last = smoother.process(values[t, b])
                out[t, b] = last
        else:
            weights = present[:, b].astype(np.float64) / np.maximum(np.trace(cov_root[:, b], axis1=-2, axis2=-1), 1e-12)
            weights = weights / max(weights.max(), 1e-12)
            out[:, b], _ = _gaussian_local_linear(values[:, b], weights, s.gaussian_sigma_s * fps)
    quats = out[:, :, 3:].reshape(z_rot.shape)
    norm = np.linalg.norm(quats, axis=-1, keepdims=True)
    return out[:, :, :3], quats / np.where(norm > 1e-9, norm, 1.0)


def _pass_through(motion: TrackMotion, note: str) -> DenoisedTrack:
    return DenoisedTrack(global_orient=np.array(motion.global_orient, np.float64),
                         body_pose=np.array(motion.body_pose, np.float64),
                         hip_centers=np.array(motion.hip_centers, np.float64), denoised=False, note=note)


def _unusable(motion: TrackMotion, weights: np.ndarray, settings: DenoiseSettings) -> str:
    """Why a track cannot be denoised ('' when it can)."""
    count = len(motion.frames)
    if count < MIN_DENOISE_FRAMES:
        return f"too short to denoise ({count} frames, at least {MIN_DENOISE_FRAMES} needed): raw motion kept"
    arrays = (motion.global_orient, motion.body_pose, motion.hip_centers)
    if not all(np.all(np.isfinite(a)) for a in arrays):
        return "non-finite values in the motion: raw motion kept"
    if np.count_nonzero(weights >= settings.min_weight) < MIN_DENOISE_FRAMES:
        return (f"fewer than {MIN_DENOISE_FRAMES} frames with weight >= {settings.min_weight} "
                "(detected with confidence): raw motion kept")
    return ""


def _rotations(motion: TrackMotion, rows: slice) -> np.ndarray:
    """[n,24,3] axis-angle (global orientation + 23 joints) of the track's frames `rows` (a slice or
    indices), float64."""
    return np.concatenate([np.asarray(motion.global_orient[rows], np.float64)[:, None],
                           np.asarray(motion.body_pose[rows], np.float64)], axis=1)


def denoise_tracks(motions: Sequence[TrackMotion], fps: float, settings: DenoiseSettings | None = None
                   ) -> list[DenoisedTrack]:
    """Denoise the tracks of one shot (one world); returns one DenoisedTrack per input, same frames.

    Tracks that cannot be denoised (too short, non-finite values, no weighted frame) come back
    unchanged with `denoised=False` and a note saying why.
    """
    s = settings or DenoiseSettings()
    results: list[DenoisedTrack | None] = [None] * len(motions)
    usable = []
    for index, motion in enumerate(motions):
        weights = np.nan_to_num(np.asarray(motion.weights, np.float64), nan=0.0)
        reason = _unusable(motion, weights, s)
        if reason:
            results[index] = _pass_through(motion, reason)
        else:
            usable.append(index)
    if not usable:
        return results  # type: ignore[return-value]

    first = min(int(motions[i].frames[0]) for i in usable)
    last = max(int(motions[i].frames[-1]) for i in usable)
    steps = last - first + 1
    batch = len(usable)
    joints = 24
    # The root is small ([T,B,3]) and held whole; the rotations ([T,B,24,4]) are fed to the smoother
    # and taken back one block at a time (`fetch` / `store`), so their memory does not grow with T.
    z_root = np.zeros((steps, batch, 3))
    cov_root = np.tile(np.eye(3), (steps, batch, 1, 1))
    present = np.zeros((steps, batch), bool)
    rotation_jerk = np.empty((batch, joints))
    rotation_gate_min = np.full((batch, joints), s.outlier_min_body_rotation)
    rotation_gate_min[:, 0] = s.outlier_min_rotation
    tracks = []   # per usable track: (rows [T], seen [T], variance scale [T], sigma_rot [24])
    noise_info = []
    for b, index in enumerate(usable):
        motion = motions[index]
        frames = np.asarray(motion.frames, np.int64)
        rows = frames - first
        weights = np.clip(np.nan_to_num(np.asarray(motion.weights, np.float64)), 0.0, None)
        seen = weights >= s.min_weight
        hips = np.asarray(motion.hip_centers, np.float64)
        rays = None if motion.rays is None else np.asarray(motion.rays, np.float64)
        sigma_ray, sigma_across = estimate_position_noise(hips[seen], frames[seen], None if rays is None else rays[seen])
        sigma_ray, sigma_across = max(sigma_ray, s.min_position_noise_m), max(sigma_across, s.min_position_noise_m)
        seen_rows = np.flatnonzero(seen)
        sigma_rot = np.maximum(sampled_rotation_noise(lambda picked, m=motion: _rotations(m, seen_rows[picked]),
                                                      frames[seen]), s.min_rotation_noise)                  # [24]
        noise_info.append((sigma_ray, sigma_across, sigma_rot))
        scale = 1.0 / np.maximum(weights, s.min_weight)                                     # variance factor
        tracks.append((rows, seen, scale, sigma_rot))
        seen_rows = rows[seen]
        present[seen_rows, b] = True
        z_root[seen_rows, b] = hips[seen]
        if rays is None:
            cov = np.broadcast_to(np.eye(3) * sigma_across ** 2, (len(seen_rows), 3, 3))
        else:
            ray = rays[seen]
            cov = (sigma_across ** 2 * np.eye(3)[None]
                   + (sigma_ray ** 2 - sigma_across ** 2) * ray[:, :, None] * ray[:, None, :])
        cov_root[seen_rows, b] = cov * scale[seen][:, None, None]
        rotation_jerk[b, 0] = s.orientation_jerk
        rotation_jerk[b, 1:] = s.rotation_jerk

    def span(b: int, begin: int, end: int) -> slice:
        """The track's own frame indices whose rows lie in [begin, end)."""
        rows = tracks[b][0]
        return slice(int(np.searchsorted(rows, begin)), int(np.searchsorted(rows, end)))

    def fetch(begin: int, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = end - begin
        z = np.zeros((n, batch, joints, 4))
        here = np.zeros((n, batch, joints), bool)
        variance = np.ones((n, batch, joints))
        for b, index in enumerate(usable):
            rows, seen, scale, sigma_rot = tracks[b]
            part = span(b, begin, end)
            keep = seen[part]
            local = rows[part][keep] - begin
            z[local, b] = axis_angle_to_quaternion(_rotations(motions[index], part)[keep])
            here[local, b] = True
            variance[local, b] = sigma_rot[None] ** 2 * scale[part][keep][:, None]
        return z.reshape(n, -1, 4), here.reshape(n, -1), variance.reshape(n, -1)

    rotations_out = [np.empty((len(tracks[b][0]), joints, 3)) for b in range(batch)]
    orient_outliers = [np.zeros(len(tracks[b][0]), bool) for b in range(batch)]

    def store(begin: int, smoothed: np.ndarray, outliers: np.ndarray) -> None:
        count = len(smoothed)
        smoothed = smoothed.reshape(count, batch, joints, 4)
        outliers = outliers.reshape(count, batch, joints)
        for b in range(batch):
            part = span(b, begin, begin + count)
            local = tracks[b][0][part] - begin
            rotations_out[b][part] = quaternion_to_axis_angle(smoothed[local, b])
            orient_outliers[b][part] |= outliers[local, b, 0]

    if s.method == "rts":
        smoother = _Smoother(1.0 / float(fps), s)
        root, root_outliers = smoother.smooth_positions(z_root, present, cov_root, s.position_jerk)
        smoother.smooth_quaternions(steps, fetch, store, rotation_jerk.reshape(-1), rotation_gate_min.reshape(-1))
    elif s.method in ("one_euro", "gaussian"):   # comparison only (benchmark): whole arrays
        z_rot = make_quaternions_continuous(fetch(0, steps)[0].reshape(steps, batch, joints, 4), axis=0)   # linear averaging
        root, quats = _baseline_smoothing(s, float(fps), z_root, z_rot, present, cov_root)
        root_outliers = np.zeros((steps, batch), bool)
        store(0, quats.reshape(steps, batch * joints, 4), np.zeros((steps, batch * joints), bool))
    else:
        raise ValueError(f"unknown denoising method {s.method!r}: use 'rts', 'one_euro' or 'gaussian'")
    for b, index in enumerate(usable):
        rows = tracks[b][0]
        axis_angle = rotations_out[b]                                                          # [T,24,3]
        sigma_ray, sigma_across, sigma_rot = noise_info[b]
        outlier = root_outliers[rows, b] | orient_outliers[b]
        results[index] = DenoisedTrack(
            global_orient=axis_angle[:, 0].copy(), body_pose=axis_angle[:, 1:], hip_centers=root[rows, b], denoised=True,
            position_noise_m=(float(sigma_ray), float(sigma_across)),
            rotation_noise_deg=float(np.degrees(2.0 * np.median(sigma_rot))),   # quaternion component ~ half-angle
            outlier_frames=int(np.count_nonzero(outlier)))
    return results  # type: ignore[return-value]
