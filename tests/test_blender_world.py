"""The world users animate in, on the Blender side (bpy 5.0 module): ground alignment, one camera per
shot with the footage behind it, foot contacts as curves, shots as frame ranges; the legacy (4.2/4.3)
keying path with a fake action.

The scene (tests/helpers/blender.py `world_scene`) has a known answer in Blender's world: two people
walking and one standing on the floor z = 0, filmed by a camera pitched 18 / 12 degrees and rolled
4 / -3 degrees that pans and dollies, a hard cut at frame 60. TRACE's view of it (every track in
the world of its first camera) is what the result stores; the import must undo that.
"""
from __future__ import annotations

import json
import math
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from helpers.blender import (planned_camera_matrices, WORLD_FOV_DEG, WORLD_SHOTS, WORLD_VIDEO_SIZE, evaluated_bone_heads,  # noqa: E402
                             expected_camera_matrices, reference_joints_blender, scene_fingerprint, sole_heights,
                             world_result_from_truth, world_scene, write_world_video)
from helpers.factories import make_result  # noqa: E402

from trace_format.npz import read_result, write_result  # noqa: E402
from trace_format import fk, skeleton  # noqa: E402
from core.world.ground import foot_joint_heights  # noqa: E402

from trace_blender import build, cli, frames, plan  # noqa: E402
from trace_blender.build import armature as armature_build  # noqa: E402
from trace_blender.build import keys, replace, tags  # noqa: E402
from trace_blender.errors import SceneBuildError, UsageError  # noqa: E402

