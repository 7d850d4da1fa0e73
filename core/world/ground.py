"""Ground plane and gravity alignment shared by every person of a scene (numpy only).

TRACE's world is the first frame's camera (x right, y down, z forward): a camera pitched down makes
every body lean and every walk climb a slope once the fixed axis swap (x, z, -y) turns it into
Blender's z-up world. Here the floor is estimated from the feet of all people together and one
rigid transform (no scale) maps TRACE world to an aligned world with the floor at z = 0, +Z up and
the first camera's forward axis, projected onto the floor, along +Y. The default (no alignment) is
exactly the fixed swap, so both paths share one mechanism: `GroundAlignment.matrix`.

Steps (docs/world.md has the parameters and measured accuracy):
1. Up prior: the people's upright direction, the weighted mean of pelvis->neck (or of the bodies' up
   axes when given), re-estimated on the frames within 35 degrees of it (drops bending/lying frames).
2. Contact candidates: ankle and toe joints that move slower than `max_foot_speed` and are not
   higher than `max_above_lowest_foot` above the same person's lowest foot in that frame. Each joint
   is lowered to the sole by its rest height above the sole, so points lie on the floor itself.
3. Robust plane: MSAC (RANSAC with a truncated quadratic cost) on triples drawn with a fixed seed,
   hypotheses whose normal is further than `max_prior_angle_deg` from the prior rejected; then an
   iteratively re-weighted, prior-regularised least-squares refit on the inliers (the prior only
   matters when the contacts do not span an area, e.g. one person standing still).
4. Fallback when too few contacts support a plane: normal = prior, height = weighted median of the
   per-frame lowest sole. The result says which method ran and how well the plane fits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from trace_format.skeleton import anthropometric_rest_joints
from trace_format.schema import DEFAULT_ALIGNMENT_MATRIX


__all__ = [
    "FOOT_JOINTS",
    "GroundFitError",
    "GroundFitSettings",
    "PersonJoints",
    "GroundAlignment",
    "PlaneFit",
    "default_alignment",
    "alignment_from_plane",
    "foot_joint_heights",
    "DEFAULT_FOOT_JOINT_HEIGHTS",
    "estimate_up_prior",
    "contact_candidates",
    "joint_speeds",
    "fit_floor_plane",
    "estimate_ground",
]

PELVIS, NECK = 0, 12
FOOT_JOINTS = (7, 8, 10, 11)          # left_ankle, right_ankle, left_foot (toe), right_foot (toe)
CAMERA_FORWARD = np.array([0.0, 0.0, 1.0])   # first camera's forward axis in TRACE world
CAMERA_IMAGE_UP = np.array([0.0, -1.0, 0.0])  # first camera's image-up axis in TRACE world


class GroundFitError(ValueError):
    """The floor cannot be estimated from what was given (no usable frames, bad shapes)."""


def foot_joint_heights(rest_joints: np.ndarray, rest_vertices: np.ndarray | None = None) -> np.ndarray:
    """Rest heights of the ankle and toe joints above the sole, canonical frame (y up).

    rest_joints [24,3]; rest_vertices [V,3] optional (an SMPL body: its lowest vertex is the sole).
    Without vertices the soles are taken at y = 0 (the convention of the default skeleton).
    Returns [4] metres for FOOT_JOINTS (left ankle, right ankle, left toe, right toe).
    """
    joints = np.asarray(rest_joints, np.float64)
    if joints.shape != (24, 3):
        raise GroundFitError(f"rest_joints must be [24,3], got {joints.shape}")
    sole = 0.0 if rest_vertices is None else float(np.asarray(rest_vertices, np.float64)[:, 1].min())
    heights = joints[list(FOOT_JOINTS), 1] - sole
    if np.any(heights < 0.0) or np.any(heights > 0.3):
        raise GroundFitError(
            f"foot joints are {np.round(heights, 3).tolist()} m above the sole; the rest skeleton must stand "
            "on y = 0 (default skeleton) or come with its rest vertices (SMPL model) to locate the sole")
    return heights


DEFAULT_FOOT_JOINT_HEIGHTS = foot_joint_heights(anthropometric_rest_joints())  # [4] of the default skeleton


@dataclass(frozen=True)
class PersonJoints:
    """One tracked person's joints for the floor fit (arrays per frame)."""

    joints: np.ndarray                      # [T,24,3] SMPL joints in TRACE world, metres
    times: np.ndarray                       # [T] seconds
    weights: np.ndarray | None = None       # [T] >= 0, e.g. confidence * observed; 0 = frame not used
    foot_heights: np.ndarray | None = None  # [4] ankle/toe heights above the sole (foot_joint_heights)
    up_axes: np.ndarray | None = None       # [T,3] body up axis in TRACE world (R_world_body[:, :, 1])

    def checked(self) -> "PersonJoints":
        """Validated float copy with defaults filled in."""
        joints = np.asarray(self.joints, np.float64)
        if joints.ndim != 3 or joints.shape[1:] != (24, 3):
            raise GroundFitError(f"joints must be [T,24,3], got {joints.shape}")
        count = joints.shape[0]
        times = np.asarray(self.times, np.float64).reshape(-1)
        if times.shape != (count,):
            raise GroundFitError(f"times must be [T={count}], got {times.shape}")
        if count > 1 and np.any(np.diff(times) <= 0):
            raise GroundFitError("times must increase strictly")
        weights = np.ones(count) if self.weights is None else np.asarray(self.weights, np.float64).reshape(-1)
        if weights.shape != (count,):
            raise GroundFitError(f"weights must be [T={count}], got {weights.shape}")
        weights = np.where(np.isfinite(weights) & np.all(np.isfinite(joints), axis=(1, 2)), np.clip(weights, 0, None), 0.0)
        heights = DEFAULT_FOOT_JOINT_HEIGHTS if self.foot_heights is None else np.asarray(self.foot_heights, np.float64)
        if heights.shape != (4,):
            raise GroundFitError(f"foot_heights must be [4], got {heights.shape}")
        up_axes = None
        if self.up_axes is not None:
            up_axes = np.asarray(self.up_axes, np.float64)
            if up_axes.shape != (count, 3):
                raise GroundFitError(f"up_axes must be [T={count},3], got {up_axes.shape}")
        finite = joints if np.all(np.isfinite(joints)) else np.nan_to_num(joints)   # no copy of clean joints
        return PersonJoints(finite, times, weights, heights, up_axes)


