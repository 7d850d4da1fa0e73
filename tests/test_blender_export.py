"""Exports re-imported into a clean Blender: FBX (Unity, Unreal), GLB and BVH keep every frame and joint."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from helpers.blender import evaluated_bone_heads, evaluated_vertices  # noqa: E402
from helpers.factories import make_result  # noqa: E402
from helpers.synthetic_smpl import write_synthetic_smpl_pkl  # noqa: E402

from trace_format import rotations as skeleton_rotations  # noqa: E402
from trace_format import skeleton  # noqa: E402

from trace_blender import build, bvh_format, export_rig, exporting, fbx_export, gltf_format, plan  # noqa: E402
from trace_blender.build import keys  # noqa: E402
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


def key_frames(armature, bone) -> np.ndarray:
    """Frames of the keys on a bone's first channel (location, else rotation)."""
    channelbag = keys.assigned_curves(armature)
    curve = next(c for c in channelbag.fcurves if c.data_path.startswith(f'pose.bones["{bone}"]'))
    frames = np.empty(2 * len(curve.keyframe_points), np.float32)
    curve.keyframe_points.foreach_get("co", frames)
    return frames[0::2]


def exported_names(person: str, export_format: str, several: bool) -> list[str]:
    """The 24 exported bones of a person in SMPL joint order (no Unreal root bone)."""
    prefix = export_rig.ascii_identifier(person) + "_" if several else ""
    preset = exporting.PRESET_OF_FORMAT[export_format]
    return export_rig.bone_names(export_rig.DEFAULT_NAME_SCHEME[preset], prefix)


def compare_joints(armature, expected: dict, frames, tolerance, names=NAMES, shift=0):
    """Re-imported joints at frame f + shift against the source's at scene frame f."""
    worst = 0.0
    for frame in frames:
        got = evaluated_bone_heads(bpy, armature, frame + shift, names)
        worst = max(worst, float(np.abs(got - expected[frame]).max()))
    assert worst < tolerance, worst
    return worst


def compare_vertices(body, expected: dict, tolerance=1e-4, shift=0):
    for frame, reference_vertices in expected.items():
        assert np.abs(evaluated_vertices(bpy, body, frame + shift) - reference_vertices).max() < tolerance


def check_round_trip(path, kind, export_format, reference, people, shift):
    """Blender's own importer sees every person at every frame where the source scene shows them."""
    objects = reimport(path, kind, reference["fps"])
    several = len(people) > 1
    count = len(reference["frames"])
    for name in people:
        armature = objects["Armature" if export_format == "unreal" and not several else name]
        names = exported_names(name, export_format, several)
        expected_bones = 25 if export_format == "unreal" else 24   # Unreal: + the ground-level root bone
        assert armature.type == "ARMATURE" and len(armature.data.bones) == expected_bones  # no leaf bones
        np.testing.assert_allclose(key_frames(armature, names[0]), np.arange(count) + reference["frames"][0] + shift,
                                   atol=1e-3)                           # every frame, from t = 0
        compare_joints(armature, reference["joints"][name], reference["frames"], 1e-4, names, shift)
        compare_vertices(objects[f"{name}_body"], reference["vertices"][name], shift=shift)


def test_fbx_unity_round_trip(reference, smpl_model_path, tmp_path):
    armatures = fresh_import(smpl_model_path, reference["result"])
    written = exporting.export_people(bpy.context, armatures, tmp_path / "people.fbx", "unity")
    assert written == [tmp_path / "people.fbx"] and sorted(p.name for p in tmp_path.iterdir()) == ["people.fbx"]
    settings = fbx_global_settings(written[0])
    assert (settings["UpAxis"], settings["UpAxisSign"]) == (1, 1)  # Unity: Y up
    assert settings["UnitScaleFactor"] == 100.0  # 1 Blender metre = 100 cm = 1 Unity unit
    assert settings["CustomFrameRate"] == 30.0
    # FBX t = 0 (the scene's first frame) comes back on frame 0 with anim_offset=0
    check_round_trip(written[0], "fbx", "unity", reference, list(reference["joints"]), shift=-1)


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
        settings = fbx_global_settings(path)
        assert settings["UpAxis"] == 2 and settings["UnitScaleFactor"] == pytest.approx(1.0)  # Unreal: Z up, centimetres
        # Unreal drops a root node called "Armature" instead of adding a bone
        check_round_trip(path, "fbx", "unreal", reference, [name], shift=-1)


