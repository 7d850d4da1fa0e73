"""The official TRACE 3D tracker and its per-clip driver.

Official references: `tracker/tracker3D.py` (Tracker, STrack3D), `tracker/basetrack.py`,
`tracker/matching_3dcenter.py` and `models/TempTracker.py` (perform_tracking,
suppress_duplicate_dets, filter_out_small_objects, parse_tracking_ids).

How it works, per frame of a clip:
1. detections with cam scale <= large_object_thresh are dropped, near-duplicates (cams closer than
   suppress_duplicate_thresh) keep only their best-scoring member, and 3D motion offsets longer than
   motion_offset3D_norm_limit are zeroed;
2. the cams give camera-space positions now and, with the motion offset removed, one frame earlier;
3. `Tracker3D.update` matches its tracks (whose state is where the person was last seen) with the
   detections' previous-frame positions, in (x, y, 1/(1+depth)) weighted by `axis_times`, by a
   minimum-cost assignment limited to `tracker_match_thresh`;
4. the clip's per-frame tracker outputs become one `TrackInClip` per track id, and tracks seen in
   fewer than min(#frames with output, 6) frames of the clip are dropped.

Positions are stored as float32 like the official STrack3D, so distances match it to the bit.
Official quirks are kept when `settings.official_quirks` is True (docs/tracking.md lists them).
"""
from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from .assignment import linear_assignment_with_limit
from .settings import TrackingSettings

__all__ = ["TrackState", "Tracker3D", "TrackerCall", "TrackInClip", "ClipTracks", "track_clip",
           "cams_to_translations", "suppress_duplicate_detections", "MIN_FRAMES_PER_CLIP"]

#: A track must appear in at least min(#frames with tracker output, this) frames of a clip.
MIN_FRAMES_PER_CLIP = 6
#: Official Tracker.new_subject_det_thresh, hard-coded regardless of the setting.
OFFICIAL_NEW_SUBJECT_DET_THRESH = 0.8
#: Column layout of the rows `Tracker3D.update` returns.
OUTPUT_COLUMNS = ("x", "y", "inverse_depth", "track_id", "score", "tracked", "z_bin", "y_cell", "x_cell")


class TrackState(enum.IntEnum):
    NEW = 0
    TRACKED = 1
    LOST = 2
    REMOVED = 3


@dataclass
class _Track:
    """One person known to the tracker (official STrack3D)."""

    track_id: int
    position: np.ndarray     # [3] float32: (x, y, 1/(1+depth)) where the person was last seen
    score: float             # detection score of the last match
    czyx: np.ndarray         # [3] int64 voxel of the last match
    state: TrackState
    last_frame: int          # tracker frame of the last match (official frame_id / end_frame)
    start_frame: int


@dataclass(frozen=True)
class TrackerCall:
    """Inputs and output of one `Tracker3D.update` (kept when the tracker records its calls)."""

    frame_id: int
    trans3d: np.ndarray       # [D, 3]
    scores: np.ndarray        # [D]
    last_trans3d: np.ndarray  # [D, 3]
    czyxs: np.ndarray         # [D, 3]
    output: np.ndarray        # [K, 9] see OUTPUT_COLUMNS


