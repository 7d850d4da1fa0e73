"""Reading official trace2 result files (pickled 'outputs' dict) into a TraceResult."""
from __future__ import annotations

import os

import numpy as np
import pytest

from trace_format.trace2 import OFFICIAL_DEFAULT_FPS, official_outputs_to_result, read_official_result
from trace_format.npz import read_result, write_result
from trace_format.schema import ResultFormatError
from trace_format.smpl_file import load_smpl_model_file
from helpers.official_format import make_official_outputs, write_official_result
from helpers.synthetic_smpl import write_synthetic_smpl_pkl


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    folder = tmp_path_factory.mktemp("official")
    model = load_smpl_model_file(write_synthetic_smpl_pkl(folder / "SMPL_NEUTRAL.pkl"))
    outputs, imgpaths, expected = make_official_outputs(model, seed=0)
    path = write_official_result(folder / "clip_frames.npz", outputs, imgpaths)
    return path, outputs, imgpaths, expected


def test_every_field_is_recovered(official):
    path, outputs, imgpaths, expected = official
    result = read_result(path)  # auto-detected as an official file
    assert result.source_format == "trace2-official"
    assert result.track_ids == [2, 5]
    for track in result.tracks:
        want = expected[track.track_id]
        assert track.frames.tolist() == want["frames"].tolist()
        assert np.allclose(track.times, want["frames"] / OFFICIAL_DEFAULT_FPS, atol=1e-12)
        assert np.allclose(track.poses, want["poses"], atol=1e-6)  # joint 0 = camera-frame orientation
        assert np.allclose(track.betas, want["betas"], atol=1e-6)
        assert np.allclose(track.global_orient_world, want["global_orient_world"], atol=1e-6)
        assert np.allclose(track.confidence, want["confidence"], atol=1e-6)
        # SMPL joints and hip centres recovered exactly in both frames (float32 inputs)
        for name in ("joints_cam", "joints_world", "hip_center_cam", "hip_center_world"):
            assert np.max(np.abs(getattr(track, name) - want[name])) < 1e-5, name
        # ...and they differ from the official translations by the alignment offset (a few cm)
        offset = np.linalg.norm(track.hip_center_cam - want["cam_trans"], axis=1)
        assert np.all((offset > 0.01) & (offset < 0.1))
        assert track.observed.all() and np.isnan(track.center_2d).all()
    assert result.track(5).frames.tolist() == [3, 4, 5, 6, 8, 9, 10, 11]
    assert any("duplicate" in note for note in result.notes)
    assert any("assumed 30 fps" in note for note in result.notes)
    assert result.video.frame_count == len(imgpaths) == 12
    assert result.video.path == "/videos/clip_frames" and result.video.width == 0
    assert result.camera.fov_deg == 50.0 and result.camera.focal_px is None
    assert (result.frames_processed.first, result.frames_processed.last) == (0, 11)


def test_duplicate_rows_keep_the_most_confident(official):
    path, outputs, _, expected = official
    track = read_result(path).track(5)
    row = track.index_of(4)
    assert np.allclose(track.poses[row], expected[5]["poses"][1], atol=1e-6)


def test_fps_override(official):
    path, *_ = official
    result = read_result(path, official_fps=50.0)
    assert result.video.fps == 50.0
    assert np.allclose(result.track(2).times, np.arange(10) / 50.0)
    assert not any("fps" in note for note in result.notes)
    with pytest.raises(ValueError, match="fps"):
        read_official_result(path, fps=0.0)


def test_minimal_outputs_fall_back_with_notes(official):
    _, outputs, _, expected = official
    minimal = {key: outputs[key] for key in ("smpl_thetas", "smpl_betas", "world_global_rots", "world_trans",
                                             "cam_trans", "track_ids", "reorganize_idx")}
    result = official_outputs_to_result(minimal)
    track = result.track(2)
    assert np.allclose(track.hip_center_cam, expected[2]["cam_trans"], atol=1e-6)
    assert np.allclose(track.hip_center_world, expected[2]["world_trans"], atol=1e-6)
    assert track.joints_cam is None and np.all(track.confidence == 1.0)
    assert any("no j3d" in note for note in result.notes)
    assert any("confidence not stored" in note for note in result.notes)
    assert result.video.frame_count == 12  # from the last tracked frame


def test_converts_to_our_format(official, tmp_path):
    path, *_ = official
    result = read_result(path)
    result.created_utc = "2025-01-01T00:00:00Z"
    again = read_result(write_result(tmp_path / "converted.trace.npz", result))
    assert again.equals(result) and again.source_format == "trace2-official"


def test_malicious_outputs_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class RunsCommand:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.npz"
    np.savez(path, outputs={"smpl_thetas": RunsCommand()}, imgpaths=["a.jpg"])
    with pytest.raises(ResultFormatError, match="unsafe.*system"):
        read_result(path)
    assert not marker.exists()


def test_incomplete_or_wrong_outputs(official, tmp_path):
    _, outputs, imgpaths, _ = official
    partial = {key: value for key, value in outputs.items() if key != "world_trans"}
    with pytest.raises(ResultFormatError, match="lacks world_trans"):
        read_result(write_official_result(tmp_path / "partial.npz", partial, imgpaths))
    short = dict(outputs, smpl_betas=outputs["smpl_betas"][:-1])
    with pytest.raises(ResultFormatError, match="smpl_betas"):
        read_result(write_official_result(tmp_path / "short.npz", short, imgpaths))
    not_dict = tmp_path / "list.npz"
    np.savez(not_dict, outputs=np.array([1.0, 2.0]))
    with pytest.raises(ResultFormatError, match="dictionary"):
        read_result(not_dict)
