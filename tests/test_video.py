"""Frame sources: streaming, frame selection, timestamps, rotation metadata, folders, bad files."""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import FrameReadError, InputNotFoundError, NoFramesError, NotAVideoError, UsageError
from helpers.factories import write_video
from core.video import (FrameRange, ImageFolderSource, VideoFileSource, is_variable_frame_rate, natural_sort_key,
                        open_frame_source, parse_frame_position, rotate_upright)

W, H, FPS = 64, 48, 10.0


def coded_frame(index: int) -> np.ndarray:
    """BGR frame whose flat grey level encodes the index, with a red block on the left half (colour order)."""
    frame = np.full((H, W, 3), 10 + 7 * index, np.uint8)
    frame[:, : W // 2] = (0, 0, 255)
    return frame


def decoded_index(rgb: np.ndarray) -> int:
    return int(round((float(rgb[:, W // 2:].mean()) - 10) / 7))


def write_coded_video(path: Path, count: int, fourcc: str = "FFV1", fps: float = FPS) -> Path:
    return write_video(path, [coded_frame(i)[:, :, ::-1] for i in range(count)], fps=fps, codec=fourcc, size=(W, H))


def set_mp4_rotation(path: Path, degrees: int) -> None:
    """Patch the display matrix of an mp4's video track (tkhd box) to a clockwise rotation."""
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    version = data[at + 4]
    matrix_at = at + 4 + 4 + (20 if version == 0 else 32) + 8 + 8
    one, w = 0x10000, 0x40000000
    matrices = {90: [0, one, 0, -one, 0, 0, 0, 0, w], 180: [-one, 0, 0, 0, -one, 0, 0, 0, w],
                270: [0, -one, 0, one, 0, 0, 0, 0, w]}
    assert struct.unpack(">9i", data[matrix_at:matrix_at + 36]) == (one, 0, 0, 0, one, 0, 0, 0, w)
    data[matrix_at:matrix_at + 36] = struct.pack(">9i", *matrices[degrees])
    path.write_bytes(bytes(data))


def test_streams_all_frames_with_timestamps_and_rgb_order(tmp_path):
    video = write_coded_video(tmp_path / "clip.avi", 12)
    with open_frame_source(video) as source:
        assert isinstance(source, VideoFileSource)
        assert (source.info.width, source.info.height, source.info.fps, source.info.frame_count) == (W, H, FPS, 12)
        frames = list(source.frames())
    assert [f.index for f in frames] == list(range(12))
    assert [decoded_index(f.rgb) for f in frames] == list(range(12))
    np.testing.assert_allclose([f.timestamp_s for f in frames], np.arange(12) / FPS, atol=1e-6)
    assert frames[0].rgb.shape == (H, W, 3) and frames[0].rgb.dtype == np.uint8
    assert tuple(frames[0].rgb[0, 0]) == (255, 0, 0)          # BGR red written -> RGB red read
    assert not source.info.variable_frame_rate


def test_start_end_stride_select_source_frames(tmp_path):
    video = write_coded_video(tmp_path / "clip.avi", 20)
    selection = FrameRange(start=3, end=15, stride=4)
    with open_frame_source(video) as source:
        frames = list(source.frames(selection))
        assert [f.index for f in frames] == [3, 7, 11]
        assert [decoded_index(f.rgb) for f in frames] == [3, 7, 11]
        np.testing.assert_allclose([f.timestamp_s for f in frames], [0.3, 0.7, 1.1], atol=1e-6)
        # a second pass restarts from the beginning
        assert [f.index for f in source.frames(FrameRange(end=2))] == [0, 1]
    assert selection.selected_count(20) == 3
    assert FrameRange(start=18, stride=4).selected_count(20) == 1
    assert FrameRange(start=25).selected_count(20) == 0


def test_frame_positions_in_frames_or_seconds():
    assert parse_frame_position("12", 30.0, "--start") == 12
    assert parse_frame_position("2s", 30.0, "--start") == 60
    assert parse_frame_position("1.5s", 25.0, "--end") == 38          # round(37.5) -> 38 (banker's)
    assert parse_frame_position(None, 30.0, "--end") is None
    with pytest.raises(UsageError, match="--end expects a frame number"):
        parse_frame_position("abc", 30.0, "--end")
    with pytest.raises(UsageError):
        FrameRange(start=10, end=5)
    with pytest.raises(UsageError):
        FrameRange(stride=0)


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotation_metadata_is_applied_exactly_once(tmp_path, degrees):
    video = write_coded_video(tmp_path / "rot.mp4", 3, fourcc="mp4v")
    set_mp4_rotation(video, degrees)
    with open_frame_source(video) as source:
        assert source.info.rotation_deg == degrees
        upright_size = (H, W) if degrees in (90, 270) else (W, H)
        assert (source.info.width, source.info.height) == upright_size
        rgb = next(iter(source.frames())).rgb
    assert rgb.shape[:2] == (upright_size[1], upright_size[0])
    expected = rotate_upright(cv2.cvtColor(coded_frame(0), cv2.COLOR_BGR2RGB), degrees)
    red = (rgb[..., 0] > 150) & (rgb[..., 2] < 100)
    expected_red = (expected[..., 0] > 150) & (expected[..., 2] < 100)
    assert (red == expected_red).mean() > 0.97        # mp4v is lossy at the block edge only


def test_rotate_upright_directions():
    image = np.arange(6, dtype=np.uint8).reshape(2, 3)
    np.testing.assert_array_equal(rotate_upright(image, 0), image)
    np.testing.assert_array_equal(rotate_upright(image, 90), np.rot90(image, k=-1))   # clockwise
    np.testing.assert_array_equal(rotate_upright(image, 180), np.rot90(image, k=2))
    np.testing.assert_array_equal(rotate_upright(image, -90), np.rot90(image, k=1))
    with pytest.raises(ValueError):
        rotate_upright(image, 45)


def test_variable_frame_rate_detection():
    indices = np.arange(6)
    assert not is_variable_frame_rate(indices / 30.0 + 0.004 * np.array([0, 1, -1, 0, 1, 0]), indices, 30.0)
    assert is_variable_frame_rate(np.array([0.0, 1, 2, 3, 5, 6]) / 30.0, indices, 30.0)
    assert not is_variable_frame_rate(np.array([0.0]), np.array([0]), 30.0)


def test_image_folder_natural_order_and_fps(tmp_path):
    for i in (10, 2, 1, 0):
        cv2.imwrite(str(tmp_path / f"frame{i}.png"), coded_frame(i))
    (tmp_path / "notes.txt").write_text("ignored")
    source = open_frame_source(tmp_path, image_fps=20.0)
    assert isinstance(source, ImageFolderSource)
    assert [p.name for p in source.files] == ["frame0.png", "frame1.png", "frame2.png", "frame10.png"]
    frames = list(source.frames(FrameRange(start=1)))
    assert [f.index for f in frames] == [1, 2, 3]
    assert [decoded_index(f.rgb) for f in frames] == [1, 2, 10]
    np.testing.assert_allclose([f.timestamp_s for f in frames], [0.05, 0.10, 0.15])
    assert sorted(["b10", "b9", "a"], key=natural_sort_key) == ["a", "b9", "b10"]


def test_corrupt_image_midway_stops_with_its_frame(tmp_path):
    for i in range(4):
        cv2.imwrite(str(tmp_path / f"{i:03d}.jpg"), coded_frame(i))
    (tmp_path / "002.jpg").write_bytes(b"not a jpeg")
    source = open_frame_source(tmp_path)
    seen = []
    with pytest.raises(FrameReadError) as info:
        for frame in source.frames():
            seen.append(frame.index)
    assert seen == [0, 1]
    assert info.value.frame_index == 2 and info.value.last_good_frame == 1
    assert "002.jpg" in str(info.value) and "stopped after frame 1" in str(info.value)


def test_truncated_video_reports_where_it_stopped(tmp_path):
    video = write_coded_video(tmp_path / "clip.avi", 30, fourcc="MJPG")
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    with open_frame_source(video) as source:
        assert source.info.frame_count == 30
        seen = []
        with pytest.raises(FrameReadError) as info:
            for frame in source.frames():
                seen.append(frame.index)
    assert 0 < len(seen) < 28
    assert info.value.frame_index == len(seen) and info.value.last_good_frame == seen[-1]
    # asking only for frames before the damage is not an error
    with open_frame_source(video) as source:
        assert len(list(source.frames(FrameRange(end=3)))) == 3


def test_bad_inputs(tmp_path):
    with pytest.raises(InputNotFoundError, match="input not found"):
        open_frame_source(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(NotAVideoError, match="cannot open"):
        open_frame_source(text)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(NoFramesError, match="empty file"):
        open_frame_source(empty)
    zero = write_coded_video(tmp_path / "zero.avi", 0, fourcc="MJPG")
    with pytest.raises(NoFramesError, match="no video frames"):
        open_frame_source(zero)
    empty_dir = tmp_path / "empty_dir"
    empty_dir.mkdir()
    with pytest.raises(NoFramesError, match="contains no images"):
        open_frame_source(empty_dir)
