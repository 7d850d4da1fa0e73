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


def test_pipeline_settings_from_a_preset():
    from core.pipeline import build_tracking_settings

    assert build_tracking_settings(True, None, 25.0, preset="mupots") == TrackingSettings.preset("mupots")
    assert build_tracking_settings(True, "2", 25.0, preset="3dpw").subject_num == 2      # --subjects N wins
    assert build_tracking_settings(True, None, 25.0, {"time2forget": 4}, preset="3dpw").time2forget == 4


def test_cli_refuses_an_unknown_preset_before_anything_runs(tmp_path):
    import io

    from core.cli import main

    err = io.StringIO()
    code = main(["run", str(tmp_path / "absent.mp4"), "-o", str(tmp_path), "--tracking-preset", "3dpv"],
                stdout=io.StringIO(), stderr=err)
    assert code == 2 and "unknown tracking preset '3dpv'" in err.getvalue()


def test_cli_preset_reaches_the_result(tmp_path, monkeypatch):
    """A whole run with the stand-in network: the preset's settings and name are recorded."""
    import io
    import json

    import core.pipeline
    from core.cli import main
    from helpers.preview_scene import write_plain_video
    from helpers.stand_in_network import StandInNetwork, loader
    from trace_format.npz import read_result

    video = write_plain_video(tmp_path / "clip.mp4", 160, 120, 16)
    monkeypatch.setattr(core.pipeline, "load_network", loader(StandInNetwork(2)))
    out = io.StringIO()
    code = main(["run", str(video), "-o", str(tmp_path / "out"), "--tracking-preset", "mupots:TS6",
                 "--progress-json", "--threads", "1", "--no-denoise"], stdout=out, stderr=(err := io.StringIO()))
    assert code == 0, err.getvalue()
    done = json.loads(out.getvalue().splitlines()[-1])
    result = read_result(done["result"])
    assert result.settings["tracking_preset"] == "mupots:TS6" and result.settings["tracking_mode"] == "official"
    assert result.settings["tracking"]["time2forget"] == 2000 and result.settings["tracking"]["subject_num"] == 2