def test_fbx_unreal_several_people_in_one_file(reference, smpl_model_path, tmp_path):
    armatures = fresh_import(smpl_model_path, reference["result"])
    written = exporting.export_people(bpy.context, armatures, tmp_path / "people.fbx", "unreal")
    check_round_trip(written[0], "fbx", "unreal", reference, list(reference["joints"]), shift=-1)


def test_glb_round_trip(reference, smpl_model_path, tmp_path):
    armatures = fresh_import(smpl_model_path, reference["result"])
    written = exporting.export_people(bpy.context, armatures, tmp_path / "people", "gltf")
    assert written == [tmp_path / "people.glb"]
    check_round_trip(written[0], "glb", "gltf", reference, list(reference["joints"]), shift=-1)


def test_bvh_round_trip_is_y_up_and_keeps_every_frame(reference, smpl_model_path, tmp_path):
    armatures = fresh_import(smpl_model_path, reference["result"])
    with pytest.raises(UsageError, match="holds one person"):
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
        np.testing.assert_allclose(key_frames(armature, "pelvis"), reference["frames"])  # one key per frame
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
    keys = key_frames(next(ob for ob in objects.values() if ob.type == "ARMATURE"), "Hips")
    np.testing.assert_allclose(keys, np.arange(0, 14) * 1.001, atol=1e-4)


def test_export_errors_are_clear_and_leave_no_files(reference, smpl_model_path, tmp_path, monkeypatch):
    armatures = fresh_import(smpl_model_path, reference["result"])
    with pytest.raises(UsageError, match="unknown export format"):
        exporting.export_people(bpy.context, armatures, tmp_path / "x.fbx", "maya")
    with pytest.raises(UsageError, match="no people"):
        exporting.export_people(bpy.context, [], tmp_path / "x.fbx", "unity")
    with pytest.raises(ExportError, match="does not exist"):
        exporting.export_people(bpy.context, armatures, tmp_path / "missing" / "x.fbx", "unity")

    def failing_step(*args, **kwargs):
        raise ExportError("simulated failure while writing")

    scenes_before = len(bpy.data.scenes)
    with monkeypatch.context() as patch:      # FBX: fails after Blender wrote the temporary file
        patch.setattr(fbx_export, "finish_fbx", failing_step)
        with pytest.raises(ExportError, match="simulated failure"):
            exporting.export_people(bpy.context, armatures, tmp_path / "x.fbx", "unity")
    with monkeypatch.context() as patch:      # GLB: fails while encoding
        patch.setattr(gltf_format, "encode_glb", failing_step)
        with pytest.raises(ExportError, match="simulated failure"):
            exporting.export_people(bpy.context, armatures, tmp_path / "x.glb", "gltf")
    assert len(bpy.data.scenes) == scenes_before and not [ob for ob in bpy.data.objects if "_export" in ob.name]
    assert list(tmp_path.iterdir()) == []
    assert [a.name for a in armatures] == ["walk_person1", "walk_person2"]


def test_bvh_euler_conversion_round_trips():
    rng = np.random.default_rng(0)
    angles = np.column_stack([rng.uniform(-np.pi, np.pi, 200), rng.uniform(-1.5, 1.5, 200), rng.uniform(-np.pi, np.pi, 200)])
    matrices = bvh_format.euler_zxy_to_matrix(angles)
    np.testing.assert_allclose(bvh_format.matrix_to_euler_zxy(matrices), angles, atol=1e-9)
    assert bvh_format.depth_first_order(skeleton.SMPL_PARENTS)[:5] == [0, 1, 4, 7, 10]


def test_sampling_reads_curves_like_blender_evaluates(reference, smpl_model_path):
    """The fast path (F-curves + numpy forward kinematics) equals Blender's own evaluation, which the
    exporter uses when anything besides the action moves the bones (here: a zero-influence constraint)."""
    armature = fresh_import(smpl_model_path, reference["result"])[1]
    frames = exporting.export_frames(bpy.context.scene)
    fast = exporting.sample_motion(bpy.context, armature, frames)
    constraint = armature.pose.bones["left_elbow"].constraints.new("COPY_ROTATION")
    constraint.influence = 0.0
    evaluated = exporting.sample_motion(bpy.context, armature, frames)
    np.testing.assert_allclose(fast.heads, evaluated.heads, atol=1e-5)
    np.testing.assert_allclose(fast.world_rotations, evaluated.world_rotations, atol=1e-5)
    np.testing.assert_allclose(fast.heads, np.array([reference["joints"][armature.name][f] for f in frames]),
                               atol=1e-5)
    assert fast.body is not None and fast.body.weights.shape == (len(fast.body.vertices), 24)
    np.testing.assert_allclose(fast.body.weights.sum(axis=1), 1.0, atol=1e-5)


