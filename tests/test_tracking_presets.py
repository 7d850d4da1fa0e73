"""--tracking-preset: the official per-dataset evaluation settings (trace2/utils/eval_utils.py)."""
from __future__ import annotations

import pytest

from core.tracking import TRACKING_PRESETS, TrackingSettings, TrackingSettingsError, preset_values


def test_demo_and_dynacam_are_the_official_defaults():
    assert TrackingSettings.preset("demo") == TrackingSettings.official()
    assert TrackingSettings.preset("dynacam") == TrackingSettings.official()


def test_3dpw_preset_values():
    s = TrackingSettings.preset("3dpw")
    assert (s.accept_new_dets, s.time2forget, s.subject_num) == (True, 20, 3)
    assert (s.tracker_det_thresh, s.first_frame_det_thresh, s.large_object_thresh) == (0.05, 0.05, 0.1)
    assert s.smooth_pose_shape is False and s.official_quirks is True
    assert s.axis_times == (1.2, 2.5, 25.0)


def test_mupots_preset_values():
    s = TrackingSettings.preset("MuPoTS")                                  # case-insensitive
    assert (s.accept_new_dets, s.time2forget, s.subject_num) == (False, 2000, 3)
    assert (s.first_frame_det_thresh, s.new_subject_det_thresh, s.feature_update_thresh) == (0.16, 0.7, 0.2)
    assert s.axis_times == (1.1, 0.9, 20.0) and s.smooth_pose_shape is False


def test_dyna3dpw_preset_values():
    s = TrackingSettings.preset("dyna3dpw")
    assert (s.tracker_match_thresh, s.time2forget, s.subject_num, s.smooth_pose_shape) == (0.8, 1000, 3, True)


def test_sequence_overrides_apply_on_top_of_the_preset_only_for_that_sequence():
    car = TrackingSettings.preset("3dpw:downtown_car_00")
    assert (car.subject_num, car.tracker_match_thresh, car.time2forget) == (2, 1.6, 20)
    assert TrackingSettings.preset("3dpw").subject_num == 3               # nothing leaks into the preset
    ts2 = TrackingSettings.preset("mupots:TS2")
    assert (ts2.subject_num, ts2.feature_update_thresh, ts2.time2forget) == (3, 0.1, 2000)
    assert TrackingSettings.preset("mupots:TS4").first_frame_det_thresh == 0.05
    assert TrackingSettings.preset("demo:160422_mafia2-00_30-1").subject_num == 8   # one table, any dataset


def test_overrides_come_last():
    assert TrackingSettings.preset("3dpw", time2forget=5).time2forget == 5


@pytest.mark.parametrize("name,words", [("3dpv", ["unknown tracking preset '3dpv'", "3dpw", "mupots"]),
                                        ("3dpw:flat_guitar_02", ["no settings of its own for sequence",
                                                                 "--tracking-preset 3dpw", "TS2"])])
def test_unknown_names_are_clear_errors(name, words):
    with pytest.raises(TrackingSettingsError) as info:
        preset_values(name)
    for word in words:
        assert word in str(info.value)
    assert info.value.exit_code == 2


def test_every_preset_builds():
    for name in TRACKING_PRESETS:
        TrackingSettings.preset(name)