class Tracker3D:
    """Associates detections across frames in 3D; state carries across clips (pass it back in).

    Track ids count from 1 per tracker instance (the official id counter is process-global; the
    reference reset it before each sequence, which is the same thing).
    """

    def __init__(self, settings: TrackingSettings, record_calls: bool = False) -> None:
        self.settings = settings
        self.frame_id = 0
        self.tracks: list[_Track] = []   # tracked and lost-but-remembered (official tracked_stracks)
        self._last_track_id = 0
        self.calls: list[TrackerCall] | None = [] if record_calls else None

    @property
    def max_time_lost(self) -> int:
        return self.settings.track_buffer_frames

    def _new_track_id(self) -> int:
        self._last_track_id += 1
        return self._last_track_id

    def update(self, trans3d: np.ndarray, scores: np.ndarray, last_trans3d: np.ndarray,
               czyxs: np.ndarray) -> np.ndarray:
        """Advance one frame with its detections.

        trans3d, last_trans3d: [D, 3] camera-space positions now / one frame earlier;
        scores: [D]; czyxs: [D, 3] voxels. Returns [K, 9] float64 rows, one per remembered track, of
        (x, y, 1/(1+depth), track_id, score, tracked 0/1, z, y, x) (`OUTPUT_COLUMNS`).
        """
        s = self.settings
        quirks = s.official_quirks
        self.frame_id += 1
        trans3d = np.asarray(trans3d).reshape(-1, 3)
        last_trans3d = np.asarray(last_trans3d).reshape(-1, 3)
        scores = np.asarray(scores).reshape(-1)
        czyxs = np.asarray(czyxs).reshape(-1, 3)

        thresh = s.first_frame_det_thresh if self.frame_id == 1 else s.tracker_det_thresh
        keep = scores > thresh
        det_scores = scores[keep]                                   # [M]
        det_czyxs = czyxs[keep]                                     # [M, 3]
        det_now = _encode_positions(trans3d[keep])                  # [M, 3] float32
        det_before = _encode_positions(last_trans3d[keep])          # [M, 3] float32

        pool = self.tracks
        cost = _weighted_distances(np.array([t.position for t in pool]), det_before, np.asarray(s.axis_times))
        matches, unmatched_tracks, unmatched_dets = linear_assignment_with_limit(cost, s.tracker_match_thresh)

        for track_index, det_index in matches:
            track = pool[track_index]
            if track.state == TrackState.TRACKED or not quirks:
                # the track's new state is where the detection was one frame earlier
                track.position = det_before[det_index].copy()
                track.czyx = det_czyxs[det_index]
            # official re_activate of a lost track keeps its stale position and voxel
            track.state = TrackState.TRACKED
            track.last_frame = self.frame_id
            track.score = det_scores[det_index]

        lost_now = []
        for track_index in unmatched_tracks:
            track = pool[track_index]
            track.state = TrackState.LOST
            lost_now.append(track)

        new_tracks = [self._start_track(det_now[i], det_scores[i], det_czyxs[i])
                      for i in self._detections_starting_tracks(unmatched_dets, det_scores, det_now)]
        self.tracks = pool + new_tracks

        for track in lost_now:
            if self.frame_id - track.last_frame > self.max_time_lost:
                track.state = TrackState.REMOVED
                self.tracks = [t for t in self.tracks if t.track_id != track.track_id]

        output = _output_rows(self.tracks)
        if self.calls is not None:
            self.calls.append(TrackerCall(self.frame_id, trans3d.copy(), scores.copy(), last_trans3d.copy(),
                                          czyxs.copy(), output.copy()))
        return output

    def _detections_starting_tracks(self, unmatched_dets: np.ndarray, det_scores: np.ndarray,
                                    det_now: np.ndarray) -> list[int]:
        """Indices of unmatched detections that become new tracks, in activation order."""
        s = self.settings
        if not s.accept_new_dets:
            if len(self.tracks) >= s.subject_num:
                return []
            candidates = np.asarray(unmatched_dets, dtype=np.int64)
            candidates = candidates[det_scores[candidates] > s.first_frame_det_thresh]
            closeness = det_now[candidates, 2]          # 1/(1+depth): larger is closer
            slots = s.subject_num if s.official_quirks else s.subject_num - len(self.tracks)
            return [int(i) for i in candidates[np.argsort(closeness)[::-1][:slots]]]
        new_thresh = OFFICIAL_NEW_SUBJECT_DET_THRESH if s.official_quirks else s.new_subject_det_thresh
        nobody_tracked = len(self.tracks) == 0
        return [int(i) for i in unmatched_dets
                if (nobody_tracked and det_scores[i] > s.first_frame_det_thresh) or det_scores[i] > new_thresh]

    def _start_track(self, position: np.ndarray, score: float, czyx: np.ndarray) -> _Track:
        return _Track(track_id=self._new_track_id(), position=position.copy(), score=score, czyx=czyx,
                      state=TrackState.TRACKED, last_frame=self.frame_id, start_frame=self.frame_id)


def _encode_positions(trans3d: np.ndarray) -> np.ndarray:
    """(x, y, depth) -> float32 (x, y, 1/(1+depth)); the inverse depth changes slowly for near people."""
    if len(trans3d) == 0:
        return np.zeros((0, 3), np.float32)
    return np.concatenate([trans3d[:, :2], 1 / (1 + trans3d[:, 2:3])], axis=1).astype(np.float32)