FK_TOLERANCE_M = 1e-4
CAMERA_TOLERANCE = 1e-4
FEET_ON_FLOOR_M = 0.02
REST = skeleton.load_default_skeleton()
FOOT_HEIGHTS = foot_joint_heights(REST)          # [4] ankle/toe joints above the sole
FOOT_BONES = ("left_ankle", "right_ankle", "left_foot", "right_foot")   # SMPL joints 7, 8, 10, 11


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(folder, video path, raw result, truth, path of the v2 result written from the truth)."""
    folder = tmp_path_factory.mktemp("world")
    video = write_world_video(folder / "world.mp4", WORLD_SHOTS[-1][1])
    raw, truth = world_scene(video)
    path = write_result(folder / "world.npz", world_result_from_truth(raw, truth))
    return SimpleNamespace(folder=folder, video=video, raw=raw, truth=truth, path=path)


def armatures_by_track(context) -> dict[int, object]:
    return {int(ob[tags.PROP_TRACK_ID]): ob for ob in tags.imported_people(context.scene)}


def evaluated_soles(armature, scene_frame: int) -> np.ndarray:
    """Sole heights [2] (left, right) above z = 0 of the evaluated armature at a scene frame."""
    heads = evaluated_bone_heads(bpy, armature, scene_frame, FOOT_BONES)    # [4, 3]
    joints = np.zeros((1, 24, 3))
    joints[0, [7, 8, 10, 11]] = heads
    return sole_heights(joints, FOOT_HEIGHTS)[0]


def imported_cameras(scene) -> list:
    return sorted((ob for ob in scene.objects if ob.type == "CAMERA" and ob.get(tags.PROP_ROLE) == "camera"),
                  key=lambda ob: ob.name)


def channelbag_of(ob):
    return keys.assigned_curves(ob)


def curve_keys(curve) -> np.ndarray:
    coordinates = np.empty(2 * len(curve.keyframe_points), np.float32)
    curve.keyframe_points.foreach_get("co", coordinates)
    return coordinates.reshape(-1, 2)


def evaluated_camera_matrix(camera, scene_frame: int) -> np.ndarray:
    bpy.context.scene.frame_set(int(scene_frame))
    return np.array(camera.evaluated_get(bpy.context.evaluated_depsgraph_get()).matrix_world)


def test_aligned_import_feet_camera_contacts_and_shots(empty_scene, world):
    summary = build.import_result_file(world.path, bpy.context, plan.ImportOptions(frame_start=1))
    scene = bpy.context.scene
    armatures = armatures_by_track(bpy.context)
    assert sorted(armatures) == [1, 2, 3]

    # Feet on Blender's floor: every contact frame of every person, evaluated bone heads.
    worst_sole = 0.0
    for track_id, armature in armatures.items():
        known = world.truth["tracks"][track_id]
        first = int(world.raw.track(track_id).frames[0])
        contact_rows = np.flatnonzero(known["contacts"].any(axis=1))
        assert contact_rows.size >= 10
        for row in contact_rows[:: max(1, contact_rows.size // 12)]:
            soles = evaluated_soles(armature, 1 + first + int(row))
            planted = known["contacts"][row]
            worst_sole = max(worst_sole, float(np.abs(soles[planted]).max()))
        # ... and the whole body where the truth puts it (cleaned motion, registration, alignment).
        _, joints = fk.forward_kinematics(REST, known["clean_poses"])
        truth_joints = fk.place_by_hip_center(joints, known["clean_hips"])
        for row in (0, len(truth_joints) // 2, len(truth_joints) - 1):
            heads = evaluated_bone_heads(bpy, armature, 1 + first + row)
            assert np.abs(heads - truth_joints[row]).max() < FK_TOLERANCE_M, (track_id, row)
    assert worst_sole < FEET_ON_FLOOR_M
    print(f"worst sole height at contact frames: {worst_sole * 1000:.1f} mm")

    # Shots: own frame ranges, own collections and actions.
    assert [(s.index, s.first_frame, s.last_frame, s.aligned) for s in summary.shots] == [(0, 1, 60, True),
                                                                                        (1, 61, 90, True)]
    assert [s.people for s in summary.shots] == [["world_person1", "world_person2"], ["world_person3"]]
    assert (scene.frame_start, scene.frame_end) == (1, 90)
    assert [c.name for c in summary.collection.children] == ["world_shot0", "world_shot1"]
    assert armatures[3].users_collection[0].name in summary.collection.children["world_shot1"].children
    for track_id, shot in ((1, 0), (2, 0), (3, 1)):
        action = armatures[track_id].animation_data.action
        assert action.name == f"world_person{track_id}_shot{shot}_motion"
        keyed = curve_keys(channelbag_of(armatures[track_id]).fcurves.find('pose.bones["pelvis"].location',
                                                                            index=0))[:, 0]
        start, stop = WORLD_SHOTS[shot]
        assert start + 1 <= keyed.min() and keyed.max() <= stop  # inside the shot's scene range

    # Contacts: 0/1 custom properties keyed with constant interpolation, equal to the stored contacts.
    for track_id, armature in armatures.items():
        known = world.truth["tracks"][track_id]["contacts"]
        bag = channelbag_of(armature)
        for side, prop in enumerate((tags.PROP_CONTACT_LEFT, tags.PROP_CONTACT_RIGHT)):
            assert prop in armature.keys()
            curve = bag.fcurves.find(f'["{prop}"]')
            keys = curve_keys(curve)
            np.testing.assert_array_equal(keys[:, 1], known[:, side].astype(np.float32))
            assert {k.interpolation for k in curve.keyframe_points} == {"CONSTANT"}
            assert curve.group.name == armature_build.CONTACT_GROUP
        row = int(np.flatnonzero(known[:, 0] != known[0, 0])[0]) if np.any(known[:, 0] != known[0, 0]) else 0
        scene.frame_set(1 + int(world.raw.track(track_id).frames[row]))
        assert armature[tags.PROP_CONTACT_LEFT] == int(known[row, 0])

    # One camera per shot: animated, exact pose, lens, footage behind it.
    cameras = imported_cameras(scene)
    assert [c.name for c in cameras] == ["world_shot0_camera", "world_shot1_camera"]
    assert [s.camera for s in summary.shots] == cameras
    for shot, camera in enumerate(cameras):
        expected = expected_camera_matrices(world.truth, shot)
        start, stop = WORLD_SHOTS[shot]
        for row in (0, 7, (stop - start) // 2, stop - start - 1):
            actual = evaluated_camera_matrix(camera, 1 + start + row)
            assert np.abs(actual - expected[row]).max() < CAMERA_TOLERANCE, (shot, row)
        bag = channelbag_of(camera)
        assert len(curve_keys(bag.fcurves.find("location", index=0))) == stop - start
        interpolated = curve_keys(bag.fcurves.find(f'["{tags.PROP_CAMERA_INTERPOLATED}"]'))[:, 1]
        assert interpolated.sum() == (4 if shot == 0 else 0)
        data = camera.data
        assert data.lens == pytest.approx(0.5 * 36.0 / math.tan(math.radians(WORLD_FOV_DEG) / 2), abs=1e-4)  # 38.6
        assert data.sensor_fit == "HORIZONTAL" and data.sensor_width == pytest.approx(36.0)
        assert math.degrees(data.angle_x) == pytest.approx(WORLD_FOV_DEG, abs=1e-3)  # the longer (width) side
        assert data.show_background_images and len(data.background_images) == 1
        background = data.background_images[0]
        assert background.source == "MOVIE_CLIP" and background.clip == summary.clip
        assert not background.use_camera_clip
    clip = summary.clip
    assert bpy.path.abspath(clip.filepath) == str(world.video)
    assert clip.frame_duration == WORLD_SHOTS[-1][1] and clip.frame_start == 1   # video frame i at scene frame 1 + i
    assert tuple(clip.size) == WORLD_VIDEO_SIZE
    assert (scene.render.resolution_x, scene.render.resolution_y) == WORLD_VIDEO_SIZE
    assert scene.render.resolution_percentage == 100
    # Playback switches cameras at the cut (timeline markers bound to the shot cameras).
    markers = sorted((m.frame, m.name, m.camera.name) for m in scene.timeline_markers)
    assert markers == [(1, "shot 0", "world_shot0_camera"), (61, "shot 1", "world_shot1_camera")]
    scene.frame_set(75)
    assert scene.camera == cameras[1]
    scene.frame_set(10)
    assert scene.camera == cameras[0]


def test_alignment_and_cleanup_can_be_turned_off(empty_scene, world, capsys):
    assert cli.main(["import", str(world.path), "--no-align", "--raw-motion", "--frame-start", "101"]) == 0
    printed = capsys.readouterr().out
    assert "shot 0: scene frames 101-160, 2 people, not aligned, camera world_shot0_camera" in printed
    result = read_result(world.path)
    armatures = armatures_by_track(bpy.context)
    swap = frames.trace_to_blender_transform()
    for track in result.tracks:
        # Raw motion (legs and hips as TRACE gave them), registered into the shot's world, fixed (x, z, -y).
        _, joints = fk.forward_kinematics(REST, track.world_poses(cleaned=False).astype(np.float64))
        placed = fk.place_by_hip_center(joints, track.hip_center_world.astype(np.float64))
        expected = frames.map_points(swap @ track.registration, placed)
        for row in (0, track.num_frames - 1):
            heads = evaluated_bone_heads(bpy, armatures[track.track_id], 101 + int(track.frames[row]))
            assert np.abs(heads - expected[row]).max() < FK_TOLERANCE_M
        # The raw motion really differs from the cleaned one (the skate is back).
        clean = frames.map_points(swap @ track.registration, fk.place_by_hip_center(
            fk.forward_kinematics(REST, track.world_poses().astype(np.float64))[1],
            track.clean_hip_center_world.astype(np.float64)))
        assert np.abs(clean - expected).max() > 0.02
    camera = bpy.data.objects["world_shot1_camera"]
    path = result.scene_camera.for_shot(1)
    expected = np.eye(4)
    expected[:3, :3] = swap[:3, :3] @ path.rotations[3].astype(np.float64) @ np.diag([1.0, -1.0, -1.0])
    expected[:3, 3] = swap[:3, :3] @ path.positions[3].astype(np.float64)
    assert np.abs(evaluated_camera_matrix(camera, 101 + int(path.frames[3])) - expected).max() < CAMERA_TOLERANCE
    assert bpy.data.movieclips[0].frame_start == 101


def test_shot_selection_imports_chosen_shots_only(empty_scene, world, capsys):
    assert cli.main(["import", str(world.path), "--shot", "1"]) == 0
    scene = bpy.context.scene
    assert sorted(armatures_by_track(bpy.context)) == [3]
    assert (scene.frame_start, scene.frame_end) == (61, 90)
    assert [c.name for c in imported_cameras(scene)] == ["world_shot1_camera"]
    assert scene.camera.name == "world_shot1_camera" and len(scene.timeline_markers) == 0

    bpy.ops.wm.read_factory_settings(use_empty=True)
    summary = build.import_result_file(world.path, bpy.context, plan.ImportOptions(shots=[0, 1]))
    assert [s.index for s in summary.shots] == [0, 1] and len(summary.people) == 3
    with pytest.raises(UsageError, match="shot 4 does not exist.*shots 0, 1"):
        build.import_result_file(world.path, bpy.context, plan.ImportOptions(shots=[4]))
    capsys.readouterr()
    assert cli.main(["import", str(world.path), "--shot", "4"]) == 2
    assert "shot 4 does not exist" in capsys.readouterr().err


def test_missing_video_is_a_warning_not_a_failure(empty_scene, world, tmp_path):
    moved = tmp_path / "elsewhere.npz"
    moved.write_bytes(world.path.read_bytes())
    result = read_result(moved)
    result.video.path = str(tmp_path / "gone" / "footage.mp4")
    summary = build.import_result(result, bpy.context, source_path=moved)
    assert any("source video not found" in w and "footage.mp4" in w for w in summary.warnings)
    assert summary.clip is None and len(bpy.data.movieclips) == 0
    cameras = imported_cameras(bpy.context.scene)
    assert len(cameras) == 2 and all(len(c.data.background_images) == 0 for c in cameras)
    # A video that moved next to the result is found there; --video names it explicitly.
    (tmp_path / "footage.mp4").write_bytes(world.video.read_bytes())
    summary = build.import_result(result, bpy.context, source_path=moved)
    assert summary.clip is not None and bpy.path.abspath(summary.clip.filepath) == str(tmp_path / "footage.mp4")
    summary = build.import_result(result, bpy.context, plan.ImportOptions(video_path=str(world.video)),
                                     source_path=moved)
    assert bpy.path.abspath(summary.clip.filepath) == str(world.video)


def test_lens_spans_the_longer_side_and_shot_lists_parse():
    fov = WORLD_FOV_DEG
    focal_1920 = 960.0 / math.tan(math.radians(fov) / 2)        # pixels, FOV across 1920
    for width, height, fit in ((1920, 1080, "HORIZONTAL"), (1080, 1920, "VERTICAL")):
        lens = frames.lens_settings(fov, focal_1920, width, height)
        assert (lens.sensor_fit, lens.sensor_mm) == (fit, 36.0)
        assert lens.lens_mm == pytest.approx(38.6, abs=0.01) and lens.fov_deg == pytest.approx(fov)
        data = bpy.data.cameras.new("lens_probe")
        try:
            data.sensor_fit, data.sensor_width, data.sensor_height, data.lens = fit, 36.0, 36.0, lens.lens_mm
            longer_side_angle = data.angle_x if fit == "HORIZONTAL" else data.angle_y
            assert math.degrees(longer_side_angle) == pytest.approx(fov, abs=1e-4)
        finally:
            bpy.data.cameras.remove(data)
    assert frames.lens_settings(fov, 1000.0, 1920, 1080).lens_mm == pytest.approx(1000.0 * 36 / 1920)
    unknown = frames.lens_settings(fov, None, 0, 0)           # official results: size unknown
    assert unknown.sensor_fit == "AUTO" and unknown.lens_mm == pytest.approx(38.6, abs=0.01)
    assert plan.parse_shot_list("") is None and plan.parse_shot_list(" all ") is None
    assert plan.parse_shot_list("2, 0;1") == [2, 0, 1]
    for bad in ("one", "1,-2"):
        with pytest.raises(plan.ShotSelectionError):
            plan.parse_shot_list(bad)


def test_failed_world_import_removes_cameras_clip_and_markers(empty_scene, world, monkeypatch):
    build.import_result_file(world.path, bpy.context)          # existing work, with its own cameras
    scene = bpy.context.scene
    scene.render.resolution_x = 333
    scene.camera = bpy.data.objects["world_shot1_camera"]
    before = scene_fingerprint(bpy)
    original = build._set_render_size

    def failing_render_size(scene_, result_):   # the last step: cameras, clip and markers exist by now
        original(scene_, result_)
        assert len(scene_.timeline_markers) == 4 and len(bpy.data.movieclips) == 2
        raise RuntimeError("simulated failure after the cameras")

    monkeypatch.setattr(build, "_set_render_size", failing_render_size)
    with pytest.raises(SceneBuildError, match="simulated failure.*nothing was added"):
        build.import_result_file(world.path, bpy.context)
    assert scene_fingerprint(bpy) == before
    assert before["render_size"][0] == 333 and before["scene_camera"] == "world_shot1_camera"
    assert len(before["markers"]) == 2 and len(before["movieclips"]) == 1
    # A failing replacing re-import: the shots it would replace keep their objects and names.
    monkeypatch.setattr(build, "_set_render_size", lambda scene_, result_: 1 / 0)   # fails after the cameras
    with pytest.raises(SceneBuildError, match="ZeroDivisionError.*nothing was added"):
        build.import_result_file(world.path, bpy.context, plan.ImportOptions(shots=[1], replace_shots=True))
    assert scene_fingerprint(bpy) == before
    assert not [d.name for kind in ("objects", "actions", "collections") for d in getattr(bpy.data, kind)
                if d.name.endswith(replace.ASIDE_SUFFIX)]


def test_world_processing_end_to_end(empty_scene, world, tmp_path):
    """TRACE's raw view -> core.world.postprocess.apply_world_processing -> file -> Blender."""
    postprocess = pytest.importorskip("core.world.postprocess")
    processed = postprocess.apply_world_processing(world.raw, cut_frames=[WORLD_SHOTS[1][0]])
    path = write_result(tmp_path / "processed.npz", processed)
    summary = build.import_result_file(path, bpy.context)
    assert [(s.first_frame, s.last_frame, s.aligned) for s in summary.shots] == [(1, 60, True), (61, 90, True)]
    armatures = armatures_by_track(bpy.context)
    worst = 0.0
    for track in processed.tracks:
        rows = np.flatnonzero(track.contacts.any(axis=1))
        assert rows.size >= 10
        for row in rows[:: max(1, rows.size // 8)]:
            soles = evaluated_soles(armatures[track.track_id], 1 + int(track.frames[row]))
            worst = max(worst, float(np.abs(soles[track.contacts[row]]).max()))
    assert worst < FEET_ON_FLOOR_M
    print(f"end to end: worst sole height at contact frames {worst * 1000:.1f} mm")
    for shot in (0, 1):
        camera_frames, matrices = planned_camera_matrices(processed)[shot]
        camera = bpy.data.objects[f"processed_shot{shot}_camera"]
        for row in (0, len(camera_frames) - 1):
            actual = evaluated_camera_matrix(camera, 1 + int(camera_frames[row]))
            assert np.abs(actual - matrices[row]).max() < CAMERA_TOLERANCE
        # ... and that camera is the true one (estimated from the people, smoothed: centimetres; the
        # height follows the floor fitted to these sliding walkers' soles: 1.9-2.2 cm off, raw or denoised).
        truth = expected_camera_matrices(world.truth, shot)
        assert np.abs(matrices[:, :3, 3] - truth[:, :3, 3]).max() < 0.025
    assert not any("feet were cleaned" in w for w in summary.warnings)
    # Cleaned on the default skeleton, imported on an SMPL body: said, not hidden.
    from helpers.synthetic_smpl import write_synthetic_smpl_pkl

    model = write_synthetic_smpl_pkl(tmp_path / "SMPL_SYNTHETIC.pkl")
    summary = build.import_result_file(path, bpy.context, plan.ImportOptions(smpl_model_path=str(model),
                                                                                    build_camera=False))
    assert any("feet were cleaned on the default skeleton" in w for w in summary.warnings)


def write_version_1(path, result) -> None:
    """Rewrite a freshly written file in the version 1 layout (no v2 members, version 1 metadata)."""
    write_result(path, result)
    with np.load(path, allow_pickle=False) as archive:
        members = {name: archive[name] for name in archive.files}
    meta = json.loads(str(members.pop("meta_json")[()]))
    for key in ("shots", "world_processing"):
        meta.pop(key, None)
    meta["version"] = 1
    for name in [n for n in members if n.startswith("track_shots") or n.startswith("track_registrations")
                 or n.startswith("camera_")]:
        members.pop(name)
    np.savez(path, meta_json=np.array(json.dumps(meta)), **members)
    with zipfile.ZipFile(path) as archive:
        assert "track_shots.npy" not in archive.namelist()


def test_version_1_results_import_as_before(empty_scene, tmp_path):
    result = make_result(people=2, frames=40, seed=6)
    path = tmp_path / "old.npz"
    write_version_1(path, result)
    assert read_result(path).format_version == 1
    summary = build.import_result_file(path, bpy.context)
    assert [(s.index, s.first_frame, s.last_frame, s.aligned, s.camera) for s in summary.shots] == \
        [(0, 1, 43, False, None)]
    assert any("no scene camera" in w for w in summary.warnings)
    assert imported_cameras(bpy.context.scene) == [] and len(bpy.context.scene.timeline_markers) == 0
    armatures = armatures_by_track(bpy.context)
    for track in result.tracks:
        expected = reference_joints_blender(track, REST)   # the fixed (x, z, -y) mapping
        for row in (0, 39):
            heads = evaluated_bone_heads(bpy, armatures[track.track_id], 1 + int(track.frames[row]))
            assert np.abs(heads - expected[row]).max() < FK_TOLERANCE_M
        assert tags.PROP_CONTACT_LEFT not in armatures[track.track_id].keys()   # no contacts stored


# ------------------------------------------------------------------------------------------------ Blender 4.2/4.3
class FakeKeyframePoints:
    def __init__(self) -> None:
        self.count, self.arrays = 0, {}

    def add(self, count: int) -> None:
        self.count += count

    def foreach_set(self, name: str, values) -> None:
        self.arrays[name] = np.array(values)


class FakeCurve:
    def __init__(self, data_path: str, index: int, group: str) -> None:
        self.data_path, self.array_index, self.group = data_path, index, group
        self.keyframe_points = FakeKeyframePoints()
        self.updated = False

    def update(self) -> None:
        self.updated = True


class FakeLegacyCurves(list):
    def new(self, data_path: str, index: int = 0, action_group: str = "") -> FakeCurve:
        curve = FakeCurve(data_path, index, action_group)
        self.append(curve)
        return curve


class FakeLegacyAction:
    """A Blender 4.2/4.3 action: F-curves on the action itself, no slots."""

    def __init__(self) -> None:
        self.fcurves = FakeLegacyCurves()


class FakeIdProperties(dict):
    def id_properties_ui(self, name: str):
        assert name in self
        return SimpleNamespace(update=lambda **settings: None)


def test_legacy_actions_key_through_action_fcurves():
    """Without action slots (Blender 4.2/4.3) the same bulk fill goes to action.fcurves."""
    action = FakeLegacyAction()
    animation_data = SimpleNamespace(action=None)
    armature = FakeIdProperties()
    armature.name = "person1"
    armature.animation_data_create = lambda: animation_data
    armature.animation_data = animation_data
    count = 5
    quaternions = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (count, 24, 1))
    quaternions[:, 3, 1] = np.linspace(0.0, 0.4, count)
    root = np.arange(count * 3, dtype=np.float64).reshape(count, 3)
    contacts = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 1]], np.float32)
    scene_frames = np.arange(10, 10 + count, dtype=np.float64)

    assert not keys.uses_layered_actions(action)
    returned = armature_build.key_armature(armature, quaternions, root, scene_frames, contacts=contacts, action=action)
    assert returned is action and animation_data.action is action
    assert not hasattr(animation_data, "action_slot")          # legacy actions have no slots to assign
    curves = {(c.data_path, c.array_index): c for c in action.fcurves}
    assert len(curves) == 3 + 24 * 4 + 2
    assert all(c.updated and c.keyframe_points.count == count for c in action.fcurves)
    location_y = curves[('pose.bones["pelvis"].location', 1)]
    assert location_y.group == "pelvis"
    np.testing.assert_array_equal(location_y.keyframe_points.arrays["co"].reshape(-1, 2),
                                  np.stack([scene_frames, root[:, 1]], 1).astype(np.float32))
    spine_x = curves[('pose.bones["spine1"].rotation_quaternion', 1)]
    np.testing.assert_allclose(spine_x.keyframe_points.arrays["co"][1::2], quaternions[:, 3, 1], atol=1e-7)
    np.testing.assert_array_equal(spine_x.keyframe_points.arrays["interpolation"], np.ones(count))   # LINEAR
    right = curves[(f'["{tags.PROP_CONTACT_RIGHT}"]', 0)]
    assert right.group == armature_build.CONTACT_GROUP
    np.testing.assert_array_equal(right.keyframe_points.arrays["co"][1::2], contacts[:, 1])
    np.testing.assert_array_equal(right.keyframe_points.arrays["interpolation"], np.zeros(count))   # CONSTANT
    assert armature[tags.PROP_CONTACT_LEFT] == 0 and armature[tags.PROP_CONTACT_RIGHT] == 0


