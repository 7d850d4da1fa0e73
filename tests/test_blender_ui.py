"""The add-on's UI layer in background Blender: registration, panels, file handlers, every operator."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

bpy = pytest.importorskip("bpy")
import addon_utils  # noqa: E402  (ships with bpy)

from helpers.blender import (RecordingLayout, fake_video, scene_fingerprint, world_result_from_truth,  # noqa: E402
                             world_scene, write_fake_core)
from helpers.factories import make_result  # noqa: E402

from trace_format.npz import write_result

from trace_blender import operators, preferences, runner, ui  # noqa: E402
from trace_blender.build import tags  # noqa: E402

ADDON = "trace_blender"


@pytest.fixture()
def addon(tmp_path, monkeypatch):
    """Clean scene, add-on enabled through Blender's add-on manager, runs written under tmp_path."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable(ADDON, default_set=True)
    monkeypatch.setattr(operators, "user_data_dir", lambda sub: (tmp_path / sub).mkdir(exist_ok=True) or tmp_path / sub)
    prefs = bpy.context.preferences.addons[ADDON].preferences
    yield prefs
    operators.cancel_active_job()
    addon_utils.disable(ADDON, default_set=True)


@pytest.fixture()
def fake_python(tmp_path):
    return write_fake_core(tmp_path)


def draw(panel_class, context=None) -> RecordingLayout:
    layout = RecordingLayout()
    panel_class.draw(SimpleNamespace(layout=layout), context or bpy.context)
    return layout


def test_register_and_unregister(addon):
    for name in ("TRACE_PT_main", "TRACE_PT_import", "TRACE_PT_shots", "TRACE_PT_people", "TRACE_PT_export",
                 "TRACE_FH_video", "TRACE_FH_result", "TRACE_OT_run_video", "TRACE_OT_import_result",
                 "TRACE_OT_view_shot", "TRACE_OT_export_people"):
        assert hasattr(bpy.types, name), name
    assert isinstance(bpy.context.window_manager.trace_blender, ui.TRACE_SessionState)
    assert "trace_blender" not in bpy.context.scene.keys()  # UI state is not stored in the file
    for prop in ("python_path", "weights_dir", "smpl_model_path", "smpl_extra_regressor_path", "device",
                 "export_preset", "frame_start"):
        assert prop in addon.bl_rna.properties
    addon_utils.disable(ADDON, default_set=True)
    assert not hasattr(bpy.types, "TRACE_PT_main") and not hasattr(bpy.types.WindowManager, "trace_blender")
    addon_utils.enable(ADDON, default_set=True)
    assert hasattr(bpy.types, "TRACE_PT_main")


def test_file_handlers_accept_drops_only_on_the_3d_viewport(addon):
    assert ui.TRACE_FH_video.bl_import_operator == "trace.run_video"
    assert set(ui.TRACE_FH_video.bl_file_extensions.split(";")) == {".mp4", ".mov", ".avi", ".mkv", ".webm"}
    assert ui.TRACE_FH_result.bl_import_operator == "trace.import_result"
    assert ui.TRACE_FH_result.bl_file_extensions == ".npz"
    for operator in (bpy.ops.trace.run_video, bpy.ops.trace.import_result):
        filepath = operator.get_rna_type().properties["filepath"]
        assert filepath.is_skip_save
    window = bpy.context.window_manager.windows[0]
    areas = {area.type: area for area in window.screen.areas}
    assert "VIEW_3D" in areas
    for area_type, expected in (("VIEW_3D", True), ("OUTLINER", False)):
        area = areas[area_type]
        region = next(r for r in area.regions if r.type == "WINDOW")
        with bpy.context.temp_override(window=window, area=area, region=region):
            assert ui.TRACE_FH_video.poll_drop(bpy.context) is expected
            assert ui.TRACE_FH_result.poll_drop(bpy.context) is expected
    assert ui.TRACE_FH_video.poll_drop(bpy.context) is False  # no area at all


