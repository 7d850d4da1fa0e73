"""core.tracking: assignment, 3D-centre parsing, the official tracker, the memory unit, product modes.

Bit-exactness against the official code on the reference fixture is tested in
tests/test_verify_tracking.py; here each piece is checked on small hand-made inputs whose answers
are known, plus the product behaviours (occlusions, late entrants, subject selection).
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from core.smoothing import LowPassFilter, OneEuroFilter
from core.tracking import (ClipTracks, Tracker3D, TrackingSettings, TrackingSettingsError, TrackInClip,
                           TrajectoryMemory, cams_to_translations, ensure_detection, gather_trajectory_features,
                           infill_low_quality_cams, linear_assignment_with_limit, parse_center_maps_3d,
                           parse_subjects, solve_square_assignment, suppress_duplicate_detections, track_clip)
from core.tracking.settings import PRODUCT_NEW_SUBJECT_DET_THRESH

# ------------------------------------------------------------------------------------------------
# linear assignment
# ------------------------------------------------------------------------------------------------


def _brute_force_best(cost: np.ndarray, limit: float) -> tuple[float, set[tuple[int, int]]]:
    """max over partial matchings of sum(limit - cost) (lapjv's extended objective) and one best matching."""
    n, m = cost.shape
    best, best_pairs = 0.0, set()
    for k in range(1, min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                gain = sum(limit - cost[r, c] for r, c in zip(rows, cols))
                if gain > best:
                    best, best_pairs = gain, set(zip(rows, cols))
    return best, best_pairs


def _check_partition(matches: np.ndarray, unmatched_rows: np.ndarray, unmatched_cols: np.ndarray, n: int, m: int):
    assert sorted(matches[:, 0].tolist() + unmatched_rows.tolist()) == list(range(n))
    assert sorted(matches[:, 1].tolist() + unmatched_cols.tolist()) == list(range(m))


def test_square_assignment_is_optimal_against_brute_force():
    rng = np.random.default_rng(0)
    for trial in range(150):
        n = int(rng.integers(1, 7))
        cost = rng.integers(0, 4, (n, n)).astype(float) if trial % 2 else rng.random((n, n))  # ties / no ties
        col_for_row = solve_square_assignment(cost)
        assert sorted(col_for_row.tolist()) == list(range(n))
        best = min(cost[np.arange(n), list(p)].sum() for p in itertools.permutations(range(n)))
        assert cost[np.arange(n), col_for_row].sum() == pytest.approx(best, abs=1e-12)


def test_limited_assignment_matches_brute_force_on_rectangular_and_tied_matrices():
    rng = np.random.default_rng(1)
    limit = 1.2
    for trial in range(250):
        n, m = int(rng.integers(0, 5)), int(rng.integers(0, 5))
        if trial % 3 == 0:  # ties, including pairs costing exactly the limit
            cost = rng.choice([0.3, 0.6, 1.2, 1.8], (n, m))
        else:
            cost = rng.random((n, m)) * 2 * limit
        matches, unmatched_rows, unmatched_cols = linear_assignment_with_limit(cost, limit)
        _check_partition(matches, unmatched_rows, unmatched_cols, n, m)
        gain = sum(limit - cost[r, c] for r, c in matches)
        best_gain, best_pairs = _brute_force_best(cost, limit)
        assert gain == pytest.approx(best_gain, abs=1e-9)
        assert all(cost[r, c] < limit for r, c in matches)  # a pair at the limit gains nothing: left unmatched
        if trial % 3:  # continuous costs: the optimum is unique, so the matching itself is determined
            assert {(int(r), int(c)) for r, c in matches} == best_pairs


def test_limited_assignment_known_answers():
    # the greedy choice (0,0) would be wrong: the optimum pairs row 0 with column 1
    cost = np.array([[0.1, 0.2], [0.3, 5.0]])
    matches, ur, uc = linear_assignment_with_limit(cost, 1.2)
    assert matches.tolist() == [[0, 1], [1, 0]]
    # above the limit nothing is matched; below, the cheapest pair wins
    matches, ur, uc = linear_assignment_with_limit(np.array([[1.3, 0.7]]), 1.2)
    assert matches.tolist() == [[0, 1]] and ur.tolist() == [] and uc.tolist() == [0]
    matches, ur, uc = linear_assignment_with_limit(np.zeros((0, 3)), 1.2)
    assert matches.shape == (0, 2) and ur.tolist() == [] and uc.tolist() == [0, 1, 2]
    # without a limit (plain extend_cost) every row that can be matched is
    matches, _, _ = linear_assignment_with_limit(np.array([[100.0, 200.0]]), math.inf)
    assert matches.tolist() == [[0, 0]]


# ------------------------------------------------------------------------------------------------
# 3D centre parsing
# ------------------------------------------------------------------------------------------------


def _blob_map(frames: int, peaks: list[tuple[int, int, int, int, float]]) -> torch.Tensor:
    """[frames, 64, 128, 128] float64 with separable Gaussian blobs (sigma 1.5) peaking at `score`."""
    maps = torch.zeros(frames, 64, 128, 128, dtype=torch.float64)
    offsets = torch.arange(-4, 5, dtype=torch.float64)
    g = torch.exp(-offsets ** 2 / (2 * 1.5 ** 2))
    kernel = g[:, None, None] * g[None, :, None] * g[None, None, :]
    for f, z, y, x, score in peaks:
        patch = maps[f, z - 4:z + 5, y - 4:y + 5, x - 4:x + 5]
        torch.maximum(patch, kernel * score, out=patch)
    return maps


def test_parse_finds_peaks_in_score_order_with_strict_threshold():
    maps = _blob_map(3, [(0, 20, 64, 30, 0.9), (0, 40, 70, 100, 0.6), (0, 30, 30, 30, 0.05),
                         (2, 10, 100, 20, 0.75), (2, 50, 20, 110, 0.95)])
    batch_ids, czyxs, scores = parse_center_maps_3d(maps, 0.05)
    assert batch_ids.tolist() == [0, 0, 2, 2]          # frame 1 empty; 0.05 is not > 0.05
    assert czyxs.tolist() == [[20, 64, 30], [40, 70, 100], [50, 20, 110], [10, 100, 20]]
    assert scores.tolist() == pytest.approx([0.9, 0.6, 0.95, 0.75], abs=1e-15)
    assert scores.dtype == torch.float64 and czyxs.dtype == torch.int64


def test_parse_suppresses_weaker_peaks_within_the_5x5x5_window():
    # two peaks 2 voxels apart: only the stronger survives; 3 voxels apart both survive
    maps = torch.zeros(1, 64, 128, 128, dtype=torch.float64)
    maps[0, 10, 50, 50] = 0.8
    maps[0, 10, 50, 52] = 0.7     # inside the window of the first
    maps[0, 10, 80, 80] = 0.6
    maps[0, 13, 80, 80] = 0.5     # 3 bins deeper: outside
    batch_ids, czyxs, scores = parse_center_maps_3d(maps, 0.05)
    assert czyxs.tolist() == [[10, 50, 50], [10, 80, 80], [13, 80, 80]]


def test_ensure_detection_flags_frames_and_falls_back_to_a_placeholder():
    maps = _blob_map(4, [(1, 20, 64, 30, 0.9), (3, 20, 64, 30, 0.9)])
    b, c, s, flags = ensure_detection(maps, *parse_center_maps_3d(maps))
    assert flags.tolist() == [False, True, False, True] and b.tolist() == [1, 3]
    empty = torch.zeros(2, 64, 128, 128, dtype=torch.float64)
    b, c, s, flags = ensure_detection(empty, *parse_center_maps_3d(empty))
    assert b.tolist() == [0] and c.tolist() == [[32, 64, 64]] and s.tolist() == [1.0]
    assert flags.tolist() == [False, False]


# ------------------------------------------------------------------------------------------------
# settings
# ------------------------------------------------------------------------------------------------


def test_official_settings_are_the_official_defaults():
    s = TrackingSettings.official()
    expected = dict(tracker_det_thresh=0.18, tracker_match_thresh=1.2, first_frame_det_thresh=0.3,
                    accept_new_dets=False, new_subject_det_thresh=0.8, time2forget=0, large_object_thresh=0.13,
                    suppress_duplicate_thresh=0.05, motion_offset3D_norm_limit=0.06, feature_update_thresh=0.05,
                    feature_inherent=True, occlusion_cam_inherent_or_interp=False, subject_num=1,
                    axis_times=(1.2, 2.5, 25.0), smooth_pose_shape=True, pose_smooth_coef=1.0, smooth_pos_cam=False,
                    center_thresh=0.05, fov=50.0, official_quirks=True)
    assert {k: getattr(s, k) for k in expected} == expected
    assert s == TrackingSettings()
    assert s.depth_scale == float(1 / np.tan(np.radians(25.0)))
    assert s.track_buffer_frames == 0
    assert TrackingSettings.official(subject_num=3).subject_num == 3


def test_product_settings_forget_after_two_seconds_of_frames():
    s30 = TrackingSettings.product_default(30)
    assert s30.time2forget == 60 and s30.track_buffer_frames == 60 and not s30.official_quirks
    assert TrackingSettings.product_default(25).track_buffer_frames == 50
    assert TrackingSettings.product_default(59.94).track_buffer_frames == 120
    assert s30.subjects == "all" and s30.new_subject_det_thresh == PRODUCT_NEW_SUBJECT_DET_THRESH
    assert TrackingSettings.product_default(30, subjects=2).subjects == 2
    assert s30.with_subjects(3).subjects == 3 and s30.with_subjects(3).with_subjects("all").subjects == "all"
    with pytest.raises(TrackingSettingsError, match="fps"):
        TrackingSettings.product_default(0)
    with pytest.raises(TrackingSettingsError, match="subjects"):
        TrackingSettings.product_default(30, subjects=0)


def test_settings_read_official_seq_cfgs_and_refuse_unknown_keys(reference_dir):
    with np.load(reference_dir / "expected_tracking.npz") as data:
        cfgs = json.loads(str(data["seq_cfgs_json"]))
    s = TrackingSettings.from_seq_cfgs(cfgs, subject_num=3)
    assert s == TrackingSettings.official(subject_num=3)
    assert TrackingSettings.from_seq_cfgs(s.to_seq_cfgs()) == s
    with pytest.raises(TrackingSettingsError, match="tracker_det_thres"):
        TrackingSettings.from_seq_cfgs({"tracker_det_thres": 0.2})
    with pytest.raises(TrackingSettingsError, match="time2forget"):
        TrackingSettings.official(time2forget=-1)
    assert parse_subjects("all") == "all" and parse_subjects(" 3 ") == 3
    with pytest.raises(TrackingSettingsError):
        parse_subjects("three")


# ------------------------------------------------------------------------------------------------
# tracker internals
# ------------------------------------------------------------------------------------------------


def test_cams_to_translations_is_the_official_denormalisation():
    cams = torch.tensor([[0.5, 0.1, -0.2]], dtype=torch.float64)
    f = 1 / np.tan(np.radians(25.0))
    trans = cams_to_translations(cams, TrackingSettings().depth_scale)[0]
    depth = f / (0.5 + 1e-6)
    assert trans.tolist() == pytest.approx([-0.2 * depth / f, 0.1 * depth / f, depth], rel=1e-15)


def test_duplicate_suppression_keeps_the_best_score():
    cams = torch.tensor([[0.5, 0.0, 0.0], [0.5, 0.01, 0.0], [0.5, 0.5, 0.5], [0.52, 0.02, 0.01]], dtype=torch.float64)
    scores = torch.tensor([0.6, 0.9, 0.4, 0.3], dtype=torch.float64)
    assert suppress_duplicate_detections(cams, scores, 0.05).tolist() == [False, True, True, False]


def _det(x: float, y: float, depth: float) -> np.ndarray:
    return np.array([[x, y, depth]], np.float64)


def test_tracker_rows_encode_inverse_depth_in_float32():
    tracker = Tracker3D(TrackingSettings.official())
    rows = tracker.update(_det(0.3, -0.1, 4.0), np.array([0.9]), _det(0.25, -0.1, 4.1), np.array([[20, 60, 70]]))
    assert rows.shape == (1, 9)
    assert rows[0].tolist() == [float(np.float32(0.3)), float(np.float32(-0.1)), float(np.float32(1 / 5.0)),
                                1.0, 0.9, 1.0, 20.0, 60.0, 70.0]  # a new track starts at its current position
    rows = tracker.update(_det(0.35, -0.1, 4.0), np.array([0.8]), _det(0.31, -0.1, 4.0), np.array([[20, 60, 72]]))
    assert rows[0, :3].tolist() == [float(np.float32(v)) for v in (0.31, -0.1, 0.2)]  # previous-frame position
    assert rows[0, 3:].tolist() == [1.0, 0.8, 1.0, 20.0, 60.0, 72.0]


def test_first_frame_needs_the_first_frame_threshold():
    tracker = Tracker3D(TrackingSettings.official())
    assert len(tracker.update(_det(0, 0, 4), np.array([0.25]), _det(0, 0, 4), np.array([[1, 2, 3]]))) == 0
    tracker = Tracker3D(TrackingSettings.official())
    assert len(tracker.update(_det(0, 0, 4), np.array([0.31]), _det(0, 0, 4), np.array([[1, 2, 3]]))) == 1


def _empty_update(tracker: Tracker3D) -> np.ndarray:
    return tracker.update(np.zeros((0, 3)), np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3), np.int64))


