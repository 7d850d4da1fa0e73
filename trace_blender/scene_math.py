"""Numbers for the scene around the characters: shots, world transforms, the camera and its lens.

numpy only (no bpy), so everything here is tested without Blender. `building` turns these numbers
into datablocks. Frames: TRACE world = first camera of a shot (x right, y down, z forward); Blender
world = the shot's ground alignment of it (floor z = 0, +Z up) or the fixed swap (x, z, -y).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from . import core_bridge

rig = core_bridge.rig
camera_math = core_bridge.scene_camera()

# Blender cameras look along local -Z with +Y up; the stored camera axes are OpenCV's (+Z forward, +Y down).
OPENCV_TO_BLENDER_CAMERA = camera_math.OPENCV_TO_BLENDER_CAMERA
# TRACE's FOV spans the longer side of the padded square input; a 36 mm sensor on that side.
SENSOR_MM = 36.0


class ShotSelectionError(ValueError):
    """A requested shot does not exist in the result."""


@dataclass(frozen=True)
class ShotPlan:
    """One shot of a result: half-open source frames [start, stop) and its world alignment."""

    index: int
    start: int
    stop: int
    aligned: bool
    alignment: np.ndarray   # [4,4] shared TRACE world -> Blender world as stored (the swap when not aligned)
    method: str             # how the alignment was found ("none" = fixed swap)
    floor_confidence: str = "high"   # "low": the floor fit is not to be trusted (core.world.ground)
    floor_note: str = ""

    def scene_range(self, frame_start: int) -> tuple[int, int]:
        """(first, last) scene frame of the shot, inclusive: video frame i -> frame_start + i."""
        return frame_start + self.start, frame_start + self.stop - 1


@dataclass(frozen=True)
class LensSettings:
    """Blender camera data for the footage's pinhole camera."""

    lens_mm: float
    sensor_fit: str        # "HORIZONTAL" (landscape or square) | "VERTICAL" (portrait) | "AUTO" (size unknown)
    sensor_mm: float       # applied to the side named by sensor_fit (the longer side)
    fov_deg: float         # field of view across the longer image side


def result_shots(result: Any) -> list[ShotPlan]:
    """The shots of a result (format 2), or one unaligned shot over all frames (v1, official trace2)."""
    if hasattr(result, "effective_shots"):
        shots = result.effective_shots()
    else:
        shots = []
    if not shots:
        tracks = list(getattr(result, "tracks", []) or [])
        frames = [np.asarray(t.frames) for t in tracks if np.asarray(t.frames).size]
        start = int(min(f.min() for f in frames)) if frames else 0
        stop = int(max(f.max() for f in frames)) + 1 if frames else 1
        return [ShotPlan(0, start, stop, False, rig.trace_to_blender_transform(), "none")]
    plans = []
    for shot in shots:
        matrix = getattr(shot, "alignment_matrix", None)
        aligned = bool(getattr(shot, "aligned", False))
        info = getattr(shot, "alignment_info", None) or {}
        plans.append(ShotPlan(int(shot.index), int(shot.start), int(shot.stop), aligned,
                              rig.trace_to_blender_transform(matrix if aligned else None),
                              str(info.get("method", "none")) if aligned else "none",
                              str(info.get("confidence") or "high") if aligned else "high",
                              str(info.get("confidence_note") or "") if aligned else ""))
    return plans


def select_shots(shots: Sequence[ShotPlan], wanted: Iterable[int] | None) -> list[ShotPlan]:
    """The shots to import: all of them (wanted None / empty) or those named, in shot order."""
    if wanted is None:
        return list(shots)
    wanted = sorted({int(index) for index in wanted})
    if not wanted:
        return list(shots)
    known = {shot.index: shot for shot in shots}
    missing = [index for index in wanted if index not in known]
    if missing:
        raise ShotSelectionError(f"shot {', '.join(map(str, missing))} does not exist in this result; it has "
                                 f"shot{'s' if len(known) > 1 else ''} {', '.join(map(str, sorted(known)))}")
    return [known[index] for index in wanted]


