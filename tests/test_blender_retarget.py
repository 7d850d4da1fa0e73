"""Retarget in Blender (bpy 5.0 module): an imported walking TRACE person baked onto target rigs built
in the test (Mixamo-like A-pose Y-up centimetres, UE-like random bone axes facing +Y, Rigify metarig,
VRM); world limb directions and planted feet checked on the evaluated target armature."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from helpers import target_rigs as rigs  # noqa: E402
from helpers.blender import _to_track_world  # noqa: E402

from trace_blender import frames  # noqa: E402
from trace_format.schema import CameraInfo, TraceResult, TrackResult, VideoInfo  # noqa: E402
from trace_blender import build  # noqa: E402
from trace_blender.errors import RetargetError  # noqa: E402
from trace_blender.retarget import bake, bone_maps, solve  # noqa: E402

DIRECTION_TOLERANCE_DEG = 2.0
FLOOR_TOLERANCE_M = 0.02
FAMILIES = {"mixamo": rigs.mixamo_like, "ue5": rigs.ue_like, "rigify": rigs.rigify_metarig_like, "vrm": rigs.vrm_like}
FRAME_COUNT = 45


def walking_result() -> tuple[TraceResult, np.ndarray]:
    """One person walking on the floor (Blender world = the fixed TRACE -> Blender swap), and its stance [T, 2]."""
    poses, hips, stance = rigs.walking_motion(FRAME_COUNT)
    orient, hips_world = _to_track_world(frames.trace_to_blender_transform(), poses, hips)
    raw = np.array(poses)
    raw[:, 0] = orient
    video_frames = np.arange(FRAME_COUNT)
    track = TrackResult(track_id=1, frames=video_frames, times=video_frames / 30.0, poses=raw,
                        global_orient_world=orient, betas=np.zeros((FRAME_COUNT, 10)), hip_center_cam=hips_world,
                        hip_center_world=hips_world, confidence=np.full(FRAME_COUNT, 0.9),
                        observed=np.ones(FRAME_COUNT, bool), center_2d=np.full((FRAME_COUNT, 2), 100.0))
    result = TraceResult(tracks=[track], video=VideoInfo(path="walk.mp4", fps=30.0, width=640, height=480,
                                                         frame_count=FRAME_COUNT),
                         camera=CameraInfo(fov_deg=50.0), notes=[])
    return result, stance


def import_person(context):
    result, stance = walking_result()
    build.import_result(result, context, build.ImportOptions(build_camera=False))
    (person,) = build.imported_people(context.scene)
    return person, stance


def evaluated_heads(armature, names, frame):
    bpy.context.scene.frame_set(frame)
    evaluated = armature.evaluated_get(bpy.context.evaluated_depsgraph_get())
    world = np.array(evaluated.matrix_world)
    heads = np.array([list(evaluated.pose.bones[n].head) + [1.0] for n in names])
    return (heads @ world.T)[:, :3]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_bake_matches_source_limb_directions_and_keeps_feet_planted(empty_scene, family):
    person, stance = import_person(empty_scene)
    spec = FAMILIES[family]()
    target = rigs.build_armature(bpy, spec)
    rig = bake.rig_from_armature(target)
    bone_map = bone_maps.make_map("auto", rig.names, rig.parents)
    assert bone_map == spec.smpl_to_bone
    report = bake.bake(person, target, bone_map)
    assert report.frames == (1, FRAME_COUNT) and report.previous_action is None and not report.warnings
    action = target.animation_data.action
    assert action.name == report.action and action[bake.PROP_RETARGET_SOURCE] == person.name

    joints = [j for j, child in solve.DIRECTION_CHILD.items() if child and j in bone_map and child in bone_map]
    assert len(joints) >= 17
    target_bones = [bone_map[j] for j in bone_maps.SMPL_JOINTS if j in bone_map]
    mapped = [j for j in bone_maps.SMPL_JOINTS if j in bone_map]
    floor = solve.rest_floor(rig, {j: rig.index[b] for j, b in bone_map.items()})
    rest = rig.rest_heads_world()
    worst_angle, worst_sole = 0.0, 0.0
    for frame in range(1, FRAME_COUNT + 1, 4):
        source = dict(zip(mapped, evaluated_heads(person, mapped, frame)))
        moved = dict(zip(mapped, evaluated_heads(target, target_bones, frame)))
        for joint in joints:
            child = solve.DIRECTION_CHILD[joint]
            a, b = source[child] - source[joint], moved[child] - moved[joint]
            cosine = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
            worst_angle = max(worst_angle, float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))))
        for side_index, side in enumerate(("left", "right")):
            if stance[frame - 1, side_index]:
                sole = min(moved[j][2] - (rest[rig.index[bone_map[j]], 2] - floor) for j in solve.FOOT_POINTS[side])
                worst_sole = max(worst_sole, abs(sole))
    print(f"{family}: worst limb direction {worst_angle:.4f} deg, worst planted sole {1000 * worst_sole:.1f} mm")
    assert worst_angle < DIRECTION_TOLERANCE_DEG, worst_angle
    assert 0.0 < worst_sole < FLOOR_TOLERANCE_M, worst_sole


def test_rotation_modes_and_existing_action_are_respected(empty_scene):
    person, _ = import_person(empty_scene)
    spec = rigs.mixamo_like()
    target = rigs.build_armature(bpy, spec)
    target.pose.bones["mixamorig:LeftArm"].rotation_mode = "XZY"
    target.pose.bones["mixamorig:Spine"].rotation_mode = "AXIS_ANGLE"
    earlier = bpy.data.actions.new("MyIdle")
    target.animation_data_create().action = earlier
    report = bake.bake(person, target, spec.smpl_to_bone)
    assert report.previous_action == "MyIdle" and earlier.use_fake_user
    assert target.animation_data.action.name == report.action != "MyIdle"
    paths = {curve.data_path for curve in bake.action_fcurves(target)}
    assert 'pose.bones["mixamorig:LeftArm"].rotation_euler' in paths
    assert 'pose.bones["mixamorig:Spine"].rotation_axis_angle' in paths
    assert 'pose.bones["mixamorig:Hips"].location' in paths
    assert 'pose.bones["mixamorig:LeftArm"].location' not in paths
    # The Euler-keyed arm reaches the same world direction as the source's.
    heads = evaluated_heads(target, ["mixamorig:LeftArm", "mixamorig:LeftForeArm"], 20)
    source = evaluated_heads(person, ["left_shoulder", "left_elbow"], 20)
    a, b = heads[1] - heads[0], source[1] - source[0]
    assert np.degrees(np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b))) < DIRECTION_TOLERANCE_DEG


def test_refusals_leave_the_file_unchanged(empty_scene, tmp_path):
    person, _ = import_person(empty_scene)
    tentacle = rigs.build_armature(bpy, rigs.not_humanoid())
    actions = sorted(a.name for a in bpy.data.actions)
    rig = bake.rig_from_armature(tentacle)
    with pytest.raises(RetargetError) as caught:
        bake.bake(person, tentacle, bone_maps.make_map("auto", rig.names, rig.parents))
    assert "not mapped: pelvis" in str(caught.value)
    with pytest.raises(RetargetError, match="the TRACE person itself"):
        bake.bake(person, person, {})
    with pytest.raises(RetargetError, match="imported TRACE person as the source"):
        bake.bake(tentacle, tentacle, {})
    assert sorted(a.name for a in bpy.data.actions) == actions and tentacle.animation_data is None

    # A rig linked from another file cannot be keyed here: refused with what to do.
    spec = rigs.vrm_like()
    linked_source = rigs.build_armature(bpy, spec)
    library = tmp_path / "character.blend"
    bpy.data.libraries.write(str(library), {linked_source})
    bpy.data.objects.remove(linked_source)
    with bpy.data.libraries.load(str(library), link=True) as (source_data, linked_data):
        linked_data.objects = [spec.name]
    linked = linked_data.objects[0]
    bpy.context.scene.collection.objects.link(linked)
    with pytest.raises(RetargetError, match="library override"):
        bake.bake(person, linked, spec.smpl_to_bone)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_armature_reads_back_as_the_rig_the_math_tests_use(empty_scene, family):
    spec = FAMILIES[family]()
    expected = rigs.spec_to_rig(spec)
    got = bake.rig_from_armature(rigs.build_armature(bpy, spec))
    assert sorted(got.names) == sorted(expected.names)
    order = [got.index[name] for name in expected.names]          # Blender stores bones parents first
    parent_names = [got.names[p] if p >= 0 else None for p in np.array(got.parents)[order]]
    assert parent_names == [expected.names[p] if p >= 0 else None for p in expected.parents]
    np.testing.assert_allclose(got.rest[order], expected.rest, atol=1e-4)
    np.testing.assert_allclose(got.tails[order], expected.tails, atol=1e-4)
    np.testing.assert_allclose(got.object_matrix, expected.object_matrix, atol=1e-6)
    assert tuple(np.array(got.connected)[order]) == expected.connected


# ------------------------------------------------------------------------------------------------ panel
@pytest.fixture()
def addon():
    """The add-on enabled through Blender's add-on manager on a clean scene."""
    import addon_utils

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("trace_blender", default_set=True)
    yield bpy.context
    addon_utils.disable("trace_blender", default_set=True)