def test_lost_tracks_are_forgotten_after_time2forget_updates():
    for forget, expected_rows in [(0, [0]), (2, [1, 1, 0])]:
        tracker = Tracker3D(TrackingSettings.official(time2forget=forget))
        tracker.update(_det(0, 0, 4), np.array([0.9]), _det(0, 0, 4), np.array([[1, 2, 3]]))
        rows = [_empty_update(tracker) for _ in expected_rows]
        assert [len(r) for r in rows] == expected_rows
        if forget:
            assert rows[0][0, 5] == 0.0  # reported, but not tracked


def test_refound_track_keeps_stale_state_only_with_official_quirks():
    official = Tracker3D(TrackingSettings.official(time2forget=5))
    product = Tracker3D(TrackingSettings.official(time2forget=5, official_quirks=False))
    for tracker in (official, product):
        tracker.update(_det(0.0, 0, 4), np.array([0.9]), _det(0.0, 0, 4), np.array([[20, 64, 64]]))
        _empty_update(tracker)
    rows_official = official.update(_det(0.2, 0, 4), np.array([0.9]), _det(0.1, 0, 4), np.array([[20, 64, 70]]))
    rows_product = product.update(_det(0.2, 0, 4), np.array([0.9]), _det(0.1, 0, 4), np.array([[20, 64, 70]]))
    assert rows_official[0, 3] == rows_product[0, 3] == 1 and rows_official[0, 5] == rows_product[0, 5] == 1
    assert rows_official[0, 0] == 0.0 and rows_official[0, 6:].tolist() == [20, 64, 64]   # stale
    assert rows_product[0, 0] == float(np.float32(0.1)) and rows_product[0, 6:].tolist() == [20, 64, 70]