def parse_shot_list(text: str) -> list[int] | None:
    """'0, 2' -> [0, 2]; '' or 'all' -> None (every shot). Raises ShotSelectionError on anything else."""
    cleaned = text.strip().lower()
    if cleaned in ("", "all"):
        return None
    try:
        values = [int(part) for part in cleaned.replace(";", ",").split(",") if part.strip()]
    except ValueError as exc:
        raise ShotSelectionError(f"shots must be comma-separated shot numbers such as '0,2' (or empty for all), "
                                 f"got {text!r}") from exc
    if any(value < 0 for value in values):
        raise ShotSelectionError(f"shot numbers start at 0, got {text!r}")
    return values or None


def world_base(shot: ShotPlan, apply_alignment: bool, override: np.ndarray | None = None) -> np.ndarray:
    """Rigid [4,4] shared TRACE world -> Blender world for one shot.

    override (an explicit matrix) wins; else the shot's ground alignment when it has one and
    apply_alignment is on; else the fixed swap (x, z, -y).
    """
    if override is not None:
        return rig.trace_to_blender_transform(override)
    if apply_alignment and shot.aligned:
        return np.array(shot.alignment)
    return rig.trace_to_blender_transform()


def track_transform(base: np.ndarray, registration: np.ndarray | None) -> np.ndarray:
    """Rigid [4,4] mapping a track's own TRACE world into Blender: base @ registration."""
    registration = np.eye(4) if registration is None else np.asarray(registration, np.float64)
    return rig.trace_to_blender_transform(base @ registration)


def camera_object_matrices(rotations: np.ndarray, positions: np.ndarray, base: np.ndarray) -> np.ndarray:
    """World matrices [F,4,4] of a Blender camera object (local -Z forward, +Y up).

    rotations [F,3,3]: camera (OpenCV axes) -> shared TRACE world; positions [F,3]: camera centre there;
    base [4,4]: shared TRACE world -> Blender world.
    """
    rotations = np.asarray(rotations, np.float64)
    positions = np.asarray(positions, np.float64)
    matrices = np.broadcast_to(np.eye(4), (rotations.shape[0], 4, 4)).copy()
    matrices[:, :3, :3] = base[:3, :3] @ rotations @ OPENCV_TO_BLENDER_CAMERA
    matrices[:, :3, 3] = positions @ base[:3, :3].T + base[:3, 3]
    return matrices


def camera_keys(matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(location [F,3], rotation_quaternion [F,4] wxyz, sign-continuous) of camera object matrices [F,4,4]."""
    rotations = np.asarray(matrices, np.float64)[:, :3, :3]
    quaternions = rig.make_quaternions_continuous(rig.matrix_to_quaternion(rotations), axis=0)
    return np.asarray(matrices, np.float64)[:, :3, 3].copy(), quaternions


def lens_settings(fov_deg: float | None, focal_px: float | None, width: int, height: int) -> LensSettings:
    """Blender lens for the camera TRACE assumed.

    The FOV (and focal_px) refer to the longer side of the image (TRACE pads frames to a square of
    that side), so a 36 mm sensor is fitted to the longer side: HORIZONTAL for landscape, VERTICAL
    for portrait; AUTO (Blender's longer side of the render size) when the video size is unknown.
    """
    longer = max(int(width or 0), int(height or 0))
    if focal_px is not None and np.isfinite(focal_px) and focal_px > 0 and longer > 0:
        lens = camera_math.lens_mm_from_focal_px(float(focal_px), int(width), int(height), SENSOR_MM)
        fov = math.degrees(2.0 * math.atan(0.5 * longer / float(focal_px)))
    else:
        fov = 50.0 if fov_deg is None or not np.isfinite(fov_deg) else float(fov_deg)
        lens = camera_math.lens_mm_from_fov(fov, SENSOR_MM)
    if longer <= 0:
        fit = "AUTO"
    else:
        fit = "HORIZONTAL" if int(width) >= int(height) else "VERTICAL"
    return LensSettings(lens_mm=lens, sensor_fit=fit, sensor_mm=SENSOR_MM, fov_deg=fov)


def contact_values(contacts: np.ndarray | None, count: int) -> np.ndarray | None:
    """Contacts [T,2] bool (left, right) -> float key values [T,2] (0 / 1), or None when absent."""
    if contacts is None:
        return None
    values = np.asarray(contacts)
    if values.shape != (count, 2):
        raise ValueError(f"contacts must be [{count},2] (left, right foot per frame), got {values.shape}")
    return values.astype(bool).astype(np.float32)
