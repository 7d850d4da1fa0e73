"""Result file version 2: shots, registrations, alignments, contacts, cleaned motion, scene camera;
reading genuine version-1 files; validation of the new fields."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import trace_format.schema as result_schema
from trace_format.npz import read_result, write_result
from trace_format.schema import (DEFAULT_ALIGNMENT_MATRIX, FORMAT_NAME, CameraInfo, FramesProcessed,
                                 ResultFormatError, ResultValidationError, SceneCameraPath, ShotInfo, TraceResult,
                                 TrackResult, VideoInfo)
from helpers.blender import planned_camera_matrices
from trace_format.rotations import axis_angle_to_matrix
from trace_format.validate import validate_result
from core.world.ground import default_alignment
from helpers.factories import make_track
from helpers.result_archive import rewrite_result_archive

FPS = 25.0


def rigid(rotvec, translation) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = axis_angle_to_matrix(np.asarray(rotvec, float))
    matrix[:3, 3] = translation
    return matrix


def make_camera(shot_ranges) -> SceneCameraPath:
    frames = np.concatenate([np.arange(start, stop) for start, stop in shot_ranges])
    shots = np.concatenate([np.full(stop - start, index) for index, (start, stop) in enumerate(shot_ranges)])
    angles = np.stack([0.2 * np.sin(frames / 10.0), 0.1 * np.cos(frames / 7.0), 0.05 * frames / 50.0], axis=1)
    return SceneCameraPath(frames=frames, rotations=axis_angle_to_matrix(angles), positions=np.stack(
        [0.01 * frames, -0.002 * frames, 0.03 * frames], axis=1), interpolated=frames % 17 == 0, shots=shots)


def make_v2_result() -> TraceResult:
    """Two shots (frames 0..29, 30..49), three tracks, an aligned first shot, a camera over both."""
    aligned = rigid([0.3, -0.1, 0.2], [0.1, 0.2, 1.5]) @ np.vstack([np.hstack([DEFAULT_ALIGNMENT_MATRIX[:3, :3],
                                                                                np.zeros((3, 1))]),
                                                                    [0, 0, 0, 1]])
    shots = [ShotInfo(index=0, start=0, stop=30, aligned=True, alignment_matrix=aligned,
                      alignment_info={"method": "plane_fit", "rms_residual_m": 0.01, "inliers": 120}),
             ShotInfo(index=1, start=30, stop=50)]
    kinds = dict(fps=FPS, moving_camera=True, world=True)
    tracks = [make_track(1, np.arange(0, 30), 1, **kinds),
              make_track(2, np.array([5, 6, 9, 12, 29]), 2, registration=rigid([0.0, 0.4, 0.0], [1, 0, 2]), **kinds),
              make_track(7, np.arange(30, 50), 3, shot=1, **kinds)]
    return TraceResult(
        tracks=tracks, video=VideoInfo(path="/footage/cut.mp4", fps=FPS, width=1280, height=720, frame_count=50),
        camera=CameraInfo(fov_deg=50.0, focal_px=1372.4), settings={"dtype": "float32"},
        weights_sha256={"trace_head.pkl": "ab" * 32}, notes=["two shots"],
        frames_processed=FramesProcessed(first=0, last=49), created_utc="2025-01-02T03:04:05Z",
        shots=shots, scene_camera=make_camera([(0, 30), (30, 50)]),
        world_processing={"settings": {"align": True, "clean_feet": True},
                          "metrics": {"foot_sliding": {"before_m": 0.004, "after_m": 0.0005}}})


def test_v2_round_trip_is_exact(tmp_path):
    result = make_v2_result()
    path = write_result(tmp_path / "cut.trace.npz", result)
    loaded = read_result(path)
    assert loaded.format_version == 3 and loaded.equals(result)
    assert [(s.index, s.start, s.stop, s.aligned) for s in loaded.shots] == [(0, 0, 30, True), (1, 30, 50, False)]
    assert np.array_equal(loaded.shots[0].alignment_matrix, result.shots[0].alignment_matrix)
    assert loaded.shots[0].alignment_info == {"method": "plane_fit", "rms_residual_m": 0.01, "inliers": 120}
    assert np.array_equal(loaded.shots[1].alignment_matrix, DEFAULT_ALIGNMENT_MATRIX)
    assert [t.shot for t in loaded.tracks] == [0, 0, 1]
    assert np.array_equal(loaded.track(2).registration, result.track(2).registration)
    assert loaded.track(2).contacts.dtype == bool and loaded.track(2).contacts.shape == (5, 2)
    assert loaded.track(7).clean_body_pose.shape == (20, 23, 3)
    assert loaded.scene_camera.equals(result.scene_camera) and loaded.scene_camera.rotations.dtype == np.float32
    assert loaded.world_processing == result.world_processing
    # Tracks are still views into one block per array (vectorised reading), the new arrays too.
    assert loaded.tracks[0].contacts.base is not None and loaded.tracks[0].contacts.base is loaded.tracks[2].contacts.base
    # Any change is seen by equals (the camera, a registration).
    changed = read_result(path)
    changed.scene_camera.positions[3, 0] += 0.5
    assert not changed.equals(result)
    changed = read_result(path)
    changed.tracks[1].registration = np.eye(4)
    assert not changed.equals(result)


def test_v2_file_layout(tmp_path):
    path = write_result(tmp_path / "cut.npz", make_v2_result())
    with np.load(path, allow_pickle=False) as archive:
        members = set(archive.files)
        assert archive["track_shots"].tolist() == [0, 0, 1]
        assert archive["track_registrations"].shape == (3, 4, 4) and archive["track_registrations"].dtype == np.float64
        assert archive["contacts"].shape == (55, 2) and archive["clean_hip_center_world"].shape == (55, 3)
        assert archive["camera_frames"].tolist() == list(range(50)) and archive["camera_shots"][30] == 1
        meta = json.loads(str(archive["meta_json"][()]))
    assert {"camera_rotations", "camera_positions", "camera_interpolated", "clean_body_pose"} <= members
    assert meta["format"] == FORMAT_NAME and meta["version"] == 3
    assert meta["shots"][0]["alignment"]["method"] == "plane_fit"
    assert np.allclose(meta["shots"][0]["alignment"]["matrix"], make_v2_result().shots[0].alignment_matrix)
    assert meta["shots"][1] == {"index": 1, "start": 30, "stop": 50, "aligned": False,
                                "alignment": {"method": "none", "note": "no ground alignment: fixed axis swap (x, z, -y)",
                                              "matrix": DEFAULT_ALIGNMENT_MATRIX.tolist()}}
    assert meta["world_processing"]["settings"] == {"align": True, "clean_feet": True}


def test_blender_transform_and_camera_helpers():
    result = make_v2_result()
    track = result.track(2)
    expected = result.shots[0].alignment_matrix @ track.registration
    assert np.allclose(result.blender_transform(track), expected) and np.allclose(result.blender_transform(2), expected)
    assert np.allclose(result.blender_transform(7), DEFAULT_ALIGNMENT_MATRIX)
    assert result.shot_of(7).index == 1
    # The camera in Blender: alignment applied, OpenCV axes turned into Blender's (-Z forward, +Y up).
    frames, matrices = planned_camera_matrices(result)[0]
    assert frames.tolist() == list(range(30)) and matrices.shape == (30, 4, 4)
    camera = result.scene_camera
    forward_trace = camera.rotations[10].astype(float) @ [0.0, 0.0, 1.0]             # OpenCV +Z: looking direction
    alignment = result.shots[0].alignment_matrix
    assert np.allclose(matrices[10, :3, :3] @ [0.0, 0.0, -1.0], alignment[:3, :3] @ forward_trace, atol=1e-6)
    assert np.allclose(matrices[10, :3, 3], alignment[:3, :3] @ camera.positions[10] + alignment[:3, 3], atol=1e-6)
    assert np.allclose(np.linalg.det(matrices[:, :3, :3]), 1.0, atol=1e-5)
    # World poses for animation: the world stage's motion when present, the raw one on request.
    track = result.track(1)
    assert np.array_equal(track.world_poses()[:, 0], track.clean_global_orient_world)
    assert np.array_equal(track.world_poses(cleaned=False)[:, 0], track.global_orient_world)
    assert np.array_equal(track.world_poses()[:, 1:], track.clean_body_pose)
    assert np.array_equal(track.world_poses(cleaned=False)[:, 1:], track.poses[:, 1:])
    assert track.world_hip_centers() is track.clean_hip_center_world
    assert track.world_hip_centers(cleaned=False) is track.hip_center_world
    # Without a camera stored for a shot, no camera is built for it.
    result.scene_camera = result.scene_camera.for_shot(0)
    assert set(planned_camera_matrices(result)) == {0}


def test_default_alignment_is_the_fixed_swap_everywhere():
    from trace_blender import frames

    assert np.array_equal(DEFAULT_ALIGNMENT_MATRIX[:3, :3], frames.TRACE_TO_BLENDER)
    assert np.array_equal(DEFAULT_ALIGNMENT_MATRIX, default_alignment().matrix)
    assert not DEFAULT_ALIGNMENT_MATRIX.flags.writeable
    assert result_schema.default_alignment_matrix().flags.writeable


def _write_genuine_v1(path: Path, tracks: list[TrackResult], frames_processed: dict | None) -> Path:
    """A file exactly as the version-1 writer laid it out (meta keys, members, dtypes)."""
    meta = {"format": FORMAT_NAME, "version": 1, "software": {"name": "trace-blender", "version": "0.1.0"},
            "video": {"path": "/footage/walk.mp4", "fps": FPS, "width": 640, "height": 480, "frame_count": 60,
                      "rotation_deg": 0, "variable_frame_rate": False},
            "camera": {"fov_deg": 50.0, "focal_px": 686.2, "focal_source": "official"},
            "settings": {"device": "cpu"}, "weights_sha256": {}, "smpl_model": None, "source_format": "trace-blender",
            "created_utc": "2025-01-02T03:04:05Z", "frames_processed": frames_processed, "notes": ["v1 file"]}
    counts = [t.num_frames for t in tracks]
    arrays = {"track_ids": np.array([t.track_id for t in tracks], dtype=np.int64),
              "track_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)}
    for name in result_schema.TRACK_FIELDS:
        arrays[name] = np.concatenate([getattr(t, name) for t in tracks])
    arrays["joints_world"] = np.concatenate([np.full((n, 24, 3), 0.5, np.float32) for n in counts])
    arrays["joints_cam"] = arrays["joints_world"] + np.float32(1.0)
    np.savez(path, meta_json=np.array(json.dumps(meta)), **arrays)
    return path


def test_version_1_files_read_as_version_2(tmp_path):
    tracks = [make_track(3, np.arange(4, 40), 5, fps=FPS, moving_camera=True),
              make_track(9, np.array([10, 11, 15]), 6, fps=FPS, moving_camera=True)]
    path = _write_genuine_v1(tmp_path / "old.npz", tracks, {"first": 0, "last": 59, "stopped_early": False,
                                                            "stop_reason": None})
    loaded = read_result(path)
    assert loaded.format_version == 1 and loaded.notes == ["v1 file"]
    assert len(loaded.shots) == 1
    shot = loaded.shots[0]
    assert (shot.index, shot.start, shot.stop, shot.aligned) == (0, 0, 60, False)
    assert np.array_equal(shot.alignment_matrix, DEFAULT_ALIGNMENT_MATRIX) and shot.alignment_info["method"] == "none"
    assert loaded.scene_camera is None and loaded.world_processing is None
    for original, track in zip(tracks, loaded.tracks):
        assert track.shot == 0 and np.array_equal(track.registration, np.eye(4))
        assert track.contacts is None and track.clean_body_pose is None and track.clean_hip_center_world is None
        assert np.array_equal(track.poses, original.poses) and np.array_equal(track.hip_center_world, original.hip_center_world)
        assert np.all(track.joints_world == 0.5) and np.all(track.joints_cam == 1.5)
        assert np.array_equal(loaded.blender_transform(track), DEFAULT_ALIGNMENT_MATRIX)
    # Written again, it is a current-version file with the same content.
    again = read_result(write_result(tmp_path / "new.npz", loaded))
    assert again.format_version == 3 and again.equals(loaded)
    # Without frames_processed the shot spans the tracks' frames.
    loaded = read_result(_write_genuine_v1(tmp_path / "old2.npz", tracks, None))
    assert (loaded.shots[0].start, loaded.shots[0].stop) == (4, 40)


def test_results_built_without_shots_get_one_implicit_shot(tmp_path):
    """What code that predates version 2 builds (the pipeline, official trace2 results) stays valid."""
    result = make_v2_result()
    result.shots, result.scene_camera = [], None
    for track in result.tracks:
        track.shot, track.registration = 0, np.eye(4)
    assert [(s.start, s.stop) for s in result.effective_shots()] == [(0, 50)]
    loaded = read_result(write_result(tmp_path / "r.npz", result))
    assert [(s.index, s.start, s.stop, s.aligned) for s in loaded.shots] == [(0, 0, 50, False)]
    assert loaded.equals(result)


def _invalid(change, message):
    result = make_v2_result()
    change(result)
    with pytest.raises(ResultValidationError, match=message):
        validate_result(result)


def _set(obj, **values):
    for key, value in values.items():
        setattr(obj, key, value)


@pytest.mark.parametrize("change,message", [
    (lambda r: _set(r.tracks[2], shot=0), r"track 7: frames 30\.\.49 lie outside its shot 0 \[0, 30\).*must not span a cut"),
    (lambda r: _set(r.tracks[0], frames=np.arange(10, 40), times=np.arange(10, 40) / FPS),
     r"track 1: frames 10\.\.39 lie outside its shot 0"),
    (lambda r: _set(r.tracks[1], shot=5), r"track 2: shot 5 does not exist \(2 shot"),
    (lambda r: _set(r.tracks[0], contacts=np.zeros((30, 3), bool)), r"track 1: contacts must have shape \[30,2\]"),
    (lambda r: _set(r.tracks[0], contacts=np.zeros((30, 2), np.float32)), r"track 1: contacts must be bool"),
    (lambda r: _set(r.tracks[1], clean_body_pose=np.zeros((5, 24, 3), np.float32)),
     r"track 2: clean_body_pose must have shape \[5,23,3\]"),
    (lambda r: _set(r.tracks[1], clean_body_pose=None, clean_hip_center_world=None, clean_global_orient_world=None),
     r"must be present for all tracks or for none"),
    (lambda r: _set(r.tracks[1], clean_hip_center_world=None), r"track 2: clean_body_pose, clean_hip_center_world and clean_global_orient_world come"),
    (lambda r: _set(r.tracks[0], registration=np.diag([1.0, 1.0, 1.2, 1.0])), r"track 1: registration must be rigid"),
    (lambda r: _set(r.tracks[0], registration=np.eye(3)), r"track 1: registration must be a float 4x4"),
    (lambda r: _set(r.tracks[1], clean_hip_center_world=np.full((5, 3), np.nan, np.float32)),
     r"track 2: clean_hip_center_world has non-finite values"),
    (lambda r: _set(r.shots[1], start=31), r"shot 1: starts at frame 31 but the previous shot stops at 30"),
    (lambda r: _set(r.shots[1], index=4), r"shot 1: index must be 1"),
    (lambda r: _set(r.shots[0], stop=0), r"shot 0: frames \[0, 0\) must be a non-empty range"),
    (lambda r: _set(r.shots[0], aligned=False), r"shot 0: aligned is False, so its alignment matrix must be the fixed swap"),
    (lambda r: _set(r.shots[1], alignment_matrix=np.diag([2.0, 1.0, 1.0, 1.0])), r"shot 1: alignment matrix must be rigid"),
    (lambda r: _set(r.shots[1], stop=45), r"do not cover the processed frames 0\.\.49"),
    (lambda r: _set(r, shots=[{"index": 0}]), r"shots must be a list of ShotInfo"),
    (lambda r: _set(r.scene_camera, rotations=r.scene_camera.rotations[:, :2]), r"scene camera: rotations must have shape \[50,3,3\]"),
    (lambda r: _set(r.scene_camera, rotations=r.scene_camera.rotations * np.float32(1.1)),
     r"scene camera: rotations must be orthonormal"),
    (lambda r: _set(r.scene_camera, shots=np.zeros(50, np.int64)), r"scene camera: frames \[30, 31, 32, 33, 34\] lie outside"),
    (lambda r: _set(r.scene_camera, frames=r.scene_camera.frames[::-1].copy()), r"strictly increasing"),
    (lambda r: _set(r, world_processing=[1, 2]), r"world_processing must be a dict"),
    (lambda r: _set(r, world_processing={"rms": math.nan}), r"JSON"),
])
def test_invalid_v2_content_is_refused(change, message):
    _invalid(change, message)


def test_invalid_v2_results_are_not_written(tmp_path):
    result = make_v2_result()
    result.tracks[2].shot = 0
    with pytest.raises(ResultValidationError, match="must not span a cut"):
        write_result(tmp_path / "bad.npz", result)
    assert list(tmp_path.iterdir()) == []


def test_damaged_v2_files_raise_clear_errors(tmp_path):
    good = write_result(tmp_path / "good.npz", make_v2_result())
    cases = [
        (lambda meta, arrays: arrays.pop("track_registrations"), "missing arrays track_registrations"),
        (lambda meta, arrays: arrays.pop("camera_positions"), "scene camera arrays incomplete"),
        (lambda meta, arrays: arrays.update(track_shots=np.zeros(2, np.int64)), "do not match the 3 tracks"),
        (lambda meta, arrays: arrays.update(track_shots=np.array([0, 0, 0])), "lie outside its shot 0"),
        (lambda meta, arrays: meta.pop("shots"), "metadata is incomplete"),
        (lambda meta, arrays: meta["shots"][0].update(start="zero"), "metadata is incomplete"),
        (lambda meta, arrays: meta.update(version=4), "newer TRACE for Blender.*version 4.*Update"),
    ]
    for number, (change, message) in enumerate(cases):
        with pytest.raises(ResultFormatError, match=message):
            read_result(rewrite_result_archive(good, tmp_path / f"bad{number}.npz", change))