def test_panels_draw_in_every_state(addon, tmp_path):
    layout = draw(ui.TRACE_PT_main)
    assert layout.operators() == ["trace.run_video"]
    assert draw(ui.TRACE_PT_import).operators() == ["trace.import_result"]
    assert "No people imported yet" in draw(ui.TRACE_PT_people).texts()
    export_layout = draw(ui.TRACE_PT_export)
    assert export_layout.operators() == ["trace.export_people"]
    assert ("set", "enabled", False) in export_layout.calls  # nothing to export yet

    result_path = write_result(tmp_path / "clip.npz", make_result(people=2, frames=10))
    assert bpy.ops.trace.import_result(filepath=str(result_path)) == {"FINISHED"}
    bpy.context.window_manager.trace_blender.status = "imported 2 people from clip.mp4"
    main = draw(ui.TRACE_PT_main)
    assert any(call[0] == "progress" for call in main.calls)
    people = draw(ui.TRACE_PT_people)
    assert people.operators() == ["trace.toggle_person", "trace.toggle_person"]
    toggles = [call for call in people.calls if call[0] == "operator"]
    assert [call[2]["text"] for call in toggles] == ["clip_person1", "clip_person2"]
    # An import selects what it made, as far as it is shown: person 2 (frames 4-13) is hidden at frame 1.
    bpy.context.view_layer.update()
    assert [call[2]["depress"] for call in toggles] == [True, False]
    assert "Last: clip.npz" in draw(ui.TRACE_PT_import).texts()
    assert ("set", "enabled", True) in draw(ui.TRACE_PT_export).calls

    prefs_layout = RecordingLayout()
    preferences.TRACE_AddonPreferences.draw(SimpleNamespace(layout=prefs_layout, python_path="", weights_dir="",
                                                            smpl_model_path="", device="auto", export_preset="unity",
                                                            frame_start=1, bl_rna=addon.bl_rna), bpy.context)
    assert "trace.check_core" in prefs_layout.operators()


def test_import_operator_and_its_errors(addon, tmp_path):
    result_path = write_result(tmp_path / "clip.npz", make_result(people=1, frames=12))
    addon.frame_start = 50
    assert bpy.ops.trace.import_result(filepath=str(result_path)) == {"FINISHED"}
    assert bpy.context.scene.frame_start == 50
    assert bpy.context.window_manager.trace_blender.result_path == str(result_path)
    before = scene_fingerprint(bpy)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(result_path.read_bytes()[:3000])
    with pytest.raises(RuntimeError, match="cannot read the TRACE result"):
        bpy.ops.trace.import_result(filepath=str(broken))
    with pytest.raises(RuntimeError, match="choose a result file"):
        bpy.ops.trace.import_result()  # background: INVOKE has no file browser, execute explains
    assert scene_fingerprint(bpy) == before