def test_panel_finds_edits_saves_loads_and_bakes_the_map(addon, tmp_path):
    from types import SimpleNamespace

    from helpers.blender import RecordingLayout
    from trace_blender.retarget import panel

    person, _ = import_person(addon)
    spec = rigs.ue_like()
    target = rigs.build_armature(bpy, spec)
    settings = addon.scene.trace_retarget
    settings.source, settings.target = person, target
    assert bpy.ops.trace.retarget_find_bones() == {"FINISHED"}
    assert panel.current_map(settings) == spec.smpl_to_bone
    assert [item.joint for item in settings.bones] == list(bone_maps.SMPL_JOINTS)

    # An edited map with a limb missing: refused, names the joint, the map stays for editing, no action.
    next(item for item in settings.bones if item.joint == "left_elbow").bone = ""
    with pytest.raises(RuntimeError, match="not mapped: left_elbow"):
        bpy.ops.trace.retarget_bake()
    assert target.animation_data is None and settings.show_map
    layout = RecordingLayout()
    panel.TRACE_PT_retarget.draw(SimpleNamespace(layout=layout), addon)
    searches = [call for call in layout.calls if call[0] == "prop_search"]
    assert [call[2]["text"] for call in searches] == list(bone_maps.SMPL_JOINTS)
    assert ("set", "alert", True) in layout.calls     # the unmapped required joint is shown in red
    assert {"trace.retarget_find_bones", "trace.retarget_bake", "trace.retarget_save_preset",
            "trace.retarget_load_preset", "trace.retarget_export"} <= set(layout.operators())

    next(item for item in settings.bones if item.joint == "left_elbow").bone = "lowerarm_l"
    preset = tmp_path / "ue_like.json"
    assert bpy.ops.trace.retarget_save_preset(filepath=str(preset)) == {"FINISHED"}
    panel.set_map(settings, {})
    assert bpy.ops.trace.retarget_load_preset(filepath=str(preset)) == {"FINISHED"}
    assert panel.current_map(settings) == spec.smpl_to_bone

    assert bpy.ops.trace.retarget_bake() == {"FINISHED"}
    action = target.animation_data.action
    assert action[bake.PROP_RETARGET_SOURCE] == person.name
    assert len(bake.action_fcurves(target)) > 4 * len(spec.smpl_to_bone)

    out = tmp_path / "character.glb"
    selected = {o.name for o in bpy.context.selected_objects}
    assert bpy.ops.trace.retarget_export(filepath=str(out), export_format="GLTF") == {"FINISHED"}
    assert out.is_file() and out.stat().st_size > 1000
    assert {o.name for o in bpy.context.selected_objects} == selected   # the selection is restored
    if bpy.app.version < (4, 4, 0):
        # Known open bug (issue 11): on bpy 4.2.23 the re-imported GLB is 1.03 m off at frame 20.
        pytest.xfail("GLB round trip of a retargeted character not yet right on Blender < 4.4")
    expected = evaluated_heads(target, [spec.smpl_to_bone["left_ankle"], spec.smpl_to_bone["head"]], 20)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = 30
    bpy.ops.import_scene.gltf(filepath=str(out), disable_bone_shape=True)
    imported = next(ob for ob in bpy.context.scene.objects if ob.type == "ARMATURE")
    assert imported.animation_data is not None and imported.animation_data.action is not None
    moved = evaluated_heads(imported, [spec.smpl_to_bone["left_ankle"], spec.smpl_to_bone["head"]], 20)
    assert np.abs(moved - expected).max() < 2e-3, np.abs(moved - expected).max()   # measured 7e-7 m