def test_headless_import_writes_every_format(tmp_path):
    """`python -m trace_blender import RESULT --fbx --preset unreal --glb --bvh`: the same exporters."""
    from helpers import clients
    from trace_format.npz import write_result
    from trace_blender import cli

    result = write_result(tmp_path / "walk.npz", make_result(people=2, frames=8, seed=3, offsets=(0, 2)))
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(["import", str(result), "--fbx", str(out / "walk.fbx"), "--preset", "unreal",
                     "--glb", str(out / "walk.glb"), "--bvh", str(out / "walk.bvh"), "--smpl", str(out / "walk.smpl"),
                     "--amass", str(out / "walk.npz")]) == 0
    people = ("walk_person1", "walk_person2")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["walk.fbx", "walk.glb"] + [f"walk_{person}{ext}" for person in people for ext in (".bvh", ".smpl", ".npz")])
    fbx_bones = [e for e in _fbx_model_names(out / "walk.fbx") if e.endswith("_root") or e.endswith("_pelvis")]
    assert sorted(fbx_bones) == ["walk_person1_pelvis", "walk_person1_root", "walk_person2_pelvis",
                                 "walk_person2_root"]
    issues = clients.validate_gltf(out / "walk.glb")["issues"]
    assert (issues["numErrors"], issues["numWarnings"]) == (0, 0), issues["messages"]


def _fbx_model_names(path) -> list[str]:
    from io_scene_fbx import parse_fbx

    root, _ = parse_fbx.parse(str(path))
    objects = next(e for e in root.elems if e.id == b"Objects")
    return [e.props[1].split(b"\x00\x01")[0].decode() for e in objects.elems if e.id == b"Model"]