# ------------------------------------------------------------------------------------------------
# synthetic scenes for track_clip
# ------------------------------------------------------------------------------------------------


@dataclass
class Person:
    """A person on the 64x128x128 grid: voxel (z, y, x) moving linearly; visible in `frames`."""

    z: float
    y: float
    x: float
    score: float
    frames: range
    hidden: set[int] = field(default_factory=set)
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def voxel(self, t: int) -> np.ndarray:
        return np.round([self.z + self.velocity[0] * t, self.y + self.velocity[1] * t,
                         self.x + self.velocity[2] * t]).astype(np.int64)

    def visible(self, t: int) -> bool:
        return t in self.frames and t not in self.hidden


def _cam(voxel: np.ndarray) -> np.ndarray:
    """The fixture's synthetic camera: scale shrinks with depth bin, offsets from the pixel."""
    return np.array([0.9 - 0.012 * voxel[0], voxel[1] / 64 - 1, voxel[2] / 64 - 1])


def run_scene(people: list[Person], n_frames: int, settings: TrackingSettings) -> list[ClipTracks | None]:
    """Detections of `people` in clips of 8 through track_clip, the tracker carried across clips."""
    tracker = None
    clips = []
    for start in range(0, n_frames, 8):
        n = min(8, n_frames - start)
        batch, czyxs, scores, cams, offsets = [], [], [], [], []
        for i in range(n):
            t = start + i
            for p in people:
                if not p.visible(t):
                    continue
                batch.append(i)
                czyxs.append(p.voxel(t))
                scores.append(p.score)
                cams.append(_cam(p.voxel(t)))
                moved = i > 0 and p.visible(t - 1)
                offsets.append(_cam(p.voxel(t)) - _cam(p.voxel(t - 1)) if moved else np.zeros(3))
        tracks, tracker = track_clip(torch.tensor(np.array(offsets)).reshape(-1, 3), torch.tensor(batch, dtype=torch.long),
                                     torch.tensor(np.array(cams)).reshape(-1, 3),
                                     torch.tensor(np.array(czyxs), dtype=torch.long).reshape(-1, 3),
                                     torch.tensor(scores, dtype=torch.float64), n, settings, tracker)
        clips.append(tracks)
    return clips


