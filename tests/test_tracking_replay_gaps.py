"""Replay of a 4-person scene with gaps, checked against what the official functions do.

Expected values come from reading the official `perform_tracking` / `Tracker.update` (time2forget 0:
an unmatched track is removed in the same frame; with fewer than `subject_num` tracks, unmatched
detections above `first_frame_det_thresh` start new tracks, closest first), `parse_tracking_ids`
(a track keeps all L frames of the clip; frames without a tracker row get batch index -1 and voxel
(0, 0, 0); tracks with fewer than min(#frames, 6) rows are dropped),
`prepare_complete_trajectory_features_withmemory` (rows without a tracker row: valid mask False,
inherent flag True, feature sampled at [-1, :, 0, 0], memory untouched) and
`infilling_cams_of_low_quality_dets` (inherited frames: memory before the clip's first good frame,
the last good cam after the last one, linear in between; the memory's cams are created from the first
good frame of the track's first clip).

Scene (16 frames = clips 0-7 and 8-15), voxels (z, y, x), scores:
  A  (20, 40, 30) 0.90, every frame
  B  (30, 80, 60) 0.80, hidden in frames 6-9 (across the clip boundary)
  C  (45, 40, 100) 0.70, every frame
  D  (25, 100, 100) 0.75, enters late at frame 9
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.verify.tracking import RunSpec, load_fixture, replay_run, settings_for_run, synthetic_cams

FRAMES = 16
PEOPLE = {  # name: (voxel, score, visible frames)
    "A": ((20, 40, 30), 0.90, range(0, 16)),
    "B": ((30, 80, 60), 0.80, [f for f in range(16) if not 6 <= f <= 9]),
    "C": ((45, 40, 100), 0.70, range(0, 16)),
    "D": ((25, 100, 100), 0.75, range(9, 16)),
}


def _blob_rows(frame: int, voxel: tuple[int, int, int], score: float) -> tuple[np.ndarray, np.ndarray]:
    """A truncated Gaussian blob (sigma 1.5 voxels, radius 2) peaking at `score` on `voxel`."""
    offsets = np.array([(dz, dy, dx) for dz in range(-2, 3) for dy in range(-2, 3) for dx in range(-2, 3)])
    values = score * np.exp(-(offsets ** 2).sum(1) / (2 * 1.5 ** 2))
    idx = np.concatenate([np.full((len(offsets), 1), frame), np.array(voxel)[None] + offsets], axis=1)
    return idx.astype(np.int16), values


@pytest.fixture(scope="module")
def replay(tmp_path_factory) -> dict[str, np.ndarray]:
    idx, val = [], []
    for voxel, score, frames in PEOPLE.values():
        for frame in frames:
            i, v = _blob_rows(frame, voxel, score)
            idx.append(i)
            val.append(v)
    arrays = {"center_sparse_idx": np.concatenate(idx), "center_sparse_val": np.concatenate(val),
              "motion_sparse_idx": np.zeros((0, 4), np.int16), "motion_sparse_val": np.zeros((0, 3)),
              "subj4_clip0_clip_start": np.int64(0), "subj4_clip1_clip_start": np.int64(8)}
    for name, (_, _, frames) in PEOPLE.items():
        arrays[f"gt_{name}_vis"] = np.array([f in frames for f in range(FRAMES)])
    path = tmp_path_factory.mktemp("gaps") / "scene.npz"
    np.savez(path, **arrays)
    fixture = load_fixture(path)
    assert fixture.num_frames == FRAMES
    return replay_run(fixture, settings_for_run(RunSpec("subj4_", 4, 0), None))


def _cam(name: str) -> np.ndarray:
    return synthetic_cams(torch.tensor(PEOPLE[name][0])).numpy()


def test_ids_hidden_track_reappears_with_a_new_id_late_entry_kept(replay):
    assert replay["clip0_track_ids_in_clip"].tolist() == [1, 2, 3]          # A, B, C by closeness
    # D enters at 9 (id 4, 7 rows), B returns at 10 as a new track (id 5, 6 rows): both >= min(8, 6)
    assert replay["clip1_track_ids_in_clip"].tolist() == [1, 3, 4, 5]


def test_rows_without_a_tracker_row(replay):
    b0 = replay["clip0_trk_batch_inds"][1]
    assert b0.tolist() == [0, 1, 2, 3, 4, 5, -1, -1]                       # B forgotten at frame 6
    assert replay["clip1_trk_batch_inds"][2].tolist() == [-1, 1, 2, 3, 4, 5, 6, 7]   # D from frame 9
    assert replay["clip1_trk_batch_inds"][3].tolist() == [-1, -1, 2, 3, 4, 5, 6, 7]  # B again from frame 10
    for clip, row, missing in ((0, 1, [6, 7]), (1, 2, [0]), (1, 3, [0, 1])):
        key = f"clip{clip}_"
        assert (replay[key + "trk_czyxs"][row, missing] == 0).all()
        assert not replay[key + "traj_valid_masks"][row, missing].any()
        assert replay[key + "inherent_flags"][row, missing].all()
        last_frame = 8 * clip + 7
        assert (replay[key + "traj_features"][row, missing] == [last_frame, 0, 0]).all()   # [-1, :, 0, 0]


def test_cams_before_infill_are_zero_where_the_track_has_no_row(replay):
    before0 = replay["clip0_cams_before_infill"]
    assert (before0[1, 6:] == 0).all()
    np.testing.assert_allclose(before0[1, :6], np.repeat(_cam("B")[None], 6, 0))
    before1 = replay["clip1_cams_before_infill"]
    assert (before1[2, 0] == 0).all() and (before1[3, :2] == 0).all()
    np.testing.assert_allclose(before1[0], np.repeat(_cam("A")[None], 8, 0))


def test_cams_after_infill_follow_the_official_rules(replay):
    after0, after1 = replay["clip0_cams_after_infill"], replay["clip1_cams_after_infill"]
    np.testing.assert_allclose(after0[1, 6:], np.repeat(_cam("B")[None], 2, 0))   # held after the last good frame
    np.testing.assert_allclose(after1[2, 0], _cam("D"))                           # memory = first good cam
    np.testing.assert_allclose(after1[3, :2], np.repeat(_cam("B")[None], 2, 0))
    assert np.isfinite(after1).all()


def test_memory_is_untouched_by_rows_without_a_tracker_row(replay):
    # B's remembered feature after clip 0 comes from its last good frame (5), not from the padded rows
    assert replay["clip0_memory_feature"][1].tolist() == [5, 80, 60]
    assert replay["clip1_memory_feature"][3].tolist() == [15, 80, 60]