@dataclass(frozen=True)
class GroundFitSettings:
    """Parameters of the floor fit (metres, seconds, degrees)."""

    max_foot_speed: float = 0.4          # contact candidates move slower than this (m/s)
    speed_window_s: float = 0.13         # speed = displacement over about this span (noise averaging)
    max_above_lowest_foot: float = 0.08  # candidate sole at most this above the person's lowest sole
    inlier_threshold: float = 0.05       # |distance to plane| of an inlier
    ransac_iterations: int = 300
    max_scoring_points: int = 4000       # hypotheses are scored on a fixed random subset of this size
    min_triangle_area: float = 1e-3      # m^2: thinner triples give no reliable normal
    max_prior_angle_deg: float = 30.0    # floor normal may differ this much from the up prior
    prior_strength_m: float = 0.1        # regulariser: contacts spread less than this lean on the prior
    refit_iterations: int = 5
    min_contact_points: int = 20         # fewer candidates or inliers: fall back to the prior
    min_support_spread_m: float = 0.3    # contacts spanning less than this across (a line): low confidence
    prior_noise_deg: float = 2.5         # how far the pelvis up axes may lean from gravity (real gait: 4-8 deg)
    samples_per_independent: int = 10    # contact points per independent sample (they come in runs)
    upright_cone_deg: float = 35.0       # up-prior frames further than this from the mean are dropped
    seed: int = 0


@dataclass(frozen=True)
class PlaneFit:
    """A robust plane n . x = offset (n unit, pointing up) and its support."""

    normal: np.ndarray        # [3] unit
    offset: float
    inliers: np.ndarray       # [N] bool over the candidate points
    rms_residual: float       # metres, over the inliers


