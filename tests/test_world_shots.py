"""Known-answer tests of core.shots on synthetic footage built here.

Each synthetic shot is a crop of a textured canvas (its own palette) moving like a camera (pan plus
a little shake), with moving discs, per-frame brightness flicker and pixel noise; none of that may
trigger a cut, while a switch to another shot must.
"""
from __future__ import annotations

import numpy as np
import pytest

from core.shots import ShotCutDetector, ShotCutError, shot_segments

HEIGHT, WIDTH = 120, 160
GREEN_BLUE = [(40, 120, 60), (90, 160, 220), (30, 80, 40), (200, 210, 120)]
WARM = [(180, 90, 50), (230, 200, 160), (120, 50, 30), (90, 60, 40)]
GREY_PURPLE = [(100, 100, 110), (150, 120, 170), (60, 60, 70), (210, 210, 220)]


def _canvas(rng: np.random.Generator, height: int, width: int, palette) -> np.ndarray:
    """Textured background [height,width,3] float: random soft blobs from the palette + fine grain."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width, 3), np.float32) + np.asarray(palette[0], np.float32)
    for _ in range(25):
        cy, cx, radius = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(6, 30)
        colour = np.asarray(palette[rng.integers(len(palette))], np.float32)
        weight = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius * radius))[..., None]
        image = image * (1 - weight) + colour * weight
    return image + rng.normal(0, 10, (height, width, 1)).astype(np.float32)


def render_shot(seed: int, n_frames: int, palette, pan=(0.7, 0.3), flicker: float = 0.12,
                noise: float = 5.0) -> list[np.ndarray]:
    """n_frames RGB uint8 frames of one shot; pan is px/frame (y, x), constant or per frame [n,2]."""
    rng = np.random.default_rng(seed)
    pan = np.broadcast_to(np.asarray(pan, np.float64), (n_frames, 2))
    margin_y = int(20 + np.abs(pan[:, 0]).sum() + 0.3 * n_frames)
    margin_x = int(20 + np.abs(pan[:, 1]).sum())
    canvas = _canvas(rng, HEIGHT + 2 * margin_y, WIDTH + 2 * margin_x, palette)
    centres = rng.uniform([10, 10], [HEIGHT - 10, WIDTH - 10], (3, 2))
    velocities = rng.uniform(-3, 3, (3, 2))
    colours = [palette[rng.integers(len(palette))] for _ in range(3)]
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames, origin = [], np.array([margin_y, margin_x], np.float64)
    for t in range(n_frames):
        origin += pan[t] + np.array([0.3 * np.sin(t / 3), 0.0])   # pan + camera shake
        oy, ox = np.round(origin).astype(int)
        image = canvas[oy:oy + HEIGHT, ox:ox + WIDTH].copy()
        centres += velocities
        for centre, colour in zip(centres, colours):
            image[(yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < 144] = colour
        image *= 1 + flicker * rng.uniform(-1, 1)          # brightness flicker
        image += rng.normal(0, noise, image.shape)         # sensor noise
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
    return frames


def _push_all(frames: list[np.ndarray], first: int = 0, stride: int = 1) -> ShotCutDetector:
    detector = ShotCutDetector()
    for position, frame in enumerate(frames):
        detector.push(first + stride * position, frame)
    return detector


def test_two_hard_cuts_give_three_shots_at_the_right_frames():
    frames = (render_shot(0, 40, GREEN_BLUE) + render_shot(1, 35, WARM, pan=(0, -2.5))
              + render_shot(2, 40, GREY_PURPLE, pan=(1.0, 1.5)))
    detector = ShotCutDetector()
    cuts = [index for index, frame in enumerate(frames) if detector.push(index, frame)]
    assert cuts == [40, 75]
    assert detector.shots() == [(0, 40), (40, 75), (75, 115)]
    assert detector.cut_frames == [40, 75]


def test_cut_between_shots_of_the_same_colours_is_found_by_structure():
    frames = render_shot(7, 40, GREEN_BLUE) + render_shot(8, 40, GREEN_BLUE)
    assert _push_all(frames).shots() == [(0, 40), (40, 80)]


def test_frame_indices_may_skip_and_shots_use_them():
    frames = render_shot(0, 20, GREEN_BLUE) + render_shot(1, 20, WARM)
    assert _push_all(frames, first=100, stride=2).shots() == [(100, 140), (140, 179)]   # stride 2 from 100


@pytest.mark.parametrize("speed_px", [8, 30])
def test_abrupt_fast_pan_is_not_a_cut(speed_px):
    pan = np.zeros((60, 2))
    pan[20:, 1] = speed_px            # static, then a whip pan of up to 19% of the width per frame
    assert _push_all(render_shot(5, 60, GREEN_BLUE, pan=pan)).shots() == [(0, 60)]


def _fade(frame: np.ndarray, weights) -> list[np.ndarray]:
    return [(frame * w).astype(np.uint8) for w in weights]


def test_cross_dissolve_is_not_a_hard_cut():
    # A documented limit: a gradual transition between two scenes is not split.
    first, second = render_shot(0, 30, GREEN_BLUE), render_shot(1, 30, WARM, pan=(0, -1))
    dissolve = [np.clip((1 - a) * first[-1] + a * second[0].astype(float), 0, 255).astype(np.uint8)
                for a in np.linspace(0, 1, 15)]
    assert _push_all(first + dissolve + second).shots() == [(0, 75)]


def test_fade_through_black_cuts_only_when_the_scene_changes():
    first, second = render_shot(0, 30, GREEN_BLUE), render_shot(1, 30, WARM, pan=(0, -1))
    down, up = np.linspace(1, 0, 10), np.linspace(0, 1, 10)
    # Out to black and back into the same scene: one shot.
    assert _push_all(first + _fade(first[-1], down) + _fade(first[-1], up)).shots() == [(0, 50)]
    # Out of one scene, into another: one cut, at the first faded-in frame that shows content.
    frames = first + _fade(first[-1], down) + _fade(second[0], up) + second
    detector = _push_all(frames)
    assert len(detector.cut_frames) == 1
    assert 41 <= detector.cut_frames[0] <= 43          # frames 40/41 (weights 0, 0.11) are flat
    assert detector.shots()[-1][1] == 80


def test_minimum_shot_length_suppresses_flash_cuts():
    # A 3-frame insert (shorter than min_shot_frames = 8) only cuts once, when it starts.
    frames = render_shot(0, 30, GREEN_BLUE) + render_shot(1, 3, WARM) + render_shot(2, 30, GREEN_BLUE)
    assert _push_all(frames).cut_frames == [30]


def test_push_rejects_bad_frames_and_going_back():
    detector = ShotCutDetector()
    detector.push(5, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ShotCutError, match="increase"):
        detector.push(5, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ShotCutError, match="uint8"):
        detector.push(6, np.zeros((8, 8, 3), np.float32))


def test_shot_segments_never_span_a_cut():
    frames = np.array([3, 4, 5, 9, 10, 11, 12, 20, 21])
    pieces = shot_segments(frames, cut_frames=[20, 10])           # order of the cuts does not matter
    assert [frames[rows].tolist() for rows in pieces] == [[3, 4, 5, 9], [10, 11, 12], [20, 21]]
    assert [rows.tolist() for rows in shot_segments(frames, [])] == [list(range(9))]
    assert [frames[rows].tolist() for rows in shot_segments(frames, [6, 7, 30])] == [[3, 4, 5], [9, 10, 11, 12, 20, 21]]
    with pytest.raises(ShotCutError, match="strictly increasing"):
        shot_segments(np.array([3, 3, 4]), [10])
