"""Exports re-imported into a clean Blender: FBX (Unity, Unreal), GLB and BVH keep every frame and joint."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from helpers.blender import evaluated_bone_heads, evaluated_vertices  # noqa: E402
from helpers.factories import make_result  # noqa: E402
from helpers.synthetic_smpl import write_synthetic_smpl_pkl  # noqa: E402

from trace_format import skeleton  # noqa: E402
from bpy_extras import anim_utils  # noqa: E402

from trace_blender import build, bvh_format, exporting, plan  # noqa: E402
from trace_blender.errors import ExportError, UsageError  # noqa: E402

NAMES = skeleton.SMPL_JOINT_NAMES
NUM_FRAMES = 40
OFFSETS = (0, 4)  # person 2 starts at video frame 4 -> scene range 1..46


@pytest.fixture(scope="module")
def smpl_model_path(tmp_path_factory):
    return write_synthetic_smpl_pkl(tmp_path_factory.mktemp("smpl") / "SMPL_SYNTHETIC.pkl")


@pytest.fixture(scope="module")
def reference(smpl_model_path):
    """Import once; remember joint positions and skinned vertices at every frame, per person."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = make_result(people=2, frames=NUM_FRAMES, seed=11, fps=30.0, offsets=OFFSETS)
    summary = build.import_result(result, bpy.context, plan.ImportOptions(smpl_model_path=str(smpl_model_path)),
                                     source_path="walk.npz")
    scene = bpy.context.scene
    frames = list(range(scene.frame_start, scene.frame_end + 1))
    joints, vertices = {}, {}
    for person in summary.people:
        joints[person.name] = {f: evaluated_bone_heads(bpy, person.armature, f) for f in frames}
        vertices[person.name] = {f: evaluated_vertices(bpy, person.body, f) for f in frames[::9]}
    return {"result": result, "frames": frames, "joints": joints, "vertices": vertices,
            "fps": (scene.render.fps, scene.render.fps_base)}


def fresh_import(smpl_model_path, result):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    summary = build.import_result(result, bpy.context, plan.ImportOptions(smpl_model_path=str(smpl_model_path)),
                                     source_path="walk.npz")
    return [person.armature for person in summary.people]


def reimport(path, kind, fps):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = fps  # glTF import uses the scene rate to place keys
    if kind == "fbx":
        bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0)  # default +1 frame shift off
    elif kind == "glb":
        bpy.ops.import_scene.gltf(filepath=str(path), disable_bone_shape=True)
    else:
        bpy.ops.import_anim.bvh(filepath=str(path))  # default axes: -Z forward, Y up (what we write)
    return {ob.name: ob for ob in bpy.data.objects}


def fbx_global_settings(path) -> dict:
    """GlobalSettings of an FBX file, read with Blender's pure-Python FBX parser."""
    from io_scene_fbx import parse_fbx

    root, _ = parse_fbx.parse(str(path))
    settings = next(e for e in root.elems if e.id == b"GlobalSettings")
    properties = next(e for e in settings.elems if e.id == b"Properties70")
    return {p.props[0].decode(): p.props[-1] for p in properties.elems}


def key_count(armature) -> int:
    channelbag = anim_utils.animdata_get_channelbag_for_assigned_slot(armature.animation_data)
    curve = channelbag.fcurves.find('pose.bones["pelvis"].location', index=0)
    frames = np.empty(2 * len(curve.keyframe_points), np.float32)
    curve.keyframe_points.foreach_get("co", frames)
    return frames[0::2]


def compare_joints(armature, expected: dict, frames, tolerance):
    worst = 0.0
    for frame in frames:
        worst = max(worst, float(np.abs(evaluated_bone_heads(bpy, armature, frame) - expected[frame]).max()))
    assert worst < tolerance, worst
    return worst


def compare_vertices(body, expected: dict, tolerance=1e-4):
    for frame, reference_vertices in expected.items():
        assert np.abs(evaluated_vertices(bpy, body, frame) - reference_vertices).max() < tolerance


def test_fbx_unity_round_trip(reference, smpl_model_path, tmp_path):
    armatures = fresh_import(smpl_model_path, reference["result"])
    written = exporting.export_people(bpy.context, armatures, tmp_path / "people.fbx", "unity")
    assert written == [tmp_path / "people.fbx"] and sorted(p.name for p in tmp_path.iterdir()) == ["people.fbx"]
    settings = fbx_global_settings(written[0])
    assert (settings["UpAxis"], settings["UpAxisSign"]) == (1, 1)  # Unity: Y up
    assert settings["UnitScaleFactor"] == 100.0  # 1 Blender metre = 100 cm = 1 Unity unit
    assert settings["CustomFrameRate"] == 30.0
    objects = reimport(written[0], "fbx", reference["fps"])
    for name, expected in reference["joints"].items():
        armature = objects[name]
        np.testing.assert_array_equal(key_count(armature), reference["frames"])  # every frame, forced start/end
        compare_joints(armature, expected, reference["frames"], 1e-4)
        compare_vertices(objects[f"{name}_body"], reference["vertices"][name])
        assert len(armature.data.bones) == 24  # no leaf bones added