@dataclass(frozen=True)
class GroundAlignment:
    """Rigid TRACE world -> aligned world (floor z = 0, +Z up, camera forward +Y) and fit quality."""

    matrix: np.ndarray                 # [4,4] rigid transform, TRACE world points -> aligned points
    method: str                        # "plane_fit" | "up_prior_lowest_foot" | "none"
    floor_normal: np.ndarray           # [3] unit up normal of the floor in TRACE world
    camera_height: float               # first camera's height above the floor (metres)
    up_prior: np.ndarray | None = None  # [3] the people's upright direction in TRACE world
    candidates: int = 0                # contact candidate points
    inliers: int = 0                   # of which on the plane
    rms_residual_m: float = float("nan")
    prior_angle_deg: float = float("nan")  # floor normal vs up prior
    note: str = ""
    people: int = 0
    confidence: str = "high"           # "high" | "low" (see `_plane_confidence`)
    confidence_note: str = ""

    @property
    def rotation(self) -> np.ndarray:
        """[3,3] rotation part."""
        return self.matrix[:3, :3]

    @property
    def translation(self) -> np.ndarray:
        """[3] translation part."""
        return self.matrix[:3, 3]

    def apply_points(self, points: np.ndarray) -> np.ndarray:
        """TRACE-world points [...,3] -> aligned points [...,3]."""
        return np.asarray(points, np.float64) @ self.rotation.T + self.translation

    def apply_rotations(self, rotations: np.ndarray) -> np.ndarray:
        """Rotations acting into TRACE world [...,3,3] -> into the aligned world [...,3,3]."""
        return self.rotation @ np.asarray(rotations, np.float64)

    def to_dict(self) -> dict:
        """JSON-friendly summary for the result file / UI."""
        return {
            "matrix": self.matrix.tolist(), "method": self.method,
            "floor_normal_trace": self.floor_normal.tolist(), "camera_height_m": self.camera_height,
            "up_prior_trace": None if self.up_prior is None else self.up_prior.tolist(),
            "candidates": self.candidates, "inliers": self.inliers, "rms_residual_m": self.rms_residual_m,
            "prior_angle_deg": self.prior_angle_deg, "people": self.people, "note": self.note,
            "confidence": self.confidence, "confidence_note": self.confidence_note,
        }


def alignment_from_plane(normal: np.ndarray, offset: float, forward: np.ndarray = CAMERA_FORWARD) -> np.ndarray:
    """Rigid [4,4] mapping TRACE world to the aligned world of the plane n . x = offset.

    Aligned +Z = n, +Y = `forward` projected onto the floor (the first camera's view direction; its
    image-up axis when the camera looks straight down), +X = Y x Z. The translation puts the floor at
    z = 0 and keeps the first camera above the origin. With n = (0,-1,0), offset 0 this is exactly the
    fixed (x, z, -y) swap.
    """
    up = np.asarray(normal, np.float64)
    up = up / np.linalg.norm(up)
    ahead = np.asarray(forward, np.float64)
    ahead = ahead - (ahead @ up) * up
    if np.linalg.norm(ahead) < 1e-3:
        ahead = CAMERA_IMAGE_UP - (CAMERA_IMAGE_UP @ up) * up
    ahead = ahead / np.linalg.norm(ahead)
    rotation = np.stack([np.cross(ahead, up), ahead, up])  # rows: aligned axes in TRACE coordinates
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[2, 3] = -float(offset)
    return matrix