def _fbx_curves(path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(curve node property, key times [s], values) of every AnimationCurve in an FBX file."""
    from io_scene_fbx import parse_fbx

    root, _ = parse_fbx.parse(str(path))
    objects = next(e for e in root.elems if e.id == b"Objects")
    by_id = {e.props[0]: e for e in objects.elems if e.props}
    links = {c.props[1]: c.props[2] for e in root.elems if e.id == b"Connections" for c in e.elems}
    out = []
    for e in objects.elems:
        if e.id == b"AnimationCurve":
            node = by_id[links[e.props[0]]]
            values = {c.id: np.asarray(c.props[0]) for c in e.elems if c.id in (b"KeyTime", b"KeyValueFloat")}
            out.append((node.props[1].split(b"\x00")[0].decode(), values[b"KeyTime"] / 46186158000,
                        values[b"KeyValueFloat"].astype(np.float64)))
    return out


def test_curves_are_continuous_and_carry_something(reference, smpl_model_path, tmp_path):
    """FBX: Euler curves without jumps (a person turning several full times), no constant curves, keys
    at i / fps from 0; GLB: quaternion signs continuous."""
    from helpers.factories import make_result
    from trace_blender import export_rig as rig

    result = make_result(people=1, frames=90, seed=4)
    track = result.tracks[0]
    spin = np.linspace(0.0, 14.0, track.num_frames)  # two and a bit turns about the vertical
    turn = skeleton_rotations.axis_angle_to_matrix(np.stack([np.zeros_like(spin), spin, np.zeros_like(spin)], 1))
    orient = skeleton_rotations.matrix_to_axis_angle(turn @ skeleton_rotations.axis_angle_to_matrix(track.poses[:, 0]))
    track.poses[:, 0] = orient
    track.global_orient_world[:] = orient
    bpy.ops.wm.read_factory_settings(use_empty=True)
    summary = build.import_result(result, bpy.context)
    armature = summary.people[0].armature
    count = len(exporting.export_frames(bpy.context.scene))
    for export_format in ("unity", "unreal"):
        (path,) = exporting.export_people(bpy.context, [armature], tmp_path / f"{export_format}.fbx", export_format)
        curves = _fbx_curves(path)
        assert curves
        for prop, times, values in curves:
            np.testing.assert_allclose(times, np.arange(count) / 30.0, atol=1e-6)
            assert np.ptp(values) > 1e-4, f"{prop}: a constant curve"
            if prop == "R":
                assert np.abs(np.diff(values)).max() < 30.0, f"{export_format}: an Euler curve jumps"
    (path,) = exporting.export_people(bpy.context, [armature], tmp_path / "spin.glb", "gltf")
    document, binary = _glb_chunks(path)
    for channel, sampler in zip(document["animations"][0]["channels"], document["animations"][0]["samplers"]):
        if channel["target"]["path"] == "rotation":
            values = _accessor(document, binary, sampler["output"]).reshape(-1, 4)
            assert np.all(np.sum(values[1:] * values[:-1], axis=1) > 0), "a quaternion sign flip"
    (bvh,) = exporting.export_people(bpy.context, [armature], tmp_path / "spin.bvh", "bvh")
    motion = np.array([[float(v) for v in line.split()] for line in
                       bvh.read_text().split("Frame Time:")[1].strip().splitlines()[1:]])
    assert np.abs(np.diff(motion[:, 3:], axis=0)).max() < 30.0, "a BVH rotation channel jumps"
    zxy = np.array([0.3, 1.2, -2.0])
    alternate = np.array([zxy[0] + np.pi, np.pi - zxy[1], zxy[2] + np.pi])
    np.testing.assert_allclose(bvh_format.euler_zxy_to_matrix(alternate), bvh_format.euler_zxy_to_matrix(zxy),
                               atol=1e-12)
    first, second = rig.euler_xyz(np.eye(3)[None])
    np.testing.assert_allclose(rig.euler_xyz_to_matrix(second), np.eye(3)[None], atol=1e-12)


def _glb_chunks(path):
    import json
    import struct

    data = path.read_bytes()
    json_length = struct.unpack_from("<I", data, 12)[0]
    document = json.loads(data[20:20 + json_length])
    return document, data[20 + json_length + 8:]


def _accessor(document, binary, index) -> np.ndarray:
    accessor = document["accessors"][index]
    view = document["bufferViews"][accessor["bufferView"]]
    size = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[accessor["type"]]
    return np.frombuffer(binary, np.float32, accessor["count"] * size, view["byteOffset"] + accessor.get("byteOffset", 0))


def test_smpl_and_amass_files_replay_the_motion(reference, smpl_model_path, tmp_path):
    """.smpl (read with smplcodec itself) and AMASS .npz: SMPL forward kinematics of the stored poses plus
    translation puts every joint where Blender shows it, in Blender's world (+Z up)."""
    import smplcodec

    from trace_blender import frames as blender_frames
    from trace_format import fk

    armatures = fresh_import(smpl_model_path, reference["result"])
    with pytest.raises(UsageError, match="holds one person"):
        exporting.export_people(bpy.context, armatures, tmp_path / "people.smpl", "smpl")
    smpl_files = exporting.export_people(bpy.context, armatures, tmp_path / "people.smpl", "smpl", per_person=True)
    amass_files = exporting.export_people(bpy.context, armatures, tmp_path / "people.npz", "amass", per_person=True)
    assert [p.name for p in smpl_files] == ["people_walk_person1.smpl", "people_walk_person2.smpl"]
    count = len(reference["frames"])
    for armature, smpl_path, amass_path in zip(armatures, smpl_files, amass_files):
        rest = np.array([np.array(armature.data.bones[n].head_local) for n in NAMES]) @ blender_frames.CANONICAL_TO_BLENDER_REST
        expected = np.array([reference["joints"][armature.name][f] for f in reference["frames"]])
        codec = smplcodec.SMPLCodec.from_file(smpl_path)
        assert (codec.smpl_version, codec.gender, codec.frame_count) == (smplcodec.SMPLVersion.SMPL,
                                                                          smplcodec.SMPLGender.NEUTRAL, count)
        assert codec.frame_rate == pytest.approx(30.0)
        np.testing.assert_allclose(codec.shape_parameters, armature["trace_rest_betas"], atol=1e-6)
        amass = smplcodec.SMPLCodec.from_amass_npz(amass_path)
        assert amass.smpl_version == smplcodec.SMPLVersion.SMPL and amass.frame_rate == pytest.approx(30.0)
        with np.load(amass_path) as data:
            assert data["poses"].shape == (count, 72) and str(data["gender"]) == "neutral"
        for stored in (codec, amass):
            joints = fk.forward_kinematics(rest, stored.body_pose)[1] + stored.body_translation[:, None]
            assert np.abs(joints - expected).max() < 1e-4


def test_odd_names_and_a_single_frame_export_cleanly(smpl_model_path, tmp_path):
    """Names engines reject (spaces, unicode, a leading digit) become ASCII identifiers; a one-frame range
    gives one key per channel at t = 0 in every format."""
    from helpers import clients
    from helpers.factories import make_result

    bpy.ops.wm.read_factory_settings(use_empty=True)
    summary = build.import_result(make_result(people=2, frames=1, seed=8, offsets=(0, 0)), bpy.context)
    armatures = [person.armature for person in summary.people]
    armatures[0]["trace_person"] = "3 Über läufer"
    armatures[1]["trace_person"] = "walk person #2"
    scene = bpy.context.scene
    scene.frame_start = scene.frame_end = 1
    (glb,) = exporting.export_people(bpy.context, armatures, tmp_path / "odd.glb", "gltf")
    document, _ = _glb_chunks(glb)
    names = {node["name"] for node in document["nodes"]}
    assert {"_3_Uber_laufer_Hips", "walk_person_2_Hips"} <= names
    assert all(name.isascii() and not name[0].isdigit() and " " not in name for name in names)
    (fbx,) = exporting.export_people(bpy.context, armatures, tmp_path / "odd.fbx", "unity")
    assert "_3_Uber_laufer_Hips" in _fbx_model_names(fbx)
    for _, times, _ in _fbx_curves(fbx):
        np.testing.assert_array_equal(times, [0.0])
    bvh = exporting.export_people(bpy.context, armatures, tmp_path / "odd.bvh", "bvh", per_person=True)
    assert "Frames: 1" in bvh[0].read_text()
    smpl = exporting.export_people(bpy.context, armatures, tmp_path / "odd.smpl", "smpl", per_person=True)
    with np.load(smpl[0]) as data:
        assert int(data["frameCount"]) == 1
    issues = clients.validate_gltf(glb)["issues"]
    assert (issues["numErrors"], issues["numWarnings"]) == (0, 0), issues["messages"]


def test_the_shipped_example_becomes_engine_files(tmp_path):
    """README: `python -m trace_blender import assets/example.trace.npz --fbx example.fbx --preset unity`."""
    from pathlib import Path

    from helpers import clients
    from trace_blender import cli
    from trace_format.npz import read_result

    example = Path(__file__).resolve().parents[1] / "assets" / "example.trace.npz"
    result = read_result(example)
    assert len(result.tracks) == 2 and all(t.num_frames == 120 and t.has_clean_motion for t in result.tracks)
    assert cli.main(["import", str(example), "--fbx", str(tmp_path / "example.fbx"), "--preset", "unity"]) == 0
    report = clients.read_with_assimp(tmp_path / "example.fbx", [0.0, 2.0])
    assert [n for n in report["bones"] if n.endswith("_Hips")] == ["example_trace_person0_Hips",
                                                                   "example_trace_person1_Hips"]
    assert report["duration"] == pytest.approx(119 / 30.0) and report["rate"] == pytest.approx(30.0)


def test_bvh_channels_stay_continuous_through_gimbal_lock():
    """A joint bending 170 degrees about its Z X Y order's middle axis (X): past 90 degrees the principal
    angles flip z and y by 180; the writer takes the equivalent set that continues the curve."""
    count = 60
    bend = np.radians(np.linspace(0.0, 170.0, count))
    local = np.tile(np.eye(3), (count, 2, 1, 1))
    local[:, 1] = bvh_format.euler_zxy_to_matrix(np.stack([np.full(count, 0.2), bend, np.full(count, -0.3)], 1))
    text = bvh_format.format_bvh(["root", "knee"], [-1, 0], np.zeros((2, 3)), np.ones((2, 3)), np.zeros((count, 3)),
                                 local, 1 / 30)
    motion = np.array([[float(v) for v in line.split()] for line in text.split("Frame Time:")[1].strip().splitlines()[1:]])
    angles = np.radians(motion[:, 6:9])                                   # knee (z, x, y)
    assert np.abs(np.diff(motion[:, 6:9], axis=0)).max() < 10.0
    np.testing.assert_allclose(bvh_format.euler_zxy_to_matrix(angles), local[:, 1], atol=1e-5)
