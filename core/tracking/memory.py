"""The memory unit: per-track features and cams carried across clips, and cam infilling.

Official references: `models/TempTracker.py::prepare_complete_trajectory_features_withmemory` and
`infilling_cams_of_low_quality_dets` (memory5D of one sequence).

* Features: a frame whose detection scores above `feature_update_thresh` and was matched by the
  tracker samples the mesh-feature map and refreshes the memory; a weak or unmatched frame inherits
  the remembered feature ("inherent" flag True). Frames where the track has no tracker row keep a
  (meaningless) sample and are masked out by `valid_masks` downstream.
* Cams: inherited frames get their normalised cam interpolated between the neighbouring good frames
  of the clip, taken from memory before the clip's first good frame, and copied from the last good
  frame after it (or copied from memory with `occlusion_cam_inherent_or_interp`, or One-Euro
  smoothed with `smooth_pos_cam`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..smoothing import OneEuroFilter
from .settings import TrackingSettings
from .tracker import ClipTracks

__all__ = ["TrackMemory", "TrajectoryMemory", "TrajectoryBatch", "gather_trajectory_features",
           "infill_low_quality_cams", "TRACKED_FLAG_MIN", "CAM_FILTER_BETA"]

#: quality[..., 1] above this means the tracker matched a detection in that frame (official 0.99).
TRACKED_FLAG_MIN = 0.99
#: One-Euro speed coefficient of the official cam / pose smoothing: OneEuroFilter(pose_smooth_coef, 0.7).
CAM_FILTER_BETA = 0.7


@dataclass
class TrackMemory:
    """What the memory unit remembers about one track (official memory5D[seq][track_id])."""

    feature: torch.Tensor | None = None              # [C] last good mesh feature ('feature')
    inherent_flags: dict[int, bool] = field(default_factory=dict)  # frame in clip -> inherited ('inherent_flag')
    cams: torch.Tensor | None = None                  # [3] last good normalised cam ('cams', unsmoothed modes)
    cams_initialised: bool = False                    # official: the 'cams' key exists (it may hold None)
    cam_filter: OneEuroFilter | None = None           # 'cams' when smooth_pos_cam is on
    #: Other official memory5D entries owned by the network's smoothing ('grots', 'pose_rots',
    #: 'world_grots', 'world_cams'): stored here under the official key names, with the official
    #: "key present" semantics.
    extra: dict[str, Any] = field(default_factory=dict)


class TrajectoryMemory:
    """The memory unit of one video: a `TrackMemory` per track id, created on first use."""

    def __init__(self) -> None:
        self.tracks: dict[int, TrackMemory] = {}

    def track(self, track_id: int) -> TrackMemory:
        """The memory of `track_id`, created empty if the track is new."""
        track_id = int(track_id)
        if track_id not in self.tracks:
            self.tracks[track_id] = TrackMemory()
        return self.tracks[track_id]

    def __contains__(self, track_id: object) -> bool:
        return track_id in self.tracks

    def __getitem__(self, track_id: int) -> TrackMemory:
        return self.tracks[int(track_id)]

    def __len__(self) -> int:
        return len(self.tracks)

    def __repr__(self) -> str:
        return f"TrajectoryMemory(track_ids={sorted(self.tracks)})"


@dataclass(frozen=True)
class TrajectoryBatch:
    """Per-track, per-frame inputs of the temporal regressors for one clip (K tracks, L frames).

    features [K, L, C] mesh features (sampled or inherited); czyxs [K, L, 3] int64;
    batch_inds [K, L] int64 (-1: no tracker row); valid_masks [K, L] bool (batch_inds != -1);
    track_ids [K] int64; inherent_flags [K, L] bool (True: features came from memory / not refreshed);
    tracked [K, L] bool (the tracker matched a detection in that frame); det_scores [K, L] float64
    (score of the matched or, for lost frames, last matched detection; 0 without a row).
    """

    features: torch.Tensor
    czyxs: torch.Tensor
    batch_inds: torch.Tensor
    valid_masks: torch.Tensor
    track_ids: torch.Tensor
    inherent_flags: torch.Tensor
    tracked: torch.Tensor
    det_scores: torch.Tensor


def gather_trajectory_features(clip_tracks: ClipTracks, mesh_feature_maps: torch.Tensor, memory: TrajectoryMemory,
                               settings: TrackingSettings) -> TrajectoryBatch:
    """Sample each track's mesh features, refreshing or inheriting them through the memory unit.

    mesh_feature_maps: [n, C, H, W] of the clip. Updates `memory` in place.
    Official quirk kept: where a track has no row (batch index -1, voxel (0,0,0)) the sample comes
    from the clip's last frame at pixel (0, 0); valid_masks marks those frames.
    """
    device = mesh_feature_maps.device
    length = clip_tracks.clip_length
    channels = mesh_feature_maps.shape[1]
    features, czyxs, batch_inds, valid_masks, track_ids, flags, qualities = [], [], [], [], [], [], []
    for track_id, track in clip_tracks.items():
        remembered = memory.track(track_id)
        track_czyxs = track.czyxs.to(device=device, dtype=torch.long)       # [L, 3]
        track_batch = track.batch_inds.to(device=device, dtype=torch.long)  # [L]
        valid = track_batch != -1
        sampled = mesh_feature_maps[track_batch, :, track_czyxs[:, 1], track_czyxs[:, 2]]  # [L, C]
        inherited = torch.ones(length, dtype=torch.bool)
        if settings.feature_inherent:
            valid_list = valid.tolist()
            confidences = track.quality[:, 0].tolist()
            tracked_flags = track.quality[:, 1].tolist()
            for frame in range(length):
                flag = True
                if valid_list[frame]:
                    confidence, tracked = confidences[frame], tracked_flags[frame]
                    if confidence > settings.feature_update_thresh and tracked > TRACKED_FLAG_MIN:
                        remembered.feature = sampled[frame].clone()
                        flag = False
                    elif confidence <= settings.feature_update_thresh and remembered.feature is not None:
                        sampled[frame] = remembered.feature
                    elif tracked < TRACKED_FLAG_MIN and remembered.feature is not None:
                        sampled[frame] = remembered.feature
                remembered.inherent_flags[frame] = flag
                inherited[frame] = flag
        features.append(sampled)
        czyxs.append(track_czyxs)
        batch_inds.append(track_batch)
        valid_masks.append(valid)
        track_ids.append(int(track_id))
        flags.append(inherited)
        qualities.append(track.quality.to(torch.float64))
    if not features:
        return TrajectoryBatch(
            features=mesh_feature_maps.new_zeros((0, length, channels)),
            czyxs=torch.zeros((0, length, 3), dtype=torch.long, device=device),
            batch_inds=torch.zeros((0, length), dtype=torch.long, device=device),
            valid_masks=torch.zeros((0, length), dtype=torch.bool, device=device),
            track_ids=torch.zeros(0, dtype=torch.long, device=device),
            inherent_flags=torch.zeros((0, length), dtype=torch.bool, device=device),
            tracked=torch.zeros((0, length), dtype=torch.bool, device=device),
            det_scores=torch.zeros((0, length), dtype=torch.float64, device=device))
    quality = torch.stack(qualities).to(device)                            # [K, L, 2]
    return TrajectoryBatch(
        features=torch.stack(features),
        czyxs=torch.stack(czyxs),
        batch_inds=torch.stack(batch_inds),
        valid_masks=torch.stack(valid_masks),
        track_ids=torch.tensor(track_ids, dtype=torch.long, device=device),
        inherent_flags=torch.stack(flags).to(device),
        tracked=quality[..., 1] > TRACKED_FLAG_MIN,
        det_scores=quality[..., 0])


def infill_low_quality_cams(normed_cams: torch.Tensor, track_ids: torch.Tensor, memory: TrajectoryMemory,
                            inherent_flags: torch.Tensor, settings: TrackingSettings) -> torch.Tensor:
    """Replace the cams of inherited frames (official infilling_cams_of_low_quality_dets).

    normed_cams: [K, L, 3]; track_ids: [K]; inherent_flags: [K, L] bool. Returns a new [K, L, 3]
    tensor and updates `memory`. Modes: interpolation (default), `occlusion_cam_inherent_or_interp`
    (copy the last good cam), `smooth_pos_cam` (interpolate, then One-Euro filter every frame).
    """
    cams = normed_cams.clone()
    flags_all = inherent_flags.detach().cpu().bool()
    for k, track_id in enumerate(track_ids.reshape(-1).tolist()):
        remembered = memory.track(track_id)
        flags = flags_all[k].tolist()
        infill_frames = [f for f, inherited in enumerate(flags) if inherited]
        good_frames = [f for f, inherited in enumerate(flags) if not inherited]
        row = cams[k]                          # [L, 3] view: updated in place, frame by frame
        if settings.smooth_pos_cam:
            if remembered.cam_filter is None:
                remembered.cam_filter = OneEuroFilter(settings.pose_smooth_coef, CAM_FILTER_BETA, feed_back_output=True)
            _interpolate_inherited(row, infill_frames, good_frames, remembered.cam_filter.last_value)
            for frame in range(row.shape[0]):
                row[frame] = remembered.cam_filter.process(row[frame])
            continue
        if not remembered.cams_initialised:
            remembered.cams = row[good_frames[0]].clone() if good_frames else None
            remembered.cams_initialised = True
        if settings.occlusion_cam_inherent_or_interp:
            for frame, inherited in enumerate(flags):
                if inherited and remembered.cams is not None:
                    row[frame] = remembered.cams
                elif not inherited:
                    remembered.cams = row[frame].clone()
        else:
            _interpolate_inherited(row, infill_frames, good_frames, remembered.cams)
            if good_frames:
                remembered.cams = row[good_frames[-1]].clone()
    return cams


def _interpolate_inherited(row: torch.Tensor, infill_frames: list[int], good_frames: list[int],
                           remembered: torch.Tensor | None) -> None:
    """Linear interpolation between the nearest good frames; memory before the first, hold after the last."""
    for frame in infill_frames:
        before = [g for g in good_frames if g < frame]
        if not before:
            if remembered is not None:
                row[frame] = remembered
            continue
        after = [g for g in good_frames if g > frame]
        if not after:
            row[frame] = row[good_frames[-1]]
            continue
        fore, aft = before[-1], after[0]
        row[frame] = (aft - frame) / (aft - fore) * row[fore] + (frame - fore) / (aft - fore) * row[aft]
