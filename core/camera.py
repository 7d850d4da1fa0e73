"""The lens: from the network's normalised camera (s, ty, tx) to metric camera-space positions.

TRACE predicts, per person, a weak-perspective style camera on the padded square input: scale `s`
and image-plane offsets (ty, tx) in [-1, 1] of that square. With a normalised focal length
f_n = focal_px / (padded_side / 2) the person's hip centre in the camera frame (x right, y down,
z forward, metres) is

    depth = f_n / s,   x = tx * depth / f_n = tx / s,   y = ty / s

(the official code adds 1e-6 to s before dividing; kept here). Official TRACE assumes a 50 degree
field of view across the padded square: f_n = 1 / tan(25 deg) = 2.1445. Users who know their lens
give the horizontal FOV of the source video or its focal length in source pixels instead; the padded
side is max(width, height) of the upright source frame. This is the only place fov <-> focal length
conversions live (the tracker's association distances use the same f_n, TrackingSettings.depth_scale).

numpy only.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

OFFICIAL_FOV_DEG = 50.0
SCALE_EPSILON = 1e-6
# Horizontal fields of view a user lens may have (--fov, and --focal through the frame width): a
# pinhole model beyond ~170 degrees puts people at absurd depths (fisheye footage needs undistorting).
MIN_FOV_DEG = 1.0
MAX_FOV_DEG = 170.0


@dataclass(frozen=True)
class Lens:
    """How the normalised focal length was chosen; recorded in the result settings."""

    normalized_focal: float        # f_n = focal_px / (padded_side / 2)
    source: str                    # "official" | "fov" | "focal"
    padded_side: int               # max(width, height) of the upright source frame, pixels
    focal_px: float                # focal length in source pixels
    horizontal_fov_deg: float      # horizontal FOV of the source frame implied by focal_px
    source_width: int
    source_height: int

    def as_dict(self) -> dict:
        return asdict(self)


def fov_to_normalized_focal(fov_deg: float) -> float:
    """f_n for a FOV spanning the whole padded square: 1 / tan(FOV/2) (the official `1/tan_fov`)."""
    return 1.0 / math.tan(math.radians(fov_deg) / 2.0)


def normalized_focal_to_fov(normalized_focal: float) -> float:
    """The FOV (degrees) across the whole padded square for f_n: 2 atan(1 / f_n)."""
    return math.degrees(2.0 * math.atan(1.0 / normalized_focal))


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"source frame size must be positive, got {width}x{height}")


def official_lens(width: int, height: int) -> Lens:
    """The official assumption: 50 degree FOV across the padded square (whatever the source lens)."""
    _check_size(width, height)
    side = max(width, height)
    f_n = fov_to_normalized_focal(OFFICIAL_FOV_DEG)
    return _lens(f_n * side / 2.0, "official", width, height)


def lens_from_horizontal_fov(fov_deg: float, width: int, height: int) -> Lens:
    """--fov: the horizontal FOV of the source video -> focal_px = (W/2) / tan(FOV/2)."""
    _check_size(width, height)
    if not (math.isfinite(fov_deg) and MIN_FOV_DEG <= fov_deg <= MAX_FOV_DEG):
        raise ValueError(f"the horizontal field of view must be between {MIN_FOV_DEG:g} and {MAX_FOV_DEG:g} "
                         f"degrees (got {fov_deg:g})")
    focal_px = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    return _lens(focal_px, "fov", width, height)


def lens_from_focal_px(focal_px: float, width: int, height: int) -> Lens:
    """--focal: focal length in source pixels (e.g. from a calibration or EXIF 35mm-equivalent)."""
    _check_size(width, height)
    if not (math.isfinite(focal_px) and focal_px > 0.0):
        raise ValueError(f"the focal length must be a positive number of pixels (got {focal_px:g})")
    fov_deg = math.degrees(2.0 * math.atan(width / 2.0 / focal_px))
    if not MIN_FOV_DEG <= fov_deg <= MAX_FOV_DEG:
        low = (width / 2.0) / math.tan(math.radians(MAX_FOV_DEG) / 2.0)
        high = (width / 2.0) / math.tan(math.radians(MIN_FOV_DEG) / 2.0)
        raise ValueError(f"a focal length of {focal_px:g} px is a horizontal field of view of {fov_deg:.3g} degrees "
                         f"across the {width}-pixel-wide video; give {low:.3g} to {high:.4g} px "
                         f"({MIN_FOV_DEG:g} to {MAX_FOV_DEG:g} degrees)")
    return _lens(float(focal_px), "focal", width, height)


def _lens(focal_px: float, source: str, width: int, height: int) -> Lens:
    side = max(width, height)
    return Lens(normalized_focal=focal_px / (side / 2.0), source=source, padded_side=side, focal_px=focal_px,
                horizontal_fov_deg=math.degrees(2.0 * math.atan((width / 2.0) / focal_px)),
                source_width=width, source_height=height)


def cams_to_translation(cams: np.ndarray, normalized_focal: float) -> np.ndarray:
    """Normalised cams [N,3] (s, ty, tx) -> camera-space positions [N,3] (x, y, z) in metres."""
    cams = np.asarray(cams, dtype=np.float64)
    scale = cams[..., 0:1] + SCALE_EPSILON                  # [N,1]
    depth = normalized_focal / scale                        # [N,1]
    xy = cams[..., [2, 1]] * depth / normalized_focal       # [N,2] (tx, ty) -> (x, y)
    return np.concatenate([xy, depth], axis=-1)


def project_to_source_pixels(points_cam: np.ndarray, lens: Lens) -> np.ndarray:
    """Camera-space points [N,3] -> source-video pixels (x, y) [N,2] with this lens.

    The principal point is the centre of the padded square (the network's optical axis), which is
    the image centre up to half a pixel (the white padding puts the odd pixel at the bottom/right).
    """
    points_cam = np.asarray(points_cam, dtype=np.float64)
    left = (lens.padded_side - lens.source_width) // 2
    top = (lens.padded_side - lens.source_height) // 2
    cx, cy = lens.padded_side / 2.0 - left, lens.padded_side / 2.0 - top
    return np.stack([points_cam[..., 0] / points_cam[..., 2] * lens.focal_px + cx,
                     points_cam[..., 1] / points_cam[..., 2] * lens.focal_px + cy], axis=-1)