# ------------------------------------------------------------------------------------------------ headless
def write_rig_files(spec, directory):
    """The rig (with a mesh parented to it) as a .blend and as an .fbx file; the scene is cleared after."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    armature = rigs.build_armature(bpy, spec)
    mesh = bpy.data.meshes.new("Body")
    mesh.from_pydata([(0, 0, 0), (0.1, 0, 0), (0, 0.1, 0)], [], [(0, 1, 2)])
    body = bpy.data.objects.new("Body", mesh)
    bpy.context.scene.collection.objects.link(body)
    body.parent = armature
    blend, fbx = directory / "character.blend", directory / "character.fbx"
    bpy.data.libraries.write(str(blend), {armature, body})
    for ob in bpy.context.scene.objects:
        ob.select_set(True)
    bpy.ops.export_scene.fbx(filepath=str(fbx), use_selection=True, add_leaf_bones=False)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return blend, fbx


def world_directions(armature, names, frame):
    heads = evaluated_heads(armature, names, frame)
    return {(a, b): (heads[j] - heads[i]) / np.linalg.norm(heads[j] - heads[i])
            for i, a in enumerate(names) for j, b in enumerate(names) if (a, b) in PAIRS}


PAIRS = {("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_shoulder", "right_elbow"),
         ("right_elbow", "right_wrist"), ("spine1", "neck")}


@pytest.mark.parametrize("kind", ["blend", "fbx"])
def test_headless_retarget_from_a_rig_file_exports_the_character(tmp_path, kind, capsys):
    from trace_blender import cli
    from trace_format.npz import write_result

    result_path = write_result(tmp_path / "walk.npz", walking_result()[0])
    spec = rigs.mixamo_like()
    blend, fbx = write_rig_files(spec, tmp_path)
    out_fbx, out_blend, out_map = tmp_path / "out.fbx", tmp_path / "out.blend", tmp_path / "map.json"
    code = cli.main(["retarget", str(result_path), "--target", str(blend if kind == "blend" else fbx), "--rig", "mixamo",
                     "--fbx", str(out_fbx), "--blend", str(out_blend), "--save-map", str(out_map)])
    assert code == 0, capsys.readouterr().err
    assert "retargeted" in capsys.readouterr().out
    assert out_fbx.is_file() and out_blend.is_file()
    assert bone_maps.read_preset(out_map) == (spec.smpl_to_bone, "mixamo")
    (person,) = build.imported_people(bpy.context.scene)
    target = next(ob for ob in bpy.context.scene.objects if ob.type == "ARMATURE" and ob != person)
    assert [ob.name for ob in target.children] == ["Body"]
    joints = sorted({j for pair in PAIRS for j in pair})
    for frame in (1, 23, 45):
        source = world_directions(person, joints, frame)
        moved_heads = evaluated_heads(target, [spec.smpl_to_bone[j] for j in joints], frame)
        for (a, b), direction in source.items():
            moved = moved_heads[joints.index(b)] - moved_heads[joints.index(a)]
            angle = np.degrees(np.arccos(np.clip(direction @ moved / np.linalg.norm(moved), -1, 1)))
            assert angle < DIRECTION_TOLERANCE_DEG, (kind, frame, a, b, angle)
    expected = evaluated_heads(target, [spec.smpl_to_bone["left_ankle"], spec.smpl_to_bone["head"]], 30)

    # The exported FBX carries the mesh and the baked animation.
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = 30
    bpy.ops.import_scene.fbx(filepath=str(out_fbx), anim_offset=0)
    imported = next(ob for ob in bpy.context.scene.objects if ob.type == "ARMATURE")
    assert any(ob.type == "MESH" for ob in imported.children)
    got = evaluated_heads(imported, [spec.smpl_to_bone["left_ankle"], spec.smpl_to_bone["head"]], 30)
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_headless_retarget_refuses_a_non_humanoid_and_writes_the_partial_map(tmp_path, capsys):
    from trace_blender import cli
    from trace_format.npz import write_result

    result_path = write_result(tmp_path / "walk.npz", walking_result()[0])
    blend, _ = write_rig_files(rigs.not_humanoid(), tmp_path)
    out_map = tmp_path / "partial.json"
    code = cli.main(["retarget", str(result_path), "--target", str(blend), "--save-map", str(out_map),
                     "--blend", str(tmp_path / "never.blend")])
    err = capsys.readouterr().err
    assert code == RetargetError.exit_code == 6
    assert "not mapped: pelvis" in err and "--map" in err
    assert out_map.is_file() and not (tmp_path / "never.blend").exists()
    code = cli.main(["retarget", str(result_path), "--target", str(tmp_path / "missing.fbx")])
    assert code == 2 and "no file at" in capsys.readouterr().err
