"""A low-poly skinned mannequin generated from a 24-joint SMPL rest skeleton (this project's own
geometry: no SMPL model data), so that an import without the licensed SMPL file still shows a body
and every export carries a skinned mesh.

numpy only. Output is in the canonical SMPL frame (y up, facing +z, the body's left on +x, metres),
like an SMPL template, so the importer treats it exactly like the SMPL mesh: `vertices` [V, 3],
triangle `faces` [F, 3] and linear-blend-skinning `weights` [V, 24] (rows sum to 1).

Shapes (radii as fractions of the stature H, read off the skeleton): elliptic tubes along the
limbs and the spine, a box per foot and hand, an ellipsoid head. Each tube belongs to the bone at
its start joint; its end rings blend 50/50 with the neighbouring bone, so joints bend smoothly and
the seams between tubes stay closed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# SMPL joint indices (smplx order).
PELVIS, L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, L_ANKLE, R_ANKLE, SPINE3 = range(10)
L_FOOT, R_FOOT, NECK, L_COLLAR, R_COLLAR, HEAD, L_SHOULDER, R_SHOULDER = range(10, 18)
L_ELBOW, R_ELBOW, L_WRIST, R_WRIST, L_HAND, R_HAND = range(18, 24)
NUM_JOINTS = 24
SIDES = 8              # vertices around every tube
HEAD_JOINT_HEIGHT = 0.890   # head joint height / stature in the default skeleton (core skeleton table)

# (start joint, end joint, radius across at start / end, radius front-back at start / end) in units of H.
_TUBES: tuple[tuple[int, int, float, float, float, float], ...] = (
    (PELVIS, SPINE1, 0.100, 0.095, 0.068, 0.062),
    (SPINE1, SPINE2, 0.095, 0.098, 0.062, 0.064),
    (SPINE2, SPINE3, 0.098, 0.105, 0.064, 0.066),
    (SPINE3, NECK, 0.105, 0.060, 0.066, 0.045),
    (NECK, HEAD, 0.032, 0.030, 0.032, 0.030),
    (L_HIP, L_KNEE, 0.048, 0.033, 0.050, 0.034), (R_HIP, R_KNEE, 0.048, 0.033, 0.050, 0.034),
    (L_KNEE, L_ANKLE, 0.032, 0.020, 0.034, 0.022), (R_KNEE, R_ANKLE, 0.032, 0.020, 0.034, 0.022),
    (L_COLLAR, L_SHOULDER, 0.030, 0.032, 0.030, 0.032), (R_COLLAR, R_SHOULDER, 0.030, 0.032, 0.030, 0.032),
    (L_SHOULDER, L_ELBOW, 0.030, 0.022, 0.030, 0.022), (R_SHOULDER, R_ELBOW, 0.030, 0.022, 0.030, 0.022),
    (L_ELBOW, L_WRIST, 0.021, 0.016, 0.021, 0.013), (R_ELBOW, R_WRIST, 0.021, 0.016, 0.021, 0.013),
)
# The bone a tube's last ring blends with (the child joint's bone), and its first ring (the parent's).
_END_BLEND = {PELVIS: SPINE1, SPINE1: SPINE2, SPINE2: SPINE3, SPINE3: NECK, NECK: HEAD,
              L_HIP: L_KNEE, R_HIP: R_KNEE, L_KNEE: L_ANKLE, R_KNEE: R_ANKLE,
              L_COLLAR: L_SHOULDER, R_COLLAR: R_SHOULDER, L_SHOULDER: L_ELBOW, R_SHOULDER: R_ELBOW,
              L_ELBOW: L_WRIST, R_ELBOW: R_WRIST}
_START_BLEND = {SPINE1: PELVIS, SPINE2: SPINE1, SPINE3: SPINE2, NECK: SPINE3, L_HIP: PELVIS, R_HIP: PELVIS,
                L_KNEE: L_HIP, R_KNEE: R_HIP, L_COLLAR: SPINE3, R_COLLAR: SPINE3, L_SHOULDER: L_COLLAR,
                R_SHOULDER: R_COLLAR, L_ELBOW: L_SHOULDER, R_ELBOW: R_SHOULDER}


@dataclass(frozen=True)
class Mannequin:
    vertices: np.ndarray   # [V, 3] canonical SMPL frame, metres
    faces: np.ndarray      # [F, 3] int64 triangles, counter-clockwise seen from outside
    weights: np.ndarray    # [V, 24] skinning weights per SMPL joint, rows sum to 1


class _MeshBuilder:
    def __init__(self) -> None:
        self.vertices: list[np.ndarray] = []
        self.faces: list[tuple[int, int, int]] = []
        self.weights: list[np.ndarray] = []
        self.count = 0

    def add_vertices(self, points: np.ndarray, weights: np.ndarray) -> int:
        first = self.count
        self.vertices.append(np.asarray(points, np.float64).reshape(-1, 3))
        self.weights.append(np.broadcast_to(weights, (len(self.vertices[-1]), NUM_JOINTS)).copy())
        self.count += len(self.vertices[-1])
        return first

    def build(self) -> Mannequin:
        faces = np.asarray(self.faces, np.int64).reshape(-1, 3)
        return Mannequin(np.concatenate(self.vertices), faces, np.concatenate(self.weights))


def _weight(*pairs: tuple[int, float]) -> np.ndarray:
    row = np.zeros(NUM_JOINTS)
    for joint, value in pairs:
        row[joint] += value
    return row / row.sum()


def _perpendicular_frame(direction: np.ndarray, forward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(across, front) unit vectors perpendicular to `direction`; front as close to `forward` as possible."""
    d = direction / np.linalg.norm(direction)
    front = forward - (forward @ d) * d
    if np.linalg.norm(front) < 1e-6:
        front = np.array([0.0, 1.0, 0.0]) - d[1] * d
    front /= np.linalg.norm(front)
    return np.cross(front, d), front


