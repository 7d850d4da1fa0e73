"""From TRACE's 3D centre maps to tracked, memory-filled trajectories (docs/tracking.md).

parse_center_maps_3d -> ensure_detection -> track_clip (Tracker3D) -> gather_trajectory_features
(TrajectoryMemory) -> infill_low_quality_cams. The tracker and the memory carry state from clip to
clip: create them once per video and pass them back in.
"""
from __future__ import annotations

from .assignment import AssignmentError, linear_assignment_with_limit, solve_square_assignment
from .centermap import ensure_detection, parse_center_maps_3d
from .memory import (TrackMemory, TrajectoryBatch, TrajectoryMemory, gather_trajectory_features,
                     infill_low_quality_cams)
from .settings import (TRACKING_PRESETS, TrackingSettings, TrackingSettingsError, parse_subjects,
                       preset_values)
from .tracker import (ClipTracks, Tracker3D, TrackerCall, TrackInClip, TrackState, cams_to_translations,
                      suppress_duplicate_detections, track_clip)

__all__ = [
    "AssignmentError", "linear_assignment_with_limit", "solve_square_assignment",
    "ensure_detection", "parse_center_maps_3d",
    "TrackMemory", "TrajectoryBatch", "TrajectoryMemory", "gather_trajectory_features", "infill_low_quality_cams",
    "TRACKING_PRESETS", "TrackingSettings", "TrackingSettingsError", "parse_subjects", "preset_values",
    "ClipTracks", "Tracker3D", "TrackerCall", "TrackInClip", "TrackState", "cams_to_translations",
    "suppress_duplicate_detections", "track_clip",
]
