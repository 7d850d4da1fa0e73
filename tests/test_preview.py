"""`python -m core preview`: the overlay video of a result (skeletons, ids, shots, top view)."""
from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest

from core.cli import main
from core.keypoints import project_keypoints, skeleton_joints_cam
from core.preview import PreviewError, PreviewOptions, render_preview, track_color
from core.preview.render import _lens_of
from trace_format.npz import read_result, write_result
from trace_format.skeleton import load_default_skeleton
from helpers.preview_scene import walking_result, write_plain_video

WIDTH, HEIGHT, FRAMES = 320, 240, 20


@pytest.fixture()
def scene(tmp_path):
    video = write_plain_video(tmp_path / "walk.mp4", WIDTH, HEIGHT, FRAMES)
    result_path = tmp_path / "walk.trace.npz"
    write_result(result_path, walking_result(WIDTH, HEIGHT, FRAMES, people=2, video_path=str(video)))
    return result_path, video


def _frames(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            return frames
        frames.append(image)


def test_preview_draws_each_person_in_its_colour_at_its_keypoints(scene, tmp_path):
    result_path, video = scene
    summary = render_preview(PreviewOptions(result_path, tmp_path / "preview.mp4"))
    assert summary.frames == FRAMES and summary.background == str(video)
    frames = _frames(tmp_path / "preview.mp4")
    assert len(frames) == FRAMES and frames[0].shape == (HEIGHT, WIDTH, 3)
    result = read_result(result_path)
    track = result.tracks[0]
    keypoints = project_keypoints(skeleton_joints_cam(track.poses, track.hip_center_cam, load_default_skeleton()),
                                  _lens_of(result))
    row = 10
    x, y = np.round(keypoints[row, 6]).astype(int)          # spine joint: on the drawn skeleton
    patch = frames[track.frames[row]][y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).astype(int)
    color = np.array(track_color(track.track_id))
    assert np.abs(patch - color).sum(1).min() < 90            # mp4v compression tolerance
    plain = _frames(video)
    assert np.abs(plain[row][y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).astype(int) - color).sum(1).min() > 90
    assert summary.people_drawn == sum(len(t.frames) for t in result.tracks)


def test_grey_canvas_when_the_video_is_gone_and_with_no_video(scene, tmp_path):
    result_path, video = scene
    video.unlink()
    summary = render_preview(PreviewOptions(result_path, tmp_path / "grey.mp4"))
    assert summary.background == "grey canvas" and "was not found" in summary.notes[0]
    corner = _frames(tmp_path / "grey.mp4")[3][HEIGHT // 2, 2]
    assert np.abs(corner.astype(int) - 48).max() < 12


def test_wrong_video_is_refused_before_anything_is_written(scene, tmp_path):
    result_path, _ = scene
    other = write_plain_video(tmp_path / "other.mp4", 160, 120, 5)
    with pytest.raises(PreviewError, match="is 160x120 but the result was made from a 320x240 video"):
        render_preview(PreviewOptions(result_path, tmp_path / "out.mp4", video_path=other))
    assert not (tmp_path / "out.mp4").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.mp4")]     # no temporary left behind


def test_cli_preview_and_errors(scene, tmp_path):
    result_path, video = scene
    out, err = io.StringIO(), io.StringIO()
    code = main(["preview", str(result_path), "--video", str(video), "-o", str(tmp_path / "p.mp4"),
                 "--progress-json"], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert events[-1]["event"] == "done" and events[-1]["preview"] == str(tmp_path / "p.mp4")
    assert (tmp_path / "p.mp4").stat().st_size > 0
    code = main(["preview", str(tmp_path / "absent.trace.npz"), "-o", str(tmp_path / "q.mp4")],
                stdout=io.StringIO(), stderr=(err := io.StringIO()))
    assert code == 3 and "result file not found" in err.getvalue()
    (tmp_path / "bad.trace.npz").write_bytes(b"not a result")
    code = main(["preview", str(tmp_path / "bad.trace.npz"), "-o", str(tmp_path / "q.mp4")],
                stdout=io.StringIO(), stderr=(err := io.StringIO()))
    assert code == 3 and "cannot read the result" in err.getvalue()


def test_track_colours_are_distinct_and_stable():
    colours = [track_color(i) for i in range(1, 9)]
    assert len(set(colours)) == 8 and track_color(3) == colours[2]


def test_run_with_preview_writes_it_beside_the_result(tmp_path, monkeypatch):
    import core.pipeline
    from helpers.stand_in_network import StandInNetwork, loader

    video = write_plain_video(tmp_path / "clip.mp4", 160, 120, 12)
    monkeypatch.setattr(core.pipeline, "load_network", loader(StandInNetwork(2)))
    out = io.StringIO()
    code = main(["run", str(video), "-o", str(tmp_path / "out"), "--preview", "--progress-json", "--threads", "1"],
                stdout=out, stderr=(err := io.StringIO()))
    assert code == 0, err.getvalue()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    done = events[-1]
    assert done["preview"] == str(tmp_path / "out" / "clip.preview.mp4")
    assert any(e.get("stage") == "preview" for e in events if e["event"] == "progress")
    assert len(_frames(done["preview"])) == 12


def test_run_stores_2d_keypoints_and_boxes_in_source_pixels(tmp_path, monkeypatch):
    import core.pipeline
    from helpers.stand_in_network import StandInNetwork, loader

    video = write_plain_video(tmp_path / "clip.mp4", 160, 120, 8)
    monkeypatch.setattr(core.pipeline, "load_network", loader(StandInNetwork(2)))
    out = io.StringIO()
    assert main(["run", str(video), "-o", str(tmp_path / "out"), "--progress-json", "--threads", "1"],
                stdout=out, stderr=io.StringIO()) == 0
    result = read_result(json.loads(out.getvalue().splitlines()[-1])["result"])
    assert result.settings["keypoints_2d"] == "default_skeleton"
    for track in result.tracks:
        assert track.keypoints_2d.shape == (track.num_frames, 24, 2) and track.box_2d.shape == (track.num_frames, 4)
        expected = project_keypoints(skeleton_joints_cam(track.poses, track.hip_center_cam, load_default_skeleton()),
                                     _lens_of(result))
        np.testing.assert_allclose(track.keypoints_2d, expected, atol=1e-3)
        np.testing.assert_allclose(track.box_2d[:, :2], np.nanmin(track.keypoints_2d, axis=1), atol=1e-4)
        np.testing.assert_allclose(track.box_2d[:, 2:], np.nanmax(track.keypoints_2d, axis=1), atol=1e-4)