def _tube(builder: _MeshBuilder, start: np.ndarray, end: np.ndarray, radii_start: tuple[float, float],
          radii_end: tuple[float, float], ring_weights: list[np.ndarray], cap_start: bool, cap_end: bool) -> None:
    """Elliptic tube start -> end with len(ring_weights) rings (evenly spaced), optional fan caps."""
    axis = end - start
    across, front = _perpendicular_frame(axis, np.array([0.0, 0.0, 1.0]))
    angles = np.linspace(0.0, 2 * np.pi, SIDES, endpoint=False)
    rings = len(ring_weights)
    firsts = []
    for ring, weights in enumerate(ring_weights):
        t = ring / (rings - 1)
        rx = (1 - t) * radii_start[0] + t * radii_end[0]
        rz = (1 - t) * radii_start[1] + t * radii_end[1]
        centre = start + t * axis
        points = centre + np.cos(angles)[:, None] * rx * across + np.sin(angles)[:, None] * rz * front
        firsts.append(builder.add_vertices(points, weights))
    for ring in range(rings - 1):
        a, b = firsts[ring], firsts[ring + 1]
        for k in range(SIDES):
            k1 = (k + 1) % SIDES
            builder.faces += [(a + k, a + k1, b + k1), (a + k, b + k1, b + k)]
    for cap, first, centre, weights in ((cap_start, firsts[0], start, ring_weights[0]),
                                        (cap_end, firsts[-1], end, ring_weights[-1])):
        if not cap:
            continue
        middle = builder.add_vertices(centre, weights)
        for k in range(SIDES):
            k1 = (k + 1) % SIDES
            pair = (first + k1, first + k) if first == firsts[0] else (first + k, first + k1)
            builder.faces.append((middle,) + pair)


def _box(builder: _MeshBuilder, centre: np.ndarray, half: np.ndarray, axes: np.ndarray,
         weights_per_corner: list[np.ndarray]) -> None:
    """Box with the given half sizes along axes[0..2] (columns); corner weights in order (x, y, z) bits."""
    first = builder.count
    for corner in range(8):
        signs = np.array([1 if corner & 1 else -1, 1 if corner & 2 else -1, 1 if corner & 4 else -1], np.float64)
        builder.add_vertices(centre + axes @ (signs * half), weights_per_corner[corner])
    quads = ((0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5))
    handedness = np.linalg.det(axes)
    for a, b, c, d in quads:
        face = (a, b, c, d) if handedness > 0 else (a, d, c, b)
        builder.faces += [(first + face[0], first + face[1], first + face[2]),
                          (first + face[0], first + face[2], first + face[3])]


def _ellipsoid(builder: _MeshBuilder, centre: np.ndarray, radii: np.ndarray, weights: np.ndarray,
               stacks: int = 6) -> None:
    first = builder.add_vertices(centre + np.array([0.0, -radii[1], 0.0]), weights)
    rings = []
    for stack in range(1, stacks):
        polar = np.pi * stack / stacks
        angles = np.linspace(0.0, 2 * np.pi, SIDES, endpoint=False)
        points = centre + np.stack([radii[0] * np.sin(polar) * np.cos(angles),
                                    -radii[1] * np.cos(polar) * np.ones(SIDES),
                                    radii[2] * np.sin(polar) * np.sin(angles)], axis=1)
        rings.append(builder.add_vertices(points, weights))
    top = builder.add_vertices(centre + np.array([0.0, radii[1], 0.0]), weights)
    for k in range(SIDES):
        k1 = (k + 1) % SIDES
        builder.faces.append((first, rings[0] + k, rings[0] + k1))
        builder.faces.append((top, rings[-1] + k1, rings[-1] + k))
        for ring in range(len(rings) - 1):
            a, b = rings[ring], rings[ring + 1]
            builder.faces += [(a + k, b + k, b + k1), (a + k, b + k1, a + k1)]