def ids_at(clips: list[ClipTracks | None], person: Person, frames: range) -> set[int]:
    """Track ids whose voxel equals the person's (tracked rows only) in the given video frames."""
    found = set()
    for t in frames:
        tracks = clips[t // 8]
        if tracks is None:
            continue
        for track_id, track in tracks.items():
            i = t % 8
            if track.batch_inds[i] >= 0 and track.quality[i, 1] == 1 and \
                    track.czyxs[i].tolist() == person.voxel(t).tolist():
                found.add(track_id)
    return found


def all_ids(clips: list[ClipTracks | None]) -> set[int]:
    return {t for c in clips if c is not None for t in c}


def test_product_keeps_identity_through_a_40_frame_occlusion_official_does_not():
    # the issue: "a person occluded for two frames comes back with a new id and is dropped"
    a = Person(20, 64, 40, 0.9, range(80), hidden=set(range(10, 50)), velocity=(0, 0, 0.1))
    b = Person(40, 64, 100, 0.8, range(80))
    product = run_scene([a, b], 80, TrackingSettings.product_default(30, subjects=2))
    official = run_scene([a, b], 80, TrackingSettings.official(subject_num=2))

    assert ids_at(product, a, range(0, 10)) == {1} and ids_at(product, a, range(50, 80)) == {1}
    assert ids_at(product, b, range(80)) == {2} and all_ids(product) == {1, 2}
    hidden_track = product[2][1]            # frames 16-23: still remembered, reported as not tracked
    assert hidden_track.quality[:, 1].tolist() == [0.0] * 8

    assert ids_at(official, a, range(0, 10)) == {1}
    assert ids_at(official, a, range(56, 80)) == {3}   # new identity after the occlusion
    assert ids_at(official, b, range(80)) == {2}


def test_product_forgets_after_two_seconds_even_without_other_detections():
    a = Person(20, 64, 40, 0.9, range(120), hidden=set(range(10, 80)))
    product = run_scene([a], 120, TrackingSettings.product_default(30, subjects=1))
    assert ids_at(product, a, range(0, 10)) == {1} and ids_at(product, a, range(88, 120)) == {2}
    official = run_scene([a], 120, TrackingSettings.official(time2forget=60))
    # official: no detections -> no tracker update -> the lost track never ages
    assert ids_at(official, a, range(88, 120)) == {1}


def test_subjects_all_picks_up_a_person_entering_at_frame_20():
    a = Person(20, 64, 40, 0.9, range(40))
    c = Person(30, 50, 100, 0.7, range(20, 40))
    product_all = run_scene([a, c], 40, TrackingSettings.product_default(30, subjects="all"))
    assert ids_at(product_all, a, range(40)) == {1}
    assert ids_at(product_all, c, range(24, 40)) == {2}
    assert ids_at(run_scene([a, c], 40, TrackingSettings.product_default(30, subjects=1)), c, range(40)) == set()
    assert ids_at(run_scene([a, c], 40, TrackingSettings.official()), c, range(40)) == set()
    # official accept_new_dets ignores new_subject_det_thresh (hard-coded 0.8): 0.7 never qualifies
    quirky = TrackingSettings.official(accept_new_dets=True, new_subject_det_thresh=0.5)
    assert ids_at(run_scene([a, c], 40, quirky), c, range(40)) == set()


def test_subject_num_selection_picks_the_closest_people():
    people = [Person(z, 30 + 20 * i, 30 + 20 * i, 0.9, range(16)) for i, z in enumerate((30, 10, 50, 20))]
    for settings in (TrackingSettings.official(subject_num=2), TrackingSettings.product_default(30, subjects=2)):
        clips = run_scene(people, 16, settings)
        assert ids_at(clips, people[1], range(16)) == {1}   # depth bin 10: closest, activated first
        assert ids_at(clips, people[3], range(16)) == {2}
        assert all_ids(clips) == {1, 2}


def test_official_subject_selection_can_overshoot_product_fills_free_slots():
    # frame 0: only one person scores above the first-frame threshold; later three more do
    near = Person(10, 64, 64, 0.9, range(16))
    late = [Person(20 + 5 * i, 20 + 30 * i, 30, 0.9, range(1, 16)) for i in range(3)]
    official = run_scene([near] + late, 16, TrackingSettings.official(subject_num=3))
    product = run_scene([near] + late, 16, TrackingSettings.official(subject_num=3, official_quirks=False))
    assert all_ids(official) == {1, 2, 3, 4}
    assert all_ids(product) == {1, 2, 3}


def test_track_clip_filters_small_objects_and_large_motion_offsets():
    settings = TrackingSettings.official()
    tracker = Tracker3D(settings, record_calls=True)
    cams = torch.tensor([[0.6, 0.0, 0.0], [0.12, 0.5, 0.5], [0.6, 0.0, 0.01]], dtype=torch.float64)
    offsets = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.1, 0.0]], dtype=torch.float64)
    czyxs = torch.tensor([[25, 64, 64], [60, 96, 96], [25, 64, 65]])
    scores = torch.tensor([0.9, 0.95, 0.8], dtype=torch.float64)
    batch = torch.tensor([0, 0, 1])
    track_clip(offsets, batch, cams, czyxs, scores, 2, settings, tracker)
    first, second = tracker.calls
    assert first.czyxs.tolist() == [[25, 64, 64]]           # scale 0.12 <= 0.13 dropped
    assert np.array_equal(second.trans3d, second.last_trans3d)  # |offset| 0.1 > 0.06 zeroed