def test_fbx_unreal_round_trip_names_the_armature_for_unreal(reference, smpl_model_path, tmp_path):
    armatures = fresh_import(smpl_model_path, reference["result"])
    decoy = bpy.data.objects.new("Armature", None)  # an unrelated object already called "Armature"
    bpy.context.scene.collection.objects.link(decoy)
    bpy.context.view_layer.update()   # people hidden at the current frame (outside their frames) are unselected
    selection_before = {ob.name for ob in bpy.context.selected_objects}
    written = exporting.export_people(bpy.context, armatures, tmp_path / "people.fbx", "unreal", per_person=True)
    assert [p.name for p in written] == ["people_walk_person1.fbx", "people_walk_person2.fbx"]
    assert [a.name for a in armatures] == ["walk_person1", "walk_person2"] and decoy.name == "Armature"
    assert {ob.name for ob in bpy.context.selected_objects} == selection_before
    for path, name in zip(written, ["walk_person1", "walk_person2"]):
        assert fbx_global_settings(path)["UpAxis"] == 2  # Unreal: Z up
        objects = reimport(path, "fbx", reference["fps"])
        armature = objects["Armature"]  # Unreal drops a root node called "Armature" instead of adding a bone
        assert armature.type == "ARMATURE" and len(armature.data.bones) == 24
        np.testing.assert_array_equal(key_count(armature), reference["frames"])
        compare_joints(armature, reference["joints"][name], reference["frames"], 1e-4)
        compare_vertices(objects[f"{name}_body"], reference["vertices"][name])


def test_glb_round_trip(reference, smpl_model_path, tmp_path):
    armatures = fresh_import(smpl_model_path, reference["result"])
    written = exporting.export_people(bpy.context, armatures, tmp_path / "people", "gltf")
    assert written == [tmp_path / "people.glb"]
    objects = reimport(written[0], "glb", reference["fps"])
    for (name, expected), offset in zip(reference["joints"].items(), OFFSETS):
        armature = objects[name]
        own_frames = [1 + offset + i for i in range(NUM_FRAMES)]
        np.testing.assert_allclose(key_count(armature), own_frames, atol=1e-3)  # sampled on every frame
        compare_joints(armature, expected, own_frames, 1e-4)
        compare_vertices(objects[f"{name}_body"], {f: v for f, v in reference["vertices"][name].items()
                                                   if f in own_frames})


def test_bvh_round_trip_is_y_up_and_keeps_every_frame(reference, smpl_model_path, tmp_path):
    armatures = fresh_import(smpl_model_path, reference["result"])
    with pytest.raises(UsageError, match="one skeleton"):
        exporting.export_people(bpy.context, armatures, tmp_path / "people.bvh", "bvh")
    written = exporting.export_people(bpy.context, armatures, tmp_path / "people.bvh", "bvh", per_person=True)
    text = written[0].read_text()
    assert f"Frames: {len(reference['frames'])}" in text and "Frame Time: 0.03333333" in text
    assert "ROOT pelvis" in text and text.count("End Site") == 5
    for path, name in zip(written, reference["joints"]):
        objects = reimport(path, "bvh", reference["fps"])
        armature = next(ob for ob in objects.values() if ob.type == "ARMATURE")
        head = armature.data.bones["head"].head_local
        assert head.z > armature.data.bones["pelvis"].head_local.z + 0.3  # upright after a default import
        np.testing.assert_allclose(key_count(armature), reference["frames"])  # one key per frame
        compare_joints(armature, reference["joints"][name], reference["frames"], 1e-3)


def test_fbx_keeps_ntsc_timing(smpl_model_path, tmp_path):
    """29.97 fps: the file stores key times frame / 29.97 s. Blender's FBX importer turns seconds into frames
    with the integer rate (30), so re-imported keys land on frame * 1.001: that proves the stored times."""
    result = make_result(people=1, frames=12, seed=2, fps=30000 / 1001)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    summary = build.import_result(result, bpy.context)
    written = exporting.export_people(bpy.context, [summary.people[0].armature], tmp_path / "ntsc.fbx", "unity")
    assert fbx_global_settings(written[0])["CustomFrameRate"] == pytest.approx(30000 / 1001)
    objects = reimport(written[0], "fbx", (30, 1.001))
    keys = key_count(next(ob for ob in objects.values() if ob.type == "ARMATURE"))
    np.testing.assert_allclose(keys, np.arange(1, 15) * 1.001, atol=1e-4)


def test_export_errors_are_clear_and_leave_no_files(reference, smpl_model_path, tmp_path):
    armatures = fresh_import(smpl_model_path, reference["result"])
    with pytest.raises(UsageError, match="one skeleton per FBX"):
        exporting.export_people(bpy.context, armatures, tmp_path / "x.fbx", "unreal")
    with pytest.raises(UsageError, match="unknown export format"):
        exporting.export_people(bpy.context, armatures, tmp_path / "x.fbx", "maya")
    with pytest.raises(UsageError, match="no people"):
        exporting.export_people(bpy.context, [], tmp_path / "x.fbx", "unity")
    with pytest.raises(ExportError, match="does not exist"):
        exporting.export_people(bpy.context, armatures, tmp_path / "missing" / "x.fbx", "unity")

    def failing_exporter(**settings):
        raise RuntimeError("Error: simulated exporter failure")

    original = exporting._run_operator
    exporting._run_operator = lambda operator, **settings: original(failing_exporter, **settings)
    try:
        with pytest.raises(ExportError, match="simulated exporter failure"):
            exporting.export_people(bpy.context, armatures, tmp_path / "x.glb", "gltf")
    finally:
        exporting._run_operator = original
    assert list(tmp_path.iterdir()) == []
    assert [a.name for a in armatures] == ["walk_person1", "walk_person2"]


def test_bvh_euler_conversion_round_trips():
    rng = np.random.default_rng(0)
    angles = np.column_stack([rng.uniform(-np.pi, np.pi, 200), rng.uniform(-1.5, 1.5, 200), rng.uniform(-np.pi, np.pi, 200)])
    matrices = bvh_format.euler_zxy_to_matrix(angles)
    np.testing.assert_allclose(bvh_format.matrix_to_euler_zxy(matrices), angles, atol=1e-9)
    assert bvh_format.depth_first_order(skeleton.SMPL_PARENTS)[:5] == [0, 1, 4, 7, 10]