def mannequin_from_skeleton(rest_joints: np.ndarray) -> Mannequin:
    """The mannequin around a canonical rest skeleton [24, 3] (T-pose, soles near y = 0)."""
    joints = np.asarray(rest_joints, np.float64)
    if joints.shape != (NUM_JOINTS, 3) or not np.all(np.isfinite(joints)):
        raise ValueError(f"rest_joints must be a finite [24, 3] array, got shape {joints.shape}")
    sole = min(joints[L_FOOT, 1], joints[R_FOOT, 1]) - 0.012 * (joints[HEAD, 1] - joints[L_FOOT, 1]) / 0.878
    height = (joints[HEAD, 1] - sole) / HEAD_JOINT_HEIGHT
    if not 0.3 <= height <= 3.0:
        raise ValueError(f"the skeleton is {height:.2f} m tall: not a human stature in metres")
    builder = _MeshBuilder()
    for start, end, rx0, rx1, rz0, rz1 in _TUBES:
        own = start
        first = _weight((own, 0.5), (_START_BLEND[own], 0.5)) if own in _START_BLEND else _weight((own, 1.0))
        last = _weight((own, 0.5), (_END_BLEND[own], 0.5))
        rings = [first, _weight((own, 1.0)), _weight((own, 1.0)), last]
        caps = start in (PELVIS, L_COLLAR, R_COLLAR), end in (HEAD, L_WRIST, R_WRIST, L_ANKLE, R_ANKLE)
        _tube(builder, joints[start], joints[end], (rx0 * height, rz0 * height), (rx1 * height, rz1 * height),
              rings, *caps)
    # Hips: a block between the hip joints, weighted to the pelvis and blending into the thighs.
    hip_width = abs(joints[L_HIP, 0] - joints[R_HIP, 0]) / 2 + 0.045 * height
    centre = 0.5 * (joints[L_HIP] + joints[R_HIP]) + np.array([0.0, 0.02 * height, -0.005 * height])
    corner_weights = [_weight((PELVIS, 0.6), (L_HIP if c & 1 else R_HIP, 0.4)) if not c & 2 else _weight((PELVIS, 1.0))
                      for c in range(8)]
    _box(builder, centre, np.array([hip_width, 0.06 * height, 0.06 * height]), np.eye(3), corner_weights)
    # Feet: heel to toe tip, sole on the floor; the heel half follows the ankle, the front the toe bone.
    for ankle, toe in ((L_ANKLE, L_FOOT), (R_ANKLE, R_FOOT)):
        heel = joints[ankle][2] - 0.035 * height
        tip = joints[toe][2] + 0.045 * height
        top = joints[ankle][1] + 0.01 * height
        centre = np.array([0.5 * (joints[ankle][0] + joints[toe][0]), 0.5 * (sole + top), 0.5 * (heel + tip)])
        half = np.array([0.03 * height, 0.5 * (top - sole), 0.5 * (tip - heel)])
        weights = [_weight((toe, 1.0)) if c & 4 else _weight((ankle, 1.0)) for c in range(8)]
        _box(builder, centre, half, np.eye(3), weights)
    # Hands: flat boxes from the wrist past the knuckle joint.
    for wrist, hand in ((L_WRIST, L_HAND), (R_WRIST, R_HAND)):
        axis = joints[hand] - joints[wrist]
        length = np.linalg.norm(axis)
        along = axis / length
        across, front = _perpendicular_frame(along, np.array([0.0, 0.0, 1.0]))
        axes = np.stack([along, across, front], axis=1)
        if np.linalg.det(axes) < 0:
            axes[:, 2] *= -1
        centre = joints[wrist] + along * 0.9 * length
        weights = [_weight((hand, 1.0)) if c & 1 else _weight((wrist, 1.0)) for c in range(8)]
        _box(builder, centre, np.array([0.9 * length, 0.012 * height, 0.03 * height]), axes, weights)
    _ellipsoid(builder, joints[HEAD] + np.array([0.0, 0.045 * height, 0.01 * height]),
               np.array([0.052, 0.068, 0.062]) * height, _weight((HEAD, 1.0)))
    return builder.build()
