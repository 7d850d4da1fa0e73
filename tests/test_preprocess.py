"""Official preprocessing (bit-exact against the reference), its inverse for 2D centres, and the lens."""
from __future__ import annotations

import math

import numpy as np
import pytest

from core.camera import (OFFICIAL_FOV_DEG, cams_to_translation, fov_to_normalized_focal, lens_from_focal_px,
                         lens_from_horizontal_fov, official_lens, project_to_source_pixels)
from core.preprocess import input_offsets, map_yx_to_source_xy, preprocess_frame, square_padding


def test_matches_official_preprocessing_exactly(reference_dir):
    frames = np.load(reference_dir / "clip_seed0.npz")["frames"]                  # [16,240,320,3] RGB
    official = np.load(reference_dir / "input512_seed0.npz")["input512"]          # [16,512,512,3]
    expected = np.load(reference_dir / "expected_seed0.npz")
    images = np.stack([preprocess_frame(frame) for frame in frames])              # [16,512,512,3]
    offsets = np.tile(input_offsets(*frames.shape[1:3]), (len(frames), 1))       # [16,10]
    assert images.dtype == np.uint8 and images.shape == (16, 512, 512, 3)
    np.testing.assert_array_equal(images, official)
    np.testing.assert_array_equal(images.reshape(16, -1).astype(np.int64).sum(1), expected["input512_sum"])
    np.testing.assert_array_equal(images[:, 240:272, 240:272], expected["input512_crop"])
    np.testing.assert_array_equal(offsets, expected["offsets"])


def test_square_padding_split_and_offsets():
    assert square_padding(240, 320) == (40, 0, 40, 0)
    assert square_padding(241, 320) == (39, 0, 40, 0)           # top floor, bottom ceil
    assert square_padding(320, 241) == (0, 40, 0, 39)           # left floor, right ceil
    assert square_padding(100, 100) == (0, 0, 0, 0)
    np.testing.assert_array_equal(input_offsets(241, 320), [320, 320, 0, 0, 0, 0, 39, 0, 40, 0])


def test_padding_is_white_and_portrait_frames_are_padded_sideways():
    frame = np.zeros((300, 100, 3), np.uint8)
    image = preprocess_frame(frame)
    assert image.shape == (512, 512, 3)
    assert (image[:, :100] == 255).all() and (image[:, -100:] == 255).all()
    assert (image[:, 200:312] == 0).all()


def test_map_centres_go_back_to_source_pixels():
    offsets = input_offsets(240, 320)                  # padded 320x320, 40 px white above and below
    # the map centre cell (64, 64) -> 256 in the 512 input -> 160 in the padded square
    np.testing.assert_allclose(map_yx_to_source_xy([[64, 64]], offsets), [[160.0, 120.0]])
    # map row 10 -> 40 px in 512 -> 25 px in the padded square -> y = 25 - 40 = -15 (in the padding)
    np.testing.assert_allclose(map_yx_to_source_xy([[10, 32]], offsets), [[80.0, -15.0]])
    portrait = np.stack([input_offsets(320, 240)] * 2)
    np.testing.assert_allclose(map_yx_to_source_xy([[0, 64], [128, 0]], portrait), [[120.0, 0.0], [-40.0, 320.0]])


def test_official_lens_is_fifty_degrees_over_the_padded_square():
    lens = official_lens(320, 240)
    assert lens.normalized_focal == pytest.approx(1.0 / math.tan(math.radians(25.0)))
    assert lens.normalized_focal == pytest.approx(2.1445069, rel=1e-6)
    assert lens.padded_side == 320 and lens.horizontal_fov_deg == pytest.approx(OFFICIAL_FOV_DEG)
    # a portrait video: the padded side is its height, so its own horizontal FOV is narrower
    portrait = official_lens(240, 320)
    assert portrait.normalized_focal == pytest.approx(lens.normalized_focal)
    assert portrait.horizontal_fov_deg == pytest.approx(2 * math.degrees(math.atan(0.75 * math.tan(math.radians(25)))))


def test_fov_and_focal_options_give_normalized_focal():
    # landscape 1920x1080, horizontal FOV 60 deg: focal = 960 / tan(30) = 1662.77 px; f_n = focal / 960
    lens = lens_from_horizontal_fov(60.0, 1920, 1080)
    assert lens.focal_px == pytest.approx(960 / math.tan(math.radians(30)))
    assert lens.normalized_focal == pytest.approx(1 / math.tan(math.radians(30)))
    # portrait 1080x1920 with a 1000 px focal length: f_n = 1000 / (1920/2)
    portrait = lens_from_focal_px(1000.0, 1080, 1920)
    assert portrait.normalized_focal == pytest.approx(1000 / 960)
    assert portrait.horizontal_fov_deg == pytest.approx(2 * math.degrees(math.atan(540 / 1000)))
    assert lens_from_horizontal_fov(50.0, 320, 240).normalized_focal == pytest.approx(fov_to_normalized_focal(50))
    with pytest.raises(ValueError):
        lens_from_horizontal_fov(180.0, 100, 100)
    with pytest.raises(ValueError):
        lens_from_focal_px(0.0, 100, 100)


def test_cams_to_translation_and_back_to_pixels():
    f_n = fov_to_normalized_focal(50.0)
    cams = np.array([[0.5, 0.1, -0.2], [1.0, 0.0, 0.0]])   # (s, ty, tx)
    trans = cams_to_translation(cams, f_n)
    np.testing.assert_allclose(trans[0], [-0.2 / 0.5, 0.1 / 0.5, f_n / 0.5], rtol=1e-5)
    np.testing.assert_allclose(trans[1], [0.0, 0.0, f_n], rtol=1e-5)
    # the translated point projects back where the network saw it: (tx, ty) in the padded square
    lens = official_lens(320, 240)
    pixels = project_to_source_pixels(trans, lens)
    np.testing.assert_allclose(pixels[0], [(-0.2 + 1) / 2 * 320, (0.1 + 1) / 2 * 320 - 40], rtol=1e-5)
    np.testing.assert_allclose(pixels[1], [160.0, 120.0])