def test_placeholder_detection_is_not_tracked_in_product_mode():
    empty = torch.zeros(8, 64, 128, 128, dtype=torch.float64)
    b, c, s, flags = ensure_detection(empty, *parse_center_maps_3d(empty))
    cams = torch.tensor([[0.6, 0.0, 0.0]], dtype=torch.float64)
    zeros = torch.zeros(1, 3, dtype=torch.float64)
    official, _ = track_clip(zeros, b, cams, c, s, 8, TrackingSettings.official(), detection_flag=flags)
    product, _ = track_clip(zeros, b, cams, c, s, 8, TrackingSettings.product_default(30), detection_flag=flags)
    assert official is not None and list(official) == [1]   # official quirk: a phantom track
    assert product is None


# ------------------------------------------------------------------------------------------------
# memory unit and infilling
# ------------------------------------------------------------------------------------------------


def _mesh_maps(start: int, n: int) -> torch.Tensor:
    """[n, 3, 128, 128]: (frame index, y, x) at every pixel, so a feature tells where it came from."""
    f = torch.arange(start, start + n, dtype=torch.float64)[:, None, None].expand(n, 128, 128)
    y = torch.arange(128, dtype=torch.float64)[None, :, None].expand(n, 128, 128)
    x = torch.arange(128, dtype=torch.float64)[None, None, :].expand(n, 128, 128)
    return torch.stack([f, y, x], 1)