def _weighted_distances(track_positions: np.ndarray, det_positions: np.ndarray, axis_times: np.ndarray) -> np.ndarray:
    """[T, M] Euclidean distances after weighting each axis (official euclidean_distance, float64)."""
    if len(track_positions) == 0 or len(det_positions) == 0:
        return np.zeros((len(track_positions), len(det_positions)), np.float32)
    a = track_positions * axis_times[None]
    b = det_positions * axis_times[None]
    return np.linalg.norm(a[:, None] - b[None], ord=2, axis=2)


def _output_rows(tracks: list[_Track]) -> np.ndarray:
    rows = np.zeros((len(tracks), 9), np.float64)
    for i, t in enumerate(tracks):
        rows[i, 0:3] = t.position
        rows[i, 3] = t.track_id
        rows[i, 4] = t.score
        rows[i, 5] = t.state == TrackState.TRACKED
        rows[i, 6:9] = t.czyx
    return rows


# ------------------------------------------------------------------------------------------------
# per-clip driver
# ------------------------------------------------------------------------------------------------

def cams_to_translations(normed_cams: torch.Tensor, depth_scale: float) -> torch.Tensor:
    """Normalised cams (s, ty, tx) [..., 3] -> camera-space (x, y, depth) [..., 3].

    depth = depth_scale / (s + 1e-6), (x, y) = (tx, ty) * depth / depth_scale; the official
    `denormalize_cam_params_to_trans` (positive_constrain False), same torch operations.
    """
    scale = normed_cams[..., [0]]
    xy_normed = torch.flip(normed_cams[..., 1:], [-1])
    depth = depth_scale / (scale + 1e-6)
    xy = xy_normed * depth / depth_scale
    return torch.cat([xy, depth], -1)


def suppress_duplicate_detections(cams: torch.Tensor, scores: torch.Tensor, thresh: float) -> torch.Tensor:
    """[D] bool mask: among detections whose cams lie closer than `thresh`, keep the best-scoring one.

    Official suppress_duplicate_dets: every detection looks at its neighbours (all detections,
    suppressed or not); the non-maximum members of each neighbourhood are dropped.
    """
    keep = torch.ones(len(cams), dtype=torch.bool)
    if len(cams) <= 1:
        return keep
    distances = torch.norm(cams[:, None] - cams[None], p=2, dim=-1)   # [D, D]
    for index in range(len(cams)):
        nearest = torch.sort(distances[index], descending=False)
        neighbours = nearest.indices[nearest.values < thresh][1:].tolist()
        if neighbours:
            group = neighbours + [index]
            by_score = torch.sort(scores[group], descending=True).indices[1:].tolist()
            keep[[group[i] for i in by_score]] = False
    return keep


@dataclass(frozen=True)
class TrackInClip:
    """One track over the frames of a clip (official parse_tracking_ids entries).

    czyxs [L, 3] int64 voxel per frame ((0,0,0) where the track has no row);
    batch_inds [L] int64 frame index in the clip, -1 where the track has no row;
    quality [L, 2] float64: detection score and tracked flag (1: matched this frame, 0: lost).
    """

    czyxs: torch.Tensor
    batch_inds: torch.Tensor
    quality: torch.Tensor

    @property
    def present(self) -> torch.Tensor:
        """[L] bool: the tracker reported this track in that frame."""
        return self.batch_inds >= 0


class ClipTracks(Mapping[int, TrackInClip]):
    """Tracks of one clip, by track id in increasing order."""

    def __init__(self, tracks: dict[int, TrackInClip], clip_length: int) -> None:
        self._tracks = dict(sorted(tracks.items()))
        self.clip_length = clip_length

    def __getitem__(self, track_id: int) -> TrackInClip:
        return self._tracks[track_id]

    def __iter__(self) -> Iterator[int]:
        return iter(self._tracks)

    def __len__(self) -> int:
        return len(self._tracks)

    def __repr__(self) -> str:
        return f"ClipTracks(track_ids={list(self._tracks)}, clip_length={self.clip_length})"