def test_toggle_and_export_operators(addon, tmp_path):
    result_path = write_result(tmp_path / "clip.npz", make_result(people=2, frames=8))
    bpy.ops.trace.import_result(filepath=str(result_path))
    first, second = tags.imported_people(bpy.context.scene)
    assert bpy.ops.trace.toggle_person(armature_name=first.name) == {"FINISHED"}
    assert not first.select_get() and not second.select_get()   # person 2 (frames 4-11) is hidden at frame 1
    assert bpy.ops.trace.toggle_person(armature_name=second.name) == {"FINISHED"}
    assert bpy.context.scene.frame_current == 4 and second.select_get() and not second.hide_viewport
    with pytest.raises(RuntimeError, match="no imported person"):
        bpy.ops.trace.toggle_person(armature_name="Cube")

    state = bpy.context.window_manager.trace_blender
    state.export_format, state.export_scope, state.export_per_person = "GLTF", "SELECTED", False
    state.export_path = str(tmp_path / "out" / "selected.glb")
    (tmp_path / "out").mkdir()
    assert bpy.ops.trace.export_people() == {"FINISHED"}
    assert (tmp_path / "out" / "selected.glb").is_file()
    state.export_format, state.export_scope, state.export_per_person = "PREFERENCES", "ALL", True
    addon.export_preset = "bvh"
    assert bpy.ops.trace.export_people(filepath=str(tmp_path / "out" / "all.bvh")) == {"FINISHED"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["all_clip_person1.bvh", "all_clip_person2.bvh",
                                                                    "selected.glb"]
    for ob in [second] + tags.bodies_of(second):
        ob.select_set(False)
    state.export_scope = "SELECTED"
    with pytest.raises(RuntimeError, match="no people to export"):
        bpy.ops.trace.export_people()


def test_run_operator_in_background_imports_the_result(addon, fake_python, tmp_path):
    addon.python_path = str(fake_python)
    addon.weights_dir = str(tmp_path / "weights")
    video = fake_video(tmp_path, "ok")
    assert bpy.ops.trace.run_video(filepath=str(video)) == {"FINISHED"}
    people = tags.imported_people(bpy.context.scene)
    assert len(people) == 2
    state = bpy.context.window_manager.trace_blender
    assert state.status == "imported 2 people from ok_clip.mp4" and state.progress == 1.0 and not state.running
    assert state.video_path == str(video)
    run_dirs = list((tmp_path / "runs").iterdir())
    assert len(run_dirs) == 1 and (run_dirs[0] / "result.npz").is_file()  # kept: the imported people refer to it
    import json
    argv = json.loads((run_dirs[0] / "argv.json").read_text())
    assert argv[argv.index("--weights") + 1] == str(tmp_path / "weights")
    assert ("--offline" in argv) == (not bpy.app.online_access)
    assert "--preview" in argv                                           # the panel can open the overlay video
    assert not {"--no-align", "--no-foot-cleanup", "--no-denoise", "--no-shot-detection"} & set(argv)   # all on by default


def test_world_toggles_reach_the_core_and_the_import(addon, fake_python, tmp_path):
    addon.python_path = str(fake_python)
    state = bpy.context.window_manager.trace_blender
    assert (state.align, state.foot_cleanup, state.denoise, state.shot_detection) == (True, True, True, True)
    main = draw(ui.TRACE_PT_main)
    assert [call[1][1] for call in main.calls if call[0] == "prop"] == ["video_path", "align", "denoise",
                                                                        "foot_cleanup", "shot_detection"]
    state.align, state.foot_cleanup, state.denoise, state.shot_detection = False, False, False, False
    assert bpy.ops.trace.run_video(filepath=str(fake_video(tmp_path, "ok"))) == {"FINISHED"}
    import json
    run_dir = next((tmp_path / "runs").iterdir())
    argv = json.loads((run_dir / "argv.json").read_text())
    assert argv[-4:] == ["--no-align", "--no-foot-cleanup", "--no-denoise", "--no-shot-detection"]

    raw, truth = world_scene(tmp_path / "no_video.mp4")
    path = write_result(tmp_path / "scene.npz", world_result_from_truth(raw, truth))
    assert bpy.ops.trace.import_result(filepath=str(path)) == {"FINISHED"}   # the panel's toggle: align off
    assert [item.aligned for item in state.shots] == [False, False]
    assert bpy.ops.trace.import_result(filepath=str(path), apply_alignment=True) == {"FINISHED"}  # explicit wins
    assert [item.aligned for item in state.shots] == [True, True]


def test_shots_panel_lists_views_and_reimports_shots(addon, tmp_path):
    state = bpy.context.window_manager.trace_blender
    assert "Import a result to list its shots" in draw(ui.TRACE_PT_shots).texts()
    raw, truth = world_scene(tmp_path / "no_video.mp4")
    path = write_result(tmp_path / "scene.npz", world_result_from_truth(raw, truth))
    assert bpy.ops.trace.import_result(filepath=str(path)) == {"FINISHED"}
    assert [(i.index, i.first_frame, i.last_frame, i.people, i.imported, i.aligned) for i in state.shots] == \
        [(0, 1, 60, 2, True, True), (1, 61, 90, 1, True, True)]
    assert [i.camera_name for i in state.shots] == ["scene_shot0_camera", "scene_shot1_camera"]
    layout = draw(ui.TRACE_PT_shots)
    assert layout.operators() == ["trace.view_shot", "trace.view_shot", "trace.view_shot", "trace.import_result"]
    assert {"Shot 0", "Shot 1", "1-60", "61-90", "Whole Video", "Import Selected Shots"} <= set(layout.texts())

    scene = bpy.context.scene
    assert bpy.ops.trace.view_shot(shot_index=1) == {"FINISHED"}
    assert (scene.frame_start, scene.frame_end, scene.frame_current) == (61, 90, 61)
    assert scene.camera.name == "scene_shot1_camera" and state.active_shot == 1
    assert bpy.ops.trace.view_shot(shot_index=0) == {"FINISHED"}
    assert (scene.frame_start, scene.frame_end, scene.camera.name) == (1, 60, "scene_shot0_camera")
    assert bpy.ops.trace.view_shot(shot_index=-1) == {"FINISHED"}
    assert (scene.frame_start, scene.frame_end) == (1, 90)
    with pytest.raises(RuntimeError, match="no shot 7 listed"):
        bpy.ops.trace.view_shot(shot_index=7)

    views = [op.properties for op in layout.operator_log if op.idname == "trace.view_shot"]
    assert views == [{"shot_index": 0}, {"shot_index": 1}, {"shot_index": -1}]
    state.shots[0].selected = False
    button = draw(ui.TRACE_PT_shots).operator_log[-1]
    assert button.idname == "trace.import_result"
    assert button.properties == {"filepath": str(path), "shots": "1", "replace_shots": True}
    # The panel's re-import replaces shot 1's person and camera: no copies, same names, shot 0 untouched.
    people_before = {ob.name: ob for ob in tags.imported_people(scene)}
    names_before = {kind: sorted(d.name for d in getattr(bpy.data, kind))
                    for kind in ("objects", "actions", "collections", "armatures", "cameras", "meshes")}
    old_person = next(ob for ob in people_before.values() if ob[tags.PROP_SHOT] == 1)
    old_person["marked"] = 1
    old_name = old_person.name
    assert bpy.ops.trace.import_result(filepath=str(path), shots="1", replace_shots=True) == {"FINISHED"}
    assert {kind: sorted(d.name for d in getattr(bpy.data, kind)) for kind in names_before} == names_before
    new_person = next(ob for ob in tags.imported_people(scene) if ob[tags.PROP_SHOT] == 1)
    assert new_person.name == old_name and "marked" not in new_person.keys()
    assert all(tags.imported_people(scene)[i] == people_before[name] for i, name in enumerate(sorted(people_before))
               if name != old_name)
    assert [m.camera.name for m in sorted(scene.timeline_markers, key=lambda m: m.frame)] == \
        ["scene_shot0_camera", "scene_shot1_camera"]
    # Shot 0's people are still in the scene: listed as imported (not selected for the next re-import).
    assert [(i.index, i.imported, i.selected, i.people) for i in state.shots] == [(0, True, False, 2), (1, True, True, 1)]
    assert (scene.frame_start, scene.frame_end) == (61, 90)
    # Without replace_shots (e.g. a script, or importing the file again) an import never touches earlier work.
    assert bpy.ops.trace.import_result(filepath=str(path), shots="1") == {"FINISHED"}
    assert len(tags.imported_people(scene)) == len(people_before) + 1
    with pytest.raises(RuntimeError, match="comma-separated shot numbers"):
        bpy.ops.trace.import_result(filepath=str(path), shots="first")
    with pytest.raises(RuntimeError, match="shot 3 does not exist"):
        bpy.ops.trace.import_result(filepath=str(path), shots="3")


def test_run_operator_reports_core_errors_and_partial_results(addon, fake_python, tmp_path):
    addon.python_path = str(fake_python)
    before = scene_fingerprint(bpy)
    with pytest.raises(RuntimeError, match="TRACE weights not found in /nowhere"):
        bpy.ops.trace.run_video(filepath=str(fake_video(tmp_path, "error")))
    assert scene_fingerprint(bpy) == before
    assert list((tmp_path / "runs").iterdir()) == []  # the failed run's folder is gone
    # Blender's terms first (background mode runs with Allow Online Access off), the core's details after.
    assert bpy.context.window_manager.trace_blender.status.startswith("failed: TRACE weights missing: turn on "
                                                                       "Preferences › System › Allow Online Access")
    assert bpy.ops.trace.run_video(filepath=str(fake_video(tmp_path, "partial"))) == {"FINISHED"}
    assert len(tags.imported_people(bpy.context.scene)) == 2
    with pytest.raises(RuntimeError, match="video not found"):
        bpy.ops.trace.run_video(filepath=str(tmp_path / "missing.mp4"))
    addon.python_path = str(tmp_path / "no_such_python")
    with pytest.raises(RuntimeError, match="does not exist"):
        bpy.ops.trace.run_video(filepath=str(fake_video(tmp_path, "ok")))


def test_run_operator_imports_a_result_saved_elsewhere(addon, fake_python, tmp_path):
    addon.python_path = str(fake_python)
    assert bpy.ops.trace.run_video(filepath=str(fake_video(tmp_path, "elsewhere"))) == {"FINISHED"}
    saved = tmp_path / "unsaved results" / "clip.20260102-030405.trace.npz"
    assert len(tags.imported_people(bpy.context.scene)) == 2
    state = bpy.context.window_manager.trace_blender
    assert state.result_path == str(saved) and state.status.endswith(f"(saved to {saved})")
    assert list((tmp_path / "runs").iterdir()) == []                 # the unusable run folder is gone


def test_cancel_operator_stops_a_running_job(addon, fake_python, tmp_path):
    addon.python_path = str(fake_python)
    assert not bpy.ops.trace.cancel_run.poll()
    job = operators.start_inference(bpy.context, fake_video(tmp_path, "slow"))
    deadline = time.monotonic() + 20
    while operators.update_progress(bpy.context, job) is runner.RunState.RUNNING and job.run.progress.stage != "smpl":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    main = draw(ui.TRACE_PT_main)
    assert main.operators() == ["trace.cancel_run"]
    assert "smpl 1/2 frames, 1.0/s, ETA 0:01" in main.texts()
    assert not bpy.ops.trace.run_video.poll()  # one run at a time
    assert bpy.ops.trace.cancel_run() == {"FINISHED"}
    assert job.run.state is runner.RunState.CANCELLED and not job.run.output_dir.exists()
    result, reports = operators.finish_inference(bpy.context, job)
    assert result == {"CANCELLED"} and ("WARNING", "TRACE run cancelled; its output was removed") in reports
    assert operators.active_job() is None and bpy.ops.trace.run_video.poll()
    assert tags.imported_people(bpy.context.scene) == []


def test_check_core_operator(addon, fake_python, tmp_path):
    addon.python_path = str(fake_python)
    assert bpy.ops.trace.check_core() == {"FINISHED"}
    addon.python_path = str(tmp_path / "nothing_here")
    with pytest.raises(RuntimeError, match="Set Preferences › Add-ons › TRACE › Python interpreter: .* does not exist"):
        bpy.ops.trace.check_core()


def test_modal_timer_path_tracks_progress_and_imports(addon, fake_python, tmp_path):
    """What the UI does after invoke(): timer events poll the run, then the result is imported."""
    addon.python_path = str(fake_python)
    wm = bpy.context.window_manager
    job = operators.start_inference(bpy.context, fake_video(tmp_path, "ok"))
    reports = []
    operator = SimpleNamespace(_job=job, _timer=wm.event_timer_add(0.25, window=wm.windows[0]),
                               report=lambda kind, message: reports.append((kind, message)))
    assert operators.TRACE_OT_run_video.modal(operator, bpy.context, SimpleNamespace(type="MOUSEMOVE")) == \
        {"PASS_THROUGH"}
    deadline = time.monotonic() + 30
    fractions = []
    while True:
        outcome = operators.TRACE_OT_run_video.modal(operator, bpy.context, SimpleNamespace(type="TIMER"))
        fractions.append(wm.trace_blender.progress)
        if outcome != {"PASS_THROUGH"}:
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert outcome == {"FINISHED"} and operator._job is None
    assert fractions[-1] == 1.0 and not wm.trace_blender.running
    assert ({"INFO"}, "imported 2 people from ok_clip.mp4") in reports
    assert len(tags.imported_people(bpy.context.scene)) == 2


def test_open_preview_button_when_the_run_wrote_one(addon, tmp_path):
    state = bpy.context.window_manager.trace_blender
    result = tmp_path / "clip.trace.npz"
    result.write_bytes(b"x")
    state.result_path = str(result)
    assert "trace.open_preview" not in draw(ui.TRACE_PT_import).operators()
    (tmp_path / "clip.preview.mp4").write_bytes(b"x")
    panel = draw(ui.TRACE_PT_import)
    assert "trace.open_preview" in panel.operators() and "Open Preview Video" in panel.texts()
    with pytest.raises(RuntimeError, match="no preview video"):
        bpy.ops.trace.open_preview(filepath=str(tmp_path / "absent.mp4"))


# ------------------------------------------------------------------------------------------------ layout
SIDEBAR_CONTENT_PX = 200   # the default sidebar (220 px at UI scale 1) less the panel margins
CHAR_PX, ICON_PX, PADDING_PX, FIELD_PX = 7, 22, 10, 80


def _element_px(call) -> int:
    """Rough width a layout element needs to show without clipping (Blender's default font, scale 1)."""
    name, args, kwargs = call
    if name not in ("label", "operator", "prop", "prop_search"):
        return 0
    icon = ICON_PX if kwargs.get("icon") not in (None, "NONE") else 0
    if name in ("label", "operator"):
        text = kwargs.get("text", "")
        return len(str(text)) * CHAR_PX + icon + PADDING_PX
    if name in ("prop", "prop_search"):
        text = kwargs.get("text")
        if text is None:                                  # the property's own name is shown
            prop = args[0].bl_rna.properties[args[1]]
            if prop.type == "BOOLEAN":
                return len(prop.name) * CHAR_PX + ICON_PX + PADDING_PX
            text = prop.name
        return len(str(text)) * CHAR_PX + icon + PADDING_PX + (FIELD_PX if name == "prop_search" or
                                                                kwargs.get("text") != "" else 20)
    return 0


def row_widths(layout: RecordingLayout) -> list[tuple[int, list[str]]]:
    """(estimated px, texts) per drawn row: the elements of one row() share it; others get a row each."""
    rows: dict[int, list] = {}
    order = []
    for call, owner in zip(layout.calls, layout.owners):
        width = _element_px(call)
        if not width:
            continue
        text = str(call[2].get("text", call[1][1] if call[0].startswith("prop") else ""))
        key = id(owner) if owner.kind == "row" else len(order) + 10 ** 9   # a lone element: its own row
        if key not in rows:
            rows[key] = [0, []]
            order.append(key)
        rows[key][0] += width
        rows[key][1].append(text)
    return [tuple(rows[key]) for key in order]


def test_no_row_is_wider_than_the_default_sidebar(addon, tmp_path):
    raw, truth = world_scene(tmp_path / "no_video.mp4")
    path = write_result(tmp_path / "scene.npz", world_result_from_truth(raw, truth))
    assert bpy.ops.trace.import_result(filepath=str(path)) == {"FINISHED"}
    state = bpy.context.window_manager.trace_blender
    state.shots[0].first_frame, state.shots[0].last_frame = 1001, 1190     # four-digit frames
    state.shots[1].floor_low_confidence = True
    from helpers import target_rigs as rigs
    from trace_blender.retarget import panel as retarget_panel

    settings = bpy.context.scene.trace_retarget
    settings.source = tags.imported_people(bpy.context.scene)[0]
    settings.target = rigs.build_armature(bpy, rigs.ue_like())
    assert bpy.ops.trace.retarget_find_bones() == {"FINISHED"}
    settings.show_map = True
    too_wide = []
    for panel in (ui.TRACE_PT_main, ui.TRACE_PT_import, ui.TRACE_PT_shots, ui.TRACE_PT_people, ui.TRACE_PT_export,
                  retarget_panel.TRACE_PT_retarget):
        for width, texts in row_widths(draw(panel)):
            if width > SIDEBAR_CONTENT_PX:
                too_wide.append((panel.__name__, width, texts))
    assert not too_wide, too_wide
    # The estimate is not lenient: the old shot row ("Shot 1: 1001-1190" and three icons) did not fit.
    old_row = [("prop", (state.shots[0], "selected"), {"text": ""}),
               ("operator", ("trace.view_shot",), {"text": "Shot 1: 1001-1190"}),
               ("label", (), {"text": "2", "icon": "ARMATURE_DATA"}), ("label", (), {"text": "", "icon": "BLANK1"}),
               ("label", (), {"text": "", "icon": "BLANK1"})]
    assert sum(_element_px(call) for call in old_row) > SIDEBAR_CONTENT_PX
    # Every field has a label (the video path above all).
    main = draw(ui.TRACE_PT_main)
    assert all(call[2].get("text") != "" for call in main.calls if call[0] == "prop" and call[1][1] == "video_path")