def _track(present: list[bool], conf: list[float], tracked: list[float], x0: int = 10) -> TrackInClip:
    n = len(present)
    czyxs = torch.tensor([[5, 20, x0 + i] if p else [0, 0, 0] for i, p in enumerate(present)])
    batch = torch.tensor([i if p else -1 for i, p in enumerate(present)])
    quality = torch.tensor([[c, t] if p else [0.0, 0.0] for p, c, t in zip(present, conf, tracked)], dtype=torch.float64)
    return TrackInClip(czyxs, batch, quality)


def test_memory_refreshes_good_frames_and_inherits_weak_or_untracked_ones():
    settings = TrackingSettings.official()
    memory = TrajectoryMemory()
    track = _track([True] * 4, [0.9, 0.04, 0.9, 0.9], [1, 1, 0, 1])
    batch = gather_trajectory_features(ClipTracks({7: track}, 4), _mesh_maps(0, 4), memory, settings)
    assert batch.track_ids.tolist() == [7]
    assert batch.inherent_flags.tolist() == [[False, True, True, False]]
    assert batch.tracked.tolist() == [[True, True, False, True]]
    assert batch.det_scores.tolist() == [[0.9, 0.04, 0.9, 0.9]]
    assert batch.features[0, :, 0].tolist() == [0, 0, 0, 3]           # frames 1-2 inherit frame 0
    assert batch.features[0, :, 2].tolist() == [10, 10, 10, 13]
    assert memory[7].feature.tolist() == [3, 20, 13]
    # next clip starts weak: it inherits the feature remembered from the previous clip
    track = _track([True, True], [0.01, 0.9], [1, 1], x0=40)
    batch = gather_trajectory_features(ClipTracks({7: track}, 2), _mesh_maps(4, 2), memory, settings)
    assert batch.features[0].tolist() == [[3, 20, 13], [5, 20, 41]]