def default_alignment() -> GroundAlignment:
    """No alignment: the fixed TRACE -> Blender swap (x, z, -y), floor unknown."""
    matrix = np.array(DEFAULT_ALIGNMENT_MATRIX)
    return GroundAlignment(matrix=matrix, method="none", floor_normal=np.array([0.0, -1.0, 0.0]),
                           camera_height=0.0, note="no ground alignment: fixed axis swap (x, z, -y)")


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Normalise [...,3] (zero vectors stay zero)."""
    norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norm > 1e-12, norm, 1.0)


def estimate_up_prior(people: Sequence[PersonJoints], upright_cone_deg: float = 35.0) -> tuple[np.ndarray, int]:
    """The people's mean upright direction in TRACE world and how many frames support it.

    Per frame: the body's up axis if given, else pelvis -> neck; weighted mean, then twice re-estimated
    on the frames within `upright_cone_deg` of it (bending, lying, mis-detections drop out).
    """
    directions, weights = [], []
    for person in people:
        person = person.checked()
        if person.up_axes is not None:
            up = _unit(person.up_axes)
        else:
            up = _unit(person.joints[:, NECK] - person.joints[:, PELVIS])
        directions.append(up)
        weights.append(person.weights * (np.linalg.norm(up, axis=1) > 0.5))
    if not directions:
        raise GroundFitError("no people given: the floor is estimated from tracked people")
    direction = np.concatenate(directions)  # [N,3]
    weight = np.concatenate(weights)        # [N]
    if weight.sum() <= 0:
        raise GroundFitError("no frame with a usable body (all weights are 0 or joints are not finite)")
    mean = _unit(weight @ direction)
    cos_cone = math.cos(math.radians(upright_cone_deg))
    for _ in range(2):
        keep = weight * (direction @ mean > cos_cone)
        if keep.sum() <= 0:
            break
        mean = _unit(keep @ direction)
    return mean, int(np.count_nonzero(weight * (direction @ mean > cos_cone)))


def joint_speeds(positions: np.ndarray, times: np.ndarray, window_s: float) -> np.ndarray:
    """Speed of each point over a centred span of ~window_s: positions [T,K,3], times [T] -> [T,K] m/s.

    Spans that cross a gap in the frames (more than 1.5x the expected duration) give +inf.
    """
    count = positions.shape[0]
    if count < 2:
        return np.full(positions.shape[:2], np.inf)
    step = float(np.median(np.diff(times)))
    half = max(1, int(round(0.5 * window_s / step)))
    index = np.arange(count)
    lower, upper = np.clip(index - half, 0, count - 1), np.clip(index + half, 0, count - 1)
    span = times[upper] - times[lower]  # [T]
    speed = np.linalg.norm(positions[upper] - positions[lower], axis=-1) / span[:, None]
    gap = span > 1.5 * (upper - lower) * step
    return np.where(gap[:, None], np.inf, speed)


def contact_candidates(person: PersonJoints, up: np.ndarray, settings: GroundFitSettings | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Sole points of slow, low feet of one person: (points [N,3] TRACE world, weights [N]).

    A person's weights are spread so that one person totals at most ~1 (many frames of one track must
    not outvote everyone else; fewer than 50 candidates count proportionally less).
    """
    s = settings or GroundFitSettings()
    person = person.checked()
    feet = person.joints[:, list(FOOT_JOINTS)]                       # [T,4,3]
    soles = feet - person.foot_heights[None, :, None] * up           # [T,4,3] lowered to the sole
    sole_height = soles @ up                                          # [T,4]
    speed = joint_speeds(feet, person.times, s.speed_window_s)       # [T,4]
    low = sole_height - sole_height.min(axis=1, keepdims=True) < s.max_above_lowest_foot
    usable = (speed < s.max_foot_speed) & low & (person.weights[:, None] > 0)
    points = soles[usable]
    weights = np.broadcast_to(person.weights[:, None], usable.shape)[usable]
    return points, weights / max(float(len(points)), 50.0)