def track_clip(motion_offsets: torch.Tensor, batch_ids: torch.Tensor, normed_cams: torch.Tensor,
               czyxs: torch.Tensor, scores: torch.Tensor, clip_length: int, settings: TrackingSettings,
               tracker: Tracker3D | None = None, detection_flag: torch.Tensor | None = None,
               ) -> tuple[ClipTracks | None, Tracker3D]:
    """Run the tracker over one clip's detections (official perform_tracking for one sequence).

    motion_offsets, normed_cams: [D, 3]; batch_ids: [D] frame in the clip; czyxs: [D, 3]; scores: [D].
    Returns (tracks of the clip, or None when nothing is tracked; the tracker to pass to the next clip).
    With official quirks, frames without surviving detections are skipped (the tracker does not age);
    otherwise the tracker steps through every frame so `time2forget` counts video frames.
    detection_flag [n] (from `ensure_detection`): without official quirks, a clip whose flags are all
    False carries only the placeholder detection, which is then not tracked (no phantom person).
    """
    if tracker is None:
        tracker = Tracker3D(settings)
    if detection_flag is not None and not settings.official_quirks and not bool(detection_flag.any()):
        keep_none = torch.zeros(len(batch_ids), dtype=torch.bool, device=batch_ids.device)
        motion_offsets, batch_ids, normed_cams = motion_offsets[keep_none], batch_ids[keep_none], normed_cams[keep_none]
        czyxs, scores = czyxs[keep_none], scores.reshape(-1)[keep_none]
    batch_ids = batch_ids.detach().cpu()
    cams = normed_cams.detach().cpu()
    det_scores = scores.detach().cpu().reshape(-1)
    det_czyxs = czyxs.detach().cpu()
    offsets_all = motion_offsets.detach().cpu()
    frame_of_det = batch_ids % clip_length
    if settings.official_quirks:
        frames = torch.sort(torch.unique(frame_of_det)).values.tolist()
    else:
        frames = list(range(clip_length))

    rows_by_frame: dict[int, np.ndarray] = {}
    for frame in frames:
        det_inds = torch.where(frame_of_det == frame)[0]
        det_inds = det_inds[cams[det_inds][:, 0] > settings.large_object_thresh]
        if len(det_inds) > 0:
            det_inds = det_inds[suppress_duplicate_detections(cams[det_inds], det_scores[det_inds],
                                                              settings.suppress_duplicate_thresh)]
        if len(det_inds) == 0 and settings.official_quirks:
            continue
        frame_cams = cams[det_inds]
        # official: `.float()`; the float64 reference kept float64 here. At least float32, else the
        # input dtype: matches the official for float16/float32 networks and the float64 reference.
        offsets = offsets_all[det_inds].to(torch.promote_types(offsets_all.dtype, torch.float32), copy=True)
        offsets[torch.norm(offsets, p=2, dim=-1) > settings.motion_offset3D_norm_limit] = 0
        trans_now = cams_to_translations(frame_cams, settings.depth_scale)
        trans_before = cams_to_translations(frame_cams - offsets, settings.depth_scale)
        rows = tracker.update(trans_now.numpy(), det_scores[det_inds].numpy(), trans_before.numpy(),
                              det_czyxs[det_inds].numpy())
        if len(rows) > 0:
            rows_by_frame[frame] = rows
    if not rows_by_frame:
        return None, tracker
    tracks = _collect_tracks(rows_by_frame, clip_length)
    return (ClipTracks(tracks, clip_length) if tracks else None), tracker


def _collect_tracks(rows_by_frame: dict[int, np.ndarray], clip_length: int) -> dict[int, TrackInClip]:
    """Per-frame tracker rows -> per-track arrays; drop tracks seen in too few frames (official parse_tracking_ids)."""
    all_rows = np.concatenate(list(rows_by_frame.values()), axis=0)
    track_ids = sorted(int(t) for t in np.unique(all_rows[:, 3].astype(np.int64)))
    czyxs = {t: np.zeros((clip_length, 3), np.int64) for t in track_ids}
    batch_inds = {t: np.full(clip_length, -1, np.int64) for t in track_ids}
    quality = {t: np.zeros((clip_length, 2), np.float64) for t in track_ids}
    seen = {t: 0 for t in track_ids}
    frames = sorted(rows_by_frame)
    for frame in frames:
        rows = rows_by_frame[frame]
        for row in rows:
            t = int(row[3])
            czyxs[t][frame] = row[6:9].astype(np.int64)
            quality[t][frame] = row[4:6]
            batch_inds[t][frame] = frame
            seen[t] += 1
    needed = min(len(frames), MIN_FRAMES_PER_CLIP)
    return {t: TrackInClip(torch.from_numpy(czyxs[t]), torch.from_numpy(batch_inds[t]), torch.from_numpy(quality[t]))
            for t in track_ids if seen[t] >= needed}