def test_frames_without_a_row_are_masked_and_flagged():
    settings = TrackingSettings.official()
    track = _track([True, False, True], [0.9, 0, 0.9], [1, 0, 1])
    batch = gather_trajectory_features(ClipTracks({1: track}, 3), _mesh_maps(0, 3), TrajectoryMemory(), settings)
    assert batch.valid_masks.tolist() == [[True, False, True]]
    assert batch.batch_inds.tolist() == [[0, -1, 2]]
    assert batch.inherent_flags.tolist() == [[False, True, False]]
    assert batch.features[0, 1].tolist() == [2, 0, 0]   # official quirk: last frame, pixel (0, 0)


def test_cam_infilling_interpolates_and_uses_memory_at_the_clip_start():
    settings = TrackingSettings.official()
    memory = TrajectoryMemory()
    cams = torch.tensor([[[0.5, 0.0, 0.0], [9, 9, 9], [9, 9, 9], [0.8, 0.3, -0.3], [9, 9, 9]]], dtype=torch.float64)
    flags = torch.tensor([[False, True, True, False, True]])
    out = infill_low_quality_cams(cams, torch.tensor([4]), memory, flags, settings)
    assert out[0, 1].tolist() == pytest.approx([0.6, 0.1, -0.1], abs=1e-15)
    assert out[0, 2].tolist() == pytest.approx([0.7, 0.2, -0.2], abs=1e-15)
    assert out[0, 4].tolist() == [0.8, 0.3, -0.3]                    # after the last good frame: hold
    assert cams[0, 1].tolist() == [9, 9, 9]                          # input untouched
    # next clip: leading inherited frames take the remembered last good cam
    cams2 = torch.tensor([[[9, 9, 9], [0.4, 0.0, 0.0]]], dtype=torch.float64)
    out2 = infill_low_quality_cams(cams2, torch.tensor([4]), memory, torch.tensor([[True, False]]), settings)
    assert out2[0, 0].tolist() == [0.8, 0.3, -0.3]