def test_running_blender_uses_layered_actions():
    """Blender 4.4+ (5.0 is the tested reference) has slots: the layered path is taken there; 4.2/4.3 the legacy one."""
    action = bpy.data.actions.new("probe")
    try:
        assert keys.uses_layered_actions(action) is (bpy.app.version >= (4, 4, 0))
    finally:
        bpy.data.actions.remove(action)


def test_people_and_cameras_show_only_during_their_own_frames(empty_scene, world):
    summary = build.import_result_file(world.path, bpy.context, plan.ImportOptions(frame_start=1))
    by_track = {person.track_id: person for person in summary.people}
    cameras = {shot.index: shot.camera for shot in summary.shots}
    scene = bpy.context.scene

    def shown(ob):
        return not ob.hide_viewport and not ob.hide_render

    # (scene frame, people shown, shot camera shown): person 2 enters at video frame 12; shot 1 is 60-89.
    for frame, people, camera in ((1, {1}, 0), (13, {1, 2}, 0), (60, {1, 2}, 0), (61, {3}, 1), (90, {3}, 1)):
        scene.frame_set(frame)
        for track_id, person in by_track.items():
            expected = track_id in people
            assert shown(person.armature) is expected and shown(person.body) is expected, (frame, track_id)
            assert person.armature.visible_get() is expected
        for index, ob in cameras.items():
            assert shown(ob) is (index == camera), (frame, index)
    # Simple expressions: they run without Python, so files opened with auto-run off behave the same.
    drivers = [d for p in summary.people for ob in (p.armature, p.body) for d in ob.animation_data.drivers]
    assert len(drivers) == 4 * len(summary.people) and all(d.driver.is_simple_expression for d in drivers)
