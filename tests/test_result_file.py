"""The versioned result file: round trip, atomic writes, validation and damaged/foreign files."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

import trace_format.npz as result_npz
from trace_format.npz import read_result, write_result
from trace_format.schema import (FORMAT_NAME, FORMAT_VERSION, CameraInfo, FramesProcessed, ResultFormatError,
                                 ResultValidationError, TraceResult, VideoInfo)
from helpers import factories
from helpers.result_archive import rewrite_result_archive


def walk_result(with_joints: bool = False, vertices: int = 0) -> TraceResult:
    """Every optional field set; two moving-camera tracks (one with gaps), each with an infilled middle frame."""
    tracks = [factories.make_track(track_id, frames, seed, fps=25.0, moving_camera=True, infilled=[len(frames) // 2],
                                   joints=with_joints, vertices=vertices)
              for track_id, frames, seed in ((1, np.arange(0, 40), 1), (4, np.array([5, 6, 7, 9, 12, 13]), 2))]
    return factories.make_result(
        tracks,
        video=VideoInfo(path="/footage/walk.mp4", fps=25.0, width=1920, height=1080, frame_count=50,
                        rotation_deg=90, variable_frame_rate=False),
        camera=CameraInfo(fov_deg=50.0, focal_px=2058.6, focal_source="official"),
        settings={"tracking": {"subject_num": "all", "axis_times": [1.2, 2.5, 25]}, "dtype": "float32"},
        software={"name": "trace-blender", "version": "0.1.0", "torch": "2.13.0"},
        weights_sha256={"trace_head.pkl": "ab" * 32},
        smpl_model={"path": "/models/SMPL_NEUTRAL.pkl", "sha256": "cd" * 32},
        notes=["frames rotated 90 degrees clockwise (container rotation metadata)"],
        frames_processed=FramesProcessed(first=0, last=49),
        created_utc="2025-01-02T03:04:05Z",
    )


@pytest.mark.parametrize("with_joints,vertices", [(False, 0), (True, 0), (True, 7)])
def test_round_trip_is_exact(tmp_path, with_joints, vertices):
    result = walk_result(with_joints, vertices)
    path = write_result(tmp_path / "run.trace.npz", result)
    assert path == tmp_path / "run.trace.npz"
    loaded = read_result(path)
    assert loaded.equals(result)
    assert loaded.source_path == str(path) and loaded.format_version == FORMAT_VERSION
    assert loaded.video == result.video and loaded.camera == result.camera
    assert loaded.frames_processed == result.frames_processed
    assert loaded.settings == result.settings and loaded.notes == result.notes
    track = loaded.track(4)
    assert track.frames.tolist() == [5, 6, 7, 9, 12, 13]
    assert track.poses.dtype == np.float32 and track.times.dtype == np.float64 and track.observed.dtype == bool
    assert np.array_equal(track.hip_center_world, result.track(4).hip_center_world)
    assert np.isnan(track.center_2d[3]).all() and not track.observed[3]
    assert (track.joints_cam is not None) == with_joints
    assert (track.vertices_world.shape if vertices else None) == ((6, vertices, 3) if vertices else None)
    # the in-memory object already holds the storage dtypes, so nothing is lost on the way
    assert result.track(1).poses.dtype == np.float32


def test_file_layout_and_metadata(tmp_path):
    path = write_result(tmp_path / "run.npz", walk_result(with_joints=True))
    with np.load(path, allow_pickle=False) as archive:
        assert archive["track_ids"].tolist() == [1, 4]
        assert archive["track_offsets"].tolist() == [0, 40, 46]
        assert archive["poses"].shape == (46, 24, 3) and archive["joints_world"].shape == (46, 24, 3)
        assert "vertices_cam" not in archive.files
        meta = json.loads(str(archive["meta_json"][()]))
    assert meta["format"] == FORMAT_NAME and meta["version"] == FORMAT_VERSION == 3
    assert set(meta) == {"format", "version", "software", "video", "camera", "settings", "weights_sha256",
                         "smpl_model", "source_format", "created_utc", "frames_processed", "notes", "shots",
                         "world_processing"}
    assert meta["video"] == {"path": "/footage/walk.mp4", "fps": 25.0, "width": 1920, "height": 1080,
                             "frame_count": 50, "rotation_deg": 90, "variable_frame_rate": False}
    assert meta["camera"] == {"fov_deg": 50.0, "focal_px": 2058.6, "focal_source": "official"}
    assert meta["frames_processed"] == {"first": 0, "last": 49, "stopped_early": False, "stop_reason": None}
    assert meta["source_format"] == "trace-blender" and meta["smpl_model"]["sha256"] == "cd" * 32


def test_written_file_has_default_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    path = write_result(tmp_path / "r.npz", walk_result())
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_created_time_is_set_on_write_without_mutating(tmp_path):
    result = walk_result()
    result.created_utc = None
    loaded = read_result(write_result(tmp_path / "r.npz", result))
    assert result.created_utc is None
    assert loaded.created_utc.endswith("Z") and loaded.created_utc[:2] == "20"


def test_track_slices_are_views():
    result = walk_result()
    track = result.track(1)
    part = track.slice_frames(10, 19)
    assert part.frames.tolist() == list(range(10, 20))
    assert np.shares_memory(part.poses, track.poses)
    assert track.index_of([0, 39, 40, -1]).tolist() == [0, 39, -1, -1]
    assert result.track(4).index_of(np.array([9, 10])).tolist() == [3, -1]
    assert result.frame_range() == (0, 39)
    with pytest.raises(KeyError, match="no track 7"):
        result.track(7)


def test_long_sequences_load_vectorised(tmp_path):
    """Half an hour at 30 fps for two people: written and read in one pass, tracks are views."""
    frames = np.arange(54_000)
    result = walk_result()
    result.tracks = [factories.make_track(1, frames, 3), factories.make_track(2, frames[::2], 4)]
    result.frames_processed = FramesProcessed(first=0, last=int(frames[-1]))
    path = write_result(tmp_path / "long.npz", result)
    started = time.perf_counter()
    loaded = read_result(path)
    elapsed = time.perf_counter() - started
    assert loaded.equals(result)
    assert loaded.tracks[0].poses.base is not None and loaded.tracks[0].poses.base is loaded.tracks[1].poses.base
    assert elapsed < 10.0, f"reading {path.stat().st_size / 1e6:.0f} MB took {elapsed:.1f} s"


def test_crash_mid_write_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    write_result(path, walk_result())
    before = path.read_bytes()
    real_savez = np.savez

    def savez_then_crash(file, *args, **kwargs):
        file.write(b"PK\x03\x04 partial archive bytes")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(result_npz.np, "savez", savez_then_crash)
    with pytest.raises(OSError, match="simulated"):
        write_result(path, walk_result(with_joints=True))
    monkeypatch.setattr(result_npz.np, "savez", real_savez)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]
    # and a crash on the very first write leaves nothing at all
    monkeypatch.setattr(result_npz.np, "savez", savez_then_crash)
    with pytest.raises(OSError):
        write_result(tmp_path / "new.npz", walk_result())
    assert not (tmp_path / "new.npz").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]


def test_invalid_results_are_not_written(tmp_path):
    target = tmp_path / "bad.npz"
    cases = []
    result = walk_result()
    result.tracks[0].poses[3, 5, 1] = np.nan
    cases.append((result, "poses has non-finite values at frames \\[3\\]"))
    result = walk_result()
    result.tracks[1].frames[2] = 5
    cases.append((result, "strictly increasing"))
    result = walk_result()
    result.tracks[0].betas = result.tracks[0].betas[:, :8]
    cases.append((result, "betas must have shape \\[40,10\\]"))
    result = walk_result(with_joints=True)
    result.tracks[1].joints_world = None
    cases.append((result, "present for all tracks or for none"))
    result = walk_result()
    result.tracks[1].track_id = 1
    cases.append((result, "duplicate track id"))
    result = walk_result()
    result.video.fps = 0.0
    cases.append((result, "video.fps"))
    result = walk_result()
    result.settings = {"threshold": float("nan")}
    cases.append((result, "JSON"))
    result = walk_result()
    result.frames_processed = FramesProcessed(first=0, last=20)
    cases.append((result, "outside the processed range"))
    for result, message in cases:
        with pytest.raises(ResultValidationError, match=message):
            write_result(target, result)
        assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_damaged_and_foreign_files_raise_clear_errors(tmp_path):
    good = write_result(tmp_path / "good.npz", walk_result())
    data = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultFormatError, match="damaged or truncated"):
        read_result(truncated)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ResultFormatError, match="not a TRACE result file"):
        read_result(garbage)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ResultFormatError):
        read_result(empty)
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    with pytest.raises(ResultFormatError, match="neither 'meta_json'.*nor 'outputs'"):
        read_result(other)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_result(tmp_path / "missing.npz")
    # a flipped byte inside an array: the archive's CRC check catches it
    corrupt = bytearray(data)
    position = data.find(b"\x93NUMPY", data.find(b"poses.npy")) + 400
    corrupt[position] ^= 0xFF
    (tmp_path / "corrupt.npz").write_bytes(bytes(corrupt))
    with pytest.raises(ResultFormatError, match="damaged"):
        read_result(tmp_path / "corrupt.npz")


def test_versions_newer_refused_older_upgraded(tmp_path, monkeypatch):
    good = write_result(tmp_path / "good.npz", walk_result())
    newer = rewrite_result_archive(good, tmp_path / "newer.npz", lambda meta, arrays: meta.update(version=4))
    with pytest.raises(ResultFormatError, match="newer TRACE for Blender.*version 4.*Update"):
        read_result(newer)
    bad_version = rewrite_result_archive(good, tmp_path / "v0.npz", lambda meta, arrays: meta.update(version=0))
    with pytest.raises(ResultFormatError, match="invalid format version"):
        read_result(bad_version)
    missing = rewrite_result_archive(good, tmp_path / "missing.npz", lambda meta, arrays: arrays.pop("hip_center_world"))
    with pytest.raises(ResultFormatError, match="missing arrays hip_center_world"):
        read_result(missing)
    offsets = rewrite_result_archive(good, tmp_path / "offsets.npz",
                            lambda meta, arrays: arrays.update(track_offsets=np.array([0, 41, 46])))
    with pytest.raises(ResultFormatError, match="increasing|non-finite|track_offsets"):
        read_result(offsets)

    # Pretend the current version is 4: a version-3 file goes through the registered upgrade.
    calls = []

    def upgrade_3_to_4(meta, arrays):
        calls.append(meta["version"])
        meta = dict(meta, version=4, notes=meta["notes"] + ["upgraded from format version 3"])
        return meta, arrays

    monkeypatch.setattr(result_npz, "FORMAT_VERSION", 4)
    monkeypatch.setitem(result_npz._UPGRADES, 3, upgrade_3_to_4)
    upgraded = read_result(good)
    assert calls == [3] and upgraded.format_version == 3
    assert upgraded.notes[-1] == "upgraded from format version 3"


def test_object_arrays_in_a_result_are_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"

    class RunsCommand:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    good = write_result(tmp_path / "good.npz", walk_result())
    evil = rewrite_result_archive(good, tmp_path / "evil.npz",
                         lambda meta, arrays: arrays.update(frames=np.array([RunsCommand()], dtype=object)))
    with pytest.raises(ResultFormatError):
        read_result(evil)
    assert not marker.exists()