def _hypotheses(points: np.ndarray, weights: np.ndarray, up: np.ndarray, settings: GroundFitSettings,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Plane hypotheses from weighted random triples: (normals [K,3] pointing up, offsets [K])."""
    probability = weights / weights.sum()
    triples = rng.choice(len(points), size=(settings.ransac_iterations, 3), p=probability)  # [K,3]
    a, b, c = points[triples[:, 0]], points[triples[:, 1]], points[triples[:, 2]]
    normals = np.cross(b - a, c - a)                     # [K,3], |n| = 2 * area
    area = 0.5 * np.linalg.norm(normals, axis=1)
    normals = _unit(normals)
    normals = np.where((normals @ up < 0)[:, None], -normals, normals)
    keep = (area > settings.min_triangle_area) & (normals @ up >= math.cos(math.radians(settings.max_prior_angle_deg)))
    return normals[keep], np.einsum("kd,kd->k", normals[keep], a[keep])


def _regularised_plane(points: np.ndarray, weights: np.ndarray, up: np.ndarray, strength: float) -> tuple[np.ndarray, float]:
    """Weighted least-squares plane with a pull of the normal towards `up`.

    Minimises sum w (n.x - d)^2 / sum w + strength^2 (1 - (n.up)^2): the smallest eigenvector of
    C + strength^2 (I - up up^T), C the weighted covariance. points [N,3], weights [N].
    """
    total = weights.sum()
    centre = weights @ points / total
    centred = points - centre
    covariance = (centred * weights[:, None]).T @ centred / total
    system = covariance + strength ** 2 * (np.eye(3) - np.outer(up, up))
    _, vectors = np.linalg.eigh(system)
    normal = vectors[:, 0]
    normal = normal if normal @ up >= 0 else -normal
    return normal, float(normal @ centre)


def fit_floor_plane(points: np.ndarray, weights: np.ndarray, up: np.ndarray,
                    settings: GroundFitSettings | None = None) -> PlaneFit | None:
    """Robust floor plane through sole points (MSAC + regularised IRLS refit), None if unsupported.

    points [N,3], weights [N] > 0, up [3] unit prior. None when there are fewer than
    `min_contact_points` points or inliers, or no hypothesis lies within the prior cone.
    """
    s = settings or GroundFitSettings()
    points = np.asarray(points, np.float64)
    weights = np.asarray(weights, np.float64)
    if len(points) < s.min_contact_points or weights.sum() <= 0:
        return None
    rng = np.random.default_rng(s.seed)
    normals, offsets = _hypotheses(points, weights, up, s, rng)
    if len(normals) == 0:
        return None
    if len(points) > s.max_scoring_points:
        subset = rng.choice(len(points), size=s.max_scoring_points, replace=False, p=weights / weights.sum())
        scoring_points, scoring_weights = points[subset], np.ones(s.max_scoring_points)
    else:
        scoring_points, scoring_weights = points, weights
    residuals = scoring_points @ normals.T - offsets[None, :]             # [M,K]
    cost = scoring_weights @ np.minimum(residuals ** 2, s.inlier_threshold ** 2)  # [K] MSAC
    best = int(np.argmin(cost))
    normal, offset = normals[best], float(offsets[best])
    inliers = np.abs(points @ normal - offset) < s.inlier_threshold
    for _ in range(s.refit_iterations):
        if np.count_nonzero(inliers) < s.min_contact_points:
            return None
        residual = points @ normal - offset
        # Tukey-style down-weighting inside the band: far inliers count less.
        robust = weights * inliers * (1.0 - (residual / s.inlier_threshold) ** 2).clip(0.0, 1.0) ** 2
        if robust.sum() <= 0:
            return None
        normal, offset = _regularised_plane(points, robust, up, s.prior_strength_m)
        inliers = np.abs(points @ normal - offset) < s.inlier_threshold
    if np.count_nonzero(inliers) < s.min_contact_points:
        return None
    residual = points[inliers] @ normal - offset
    return PlaneFit(normal=normal, offset=offset, inliers=inliers, rms_residual=float(np.sqrt(np.mean(residual ** 2))))


def _lowest_sole_offset(people: Sequence[PersonJoints], up: np.ndarray) -> float | None:
    """Weighted median over person-frames of the lowest sole height along `up` (None if no frame)."""
    heights, weights = [], []
    for person in people:
        soles = person.joints[:, list(FOOT_JOINTS)] - person.foot_heights[None, :, None] * up  # [T,4,3]
        heights.append((soles @ up).min(axis=1))
        weights.append(person.weights)
    height, weight = np.concatenate(heights), np.concatenate(weights)
    if weight.sum() <= 0:
        return None
    order = np.argsort(height)
    cumulative = np.cumsum(weight[order])
    return float(height[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(a @ b, -1.0, 1.0))))


def _plane_confidence(inliers: np.ndarray, fit: PlaneFit, up: np.ndarray, s: GroundFitSettings) -> tuple[str, str]:
    """("high" | "low", why) for a plane fit.

    Low when the contacts span less than `min_support_spread_m` across their main direction (the
    tilt about that line is then only the prior's), or when the plane disagrees with the people's
    upright direction by more than three times what the residuals, the support and the prior's own
    error (`prior_noise_deg`) explain.
    """
    centred = inliers - inliers.mean(axis=0)
    in_plane = centred - np.outer(centred @ fit.normal, fit.normal)
    spreads = np.sqrt(np.maximum(np.linalg.eigvalsh(in_plane.T @ in_plane / max(len(inliers), 1)), 0.0))
    minor = float(spreads[-2])                                  # smaller in-plane spread (eigvalsh ascending; [0] ~ 0)
    samples = max(1.0, len(inliers) / s.samples_per_independent)
    plane_noise_deg = math.degrees(math.atan2(fit.rms_residual, max(minor, 1e-3) * math.sqrt(samples)))
    allowed = 3.0 * math.hypot(plane_noise_deg, s.prior_noise_deg)
    angle = _angle_deg(fit.normal, up)
    if minor < s.min_support_spread_m:
        return "low", (f"the foot contacts span only {100 * minor:.0f} cm across (a line): the tilt about it is "
                       f"not measured; the plane is {angle:.1f} deg from the people's upright direction")
    if angle > allowed:
        return "low", (f"the plane is {angle:.1f} deg from the people's upright direction, more than its noise explains "
                       f"({allowed:.1f} deg)")
    return "high", ""


def estimate_ground(people: Sequence[PersonJoints], settings: GroundFitSettings | None = None,
                    up_prior: np.ndarray | None = None) -> GroundAlignment:
    """Floor and gravity alignment from all people of a scene (in one TRACE world).

    people: every tracked person (joints in the same TRACE world; register tracks first, see
    scene_camera.register_tracks). up_prior [3] optional: overrides the estimate from the bodies.
    Raises GroundFitError when no frame of anyone is usable.
    """
    s = settings or GroundFitSettings()
    checked = [person.checked() for person in people]
    if up_prior is None:
        up, _ = estimate_up_prior(checked, s.upright_cone_deg)
    else:
        up = _unit(np.asarray(up_prior, np.float64))
        if np.linalg.norm(up) < 0.5:
            raise GroundFitError("up_prior must be a non-zero 3-vector")
    pieces = [contact_candidates(person, up, s) for person in checked]
    points = np.concatenate([p for p, _ in pieces]) if pieces else np.zeros((0, 3))
    weights = np.concatenate([w for _, w in pieces]) if pieces else np.zeros(0)
    fit = fit_floor_plane(points, weights, up, s)
    if fit is not None and _angle_deg(fit.normal, up) <= s.max_prior_angle_deg:
        confidence, confidence_note = _plane_confidence(points[fit.inliers], fit, up, s)
        return GroundAlignment(
            matrix=alignment_from_plane(fit.normal, fit.offset), method="plane_fit", floor_normal=fit.normal,
            camera_height=-fit.offset, up_prior=up, candidates=len(points), inliers=int(fit.inliers.sum()),
            rms_residual_m=fit.rms_residual, prior_angle_deg=_angle_deg(fit.normal, up), people=len(checked),
            note=f"floor fitted to {int(fit.inliers.sum())} of {len(points)} foot contact points",
            confidence=confidence, confidence_note=confidence_note)
    offset = _lowest_sole_offset(checked, up)
    if offset is None:
        raise GroundFitError("no frame with a usable body (all weights are 0 or joints are not finite)")
    return GroundAlignment(
        matrix=alignment_from_plane(up, offset), method="up_prior_lowest_foot", floor_normal=up,
        camera_height=-offset, up_prior=up, candidates=len(points), inliers=0, prior_angle_deg=0.0,
        people=len(checked),
        note=(f"only {len(points)} foot contact points did not support a floor plane: floor taken "
              "perpendicular to the people's upright direction through the median lowest foot"),
        # The pelvis up axes of real walkers lean 4-8 deg from gravity (CMU clips): never a trusted floor.
        confidence="low", confidence_note=("no plane could be fitted: the floor is perpendicular to the people's "
                                           "upright direction, which leans with their gait and posture by several degrees"))