def test_cam_infilling_direct_inherit_copies_the_last_good_cam():
    settings = TrackingSettings.official(occlusion_cam_inherent_or_interp=True)
    cams = torch.tensor([[[0.5, 0.0, 0.0], [9, 9, 9], [0.8, 0.3, -0.3], [9, 9, 9]]], dtype=torch.float64)
    flags = torch.tensor([[False, True, False, True]])
    out = infill_low_quality_cams(cams, torch.tensor([1]), TrajectoryMemory(), flags, settings)
    assert out[0].tolist() == [[0.5, 0, 0], [0.5, 0, 0], [0.8, 0.3, -0.3], [0.8, 0.3, -0.3]]


# ------------------------------------------------------------------------------------------------
# One-Euro filter
# ------------------------------------------------------------------------------------------------


def _alpha(cutoff: float, freq: float = 30.0) -> float:
    return 1.0 / (1.0 + (1.0 / (2 * math.pi * cutoff)) / (1.0 / freq))


def test_one_euro_filter_follows_the_formula():
    f = OneEuroFilter(1.0, 0.7)
    assert f.process(1.0) == 1.0                       # the first sample passes through
    out = f.process(2.0)
    dx = (2.0 - 1.0) * 30
    edx = _alpha(1.0) * dx + (1 - _alpha(1.0)) * 0.0
    a = _alpha(1.0 + 0.7 * abs(edx))
    assert out == pytest.approx(a * 2.0 + (1 - a) * 1.0, rel=1e-15)
    assert f.last_value == 2.0


def test_one_euro_feedback_uses_the_filtered_value_and_works_on_tensors_and_arrays():
    plain, fed = OneEuroFilter(1.0, 0.7), OneEuroFilter(1.0, 0.7, feed_back_output=True)
    values = [0.0, 1.0, 1.5, 1.2]
    plain_out = [plain.process(v) for v in values]
    fed_out = [fed.process(v) for v in values]
    assert plain_out[:2] == fed_out[:2] and plain_out[2] != fed_out[2]
    assert fed.last_value == fed_out[-1]
    tensor_filter = OneEuroFilter(1.0, 0.7, feed_back_output=True)
    array_filter = OneEuroFilter(1.0, 0.7, feed_back_output=True)
    for v in values:
        t = tensor_filter.process(torch.full((2,), v, dtype=torch.float64))
        a = array_filter.process(np.full(2, v))
    assert t.tolist() == a.tolist() == [fed_out[-1]] * 2
    lp = LowPassFilter()
    assert lp.process(4.0, 0.5) == 4.0 and lp.process(2.0, 0.5) == 3.0


def test_separable_peak_window_equals_the_cubic_max_pool():
    """The three 1D max-pools must keep exactly the voxels MaxPool3d(5, 1, 2) keeps, ties included."""
    import torch.nn.functional as F
    from core.tracking.centermap import _keep_local_maxima

    gen = torch.Generator().manual_seed(3)
    maps = torch.randint(0, 6, (2, 16, 20, 24), generator=gen).double() / 5.0   # many exact ties
    cubic = F.max_pool3d(maps.unsqueeze(1), 5, 1, 2).squeeze(1)
    expected = maps * torch.eq(cubic, maps).double()
    assert torch.equal(_keep_local_maxima(maps), expected)
