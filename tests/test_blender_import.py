"""Importing results into Blender (bpy 5.0 module): FK equivalence, skinned body, timing, naming, rollback."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from helpers.blender import (evaluated_bone_heads, evaluated_vertices, reference_joints_blender,  # noqa: E402
                             scene_fingerprint)
from helpers.factories import make_result  # noqa: E402
from helpers.synthetic_smpl import write_synthetic_smpl_pkl  # noqa: E402

from trace_format.npz import read_result, write_result  # noqa: E402
from trace_format import fk, rotations, skeleton  # noqa: E402
from trace_format.smpl_file import load_smpl_model_file  # noqa: E402

from trace_blender import build, cli, frames, plan  # noqa: E402
from trace_blender.build import tags  # noqa: E402
from trace_blender.build import keys  # noqa: E402
from trace_blender.errors import ResultFileError, SceneBuildError, SmplModelLoadError  # noqa: E402

FK_TOLERANCE_M = 1e-4
CHECK_FRAMES = (0, 1, 57, 150, 233, 299)


@pytest.fixture(scope="module")
def smpl_model_path(tmp_path_factory):
    return write_synthetic_smpl_pkl(tmp_path_factory.mktemp("smpl") / "SMPL_SYNTHETIC.pkl")


@pytest.fixture(scope="module")
def long_result_path(tmp_path_factory):
    """2 people x 300 frames, 29.97 fps, person 2 starting 3 frames later."""
    return write_result(tmp_path_factory.mktemp("result") / "walk.npz", make_result(people=2, frames=300,
                                                                                        fps=30000 / 1001))


def armatures_by_track(context) -> dict[int, object]:
    return {int(ob[tags.PROP_TRACK_ID]): ob for ob in tags.imported_people(context.scene)}


def assert_fk_equivalence(result, armatures, rest_joints_by_track, frame_start=1):
    worst = 0.0
    for track in result.tracks:
        armature = armatures[track.track_id]
        expected = reference_joints_blender(track, rest_joints_by_track[track.track_id])
        for row in CHECK_FRAMES:
            heads = evaluated_bone_heads(bpy, armature, frame_start + int(track.frames[row]))
            error = float(np.abs(heads - expected[row]).max())
            worst = max(worst, error)
            assert error < FK_TOLERANCE_M, (track.track_id, row, error)
    return worst


def test_headless_import_reproduces_smpl_fk_with_default_skeleton(empty_scene, long_result_path, capsys):
    assert cli.main(["import", str(long_result_path)]) == 0
    assert "imported 2 people" in capsys.readouterr().out
    context = bpy.context
    result = read_result(long_result_path)
    armatures = armatures_by_track(context)
    assert sorted(armatures) == [1, 2]
    rest = skeleton.load_default_skeleton()
    worst = assert_fk_equivalence(result, armatures, {1: rest, 2: rest})
    assert worst > 0.0  # really compared (float32 keys are not bit-exact)

    scene = context.scene
    assert (scene.render.fps, round(scene.render.fps_base, 6)) == (30, 1.001)
    assert (scene.frame_start, scene.frame_end) == (1, result.video.frame_count)
    for armature in armatures.values():
        bones = armature.data.bones
        assert sorted(bone.name for bone in bones) == sorted(skeleton.SMPL_JOINT_NAMES)
        parents = [bones[name].parent.name if bones[name].parent else None for name in skeleton.SMPL_JOINT_NAMES]
        assert parents == [None] + [skeleton.SMPL_JOINT_NAMES[p] for p in skeleton.SMPL_PARENTS[1:]]
        np.testing.assert_array_equal(np.array(armature.matrix_world), np.eye(4))
        if keys.uses_layered_actions(armature.animation_data.action):   # 4.4+
            assert armature.animation_data.action.slots[0].target_id_type == "OBJECT"
        channelbag = keys.assigned_curves(armature)
        paths = {curve.data_path for curve in channelbag.fcurves}
        assert all(path.startswith("pose.bones[") for path in paths)  # the object itself is not animated
        assert len(channelbag.fcurves) == 24 * 4 + 3  # root motion on the pelvis only
        # T-pose rest, upright and facing -Y.
        bones = armature.data.bones
        assert bones["head"].head_local.z > bones["pelvis"].head_local.z + 0.5
        assert bones["left_foot"].head_local.y < bones["left_ankle"].head_local.y
        assert bones["left_wrist"].head_local.x > bones["left_elbow"].head_local.x > bones["left_shoulder"].head_local.x
        assert abs(bones["left_wrist"].head_local.z - bones["left_shoulder"].head_local.z) < 1e-6


def read_curve(curve) -> np.ndarray:
    coordinates = np.empty(2 * len(curve.keyframe_points), np.float32)
    curve.keyframe_points.foreach_get("co", coordinates)
    return coordinates.reshape(-1, 2)


def test_keys_are_bulk_linear_and_quaternion_continuous(empty_scene):
    result = make_result(people=1, frames=200, seed=3, offsets=(10,))
    track = result.tracks[0]
    # Force sign flips in the input: big rotations near pi on the root.
    build.import_result(result, bpy.context, plan.ImportOptions(frame_start=101))
    armature = armatures_by_track(bpy.context)[1]
    channelbag = keys.assigned_curves(armature)
    for name in ("pelvis", "left_knee", "right_wrist"):
        curves = [channelbag.fcurves.find(f'pose.bones["{name}"].rotation_quaternion', index=i) for i in range(4)]
        keyed = np.stack([read_curve(c) for c in curves])  # [4, T, 2]
        np.testing.assert_array_equal(keyed[0, :, 0], 101 + track.frames)  # video frame i -> 101 + i
        quats = keyed[:, :, 1].T  # [T, 4]
        assert np.all(np.sum(quats[1:] * quats[:-1], axis=1) >= 0)
        assert all(k.interpolation == "LINEAR" for k in curves[0].keyframe_points)
    location = channelbag.fcurves.find('pose.bones["pelvis"].location', index=0)
    assert len(location.keyframe_points) == 200


def test_synthetic_smpl_model_gives_shaped_skinned_bodies(empty_scene, smpl_model_path, tmp_path):
    path = write_result(tmp_path / "shaped.npz", make_result(people=2, frames=300, seed=5))
    assert cli.main(["import", str(path), "--smpl-model", str(smpl_model_path)]) == 0
    result = read_result(path)
    model = load_smpl_model_file(smpl_model_path)
    rest_by_track = {t.track_id: model.joints_for_betas(t.betas.mean(0)) for t in result.tracks}
    armatures = armatures_by_track(bpy.context)
    assert_fk_equivalence(result, armatures, rest_by_track)

    for track in result.tracks:
        person = SimpleNamespace(armature=armatures[track.track_id])
        bodies = tags.bodies_of(person.armature)
        assert len(bodies) == 1
        body = bodies[0]
        assert body.parent == person.armature
        assert len(body.data.vertices) == model.num_vertices and len(body.data.polygons) == len(model.faces)
        assert [g.name for g in body.vertex_groups] == list(skeleton.SMPL_JOINT_NAMES)
        modifier = body.modifiers["Armature"]
        assert modifier.type == "ARMATURE" and modifier.object == person.armature
        # Rest mesh = shaped template in the Blender rest frame, standing on z = 0, consistent with the bones.
        mean_betas = track.betas.mean(0)
        vertices = model.vertices_for_betas(mean_betas)
        joints = model.joints_for_betas(mean_betas)
        ground = np.array([0.0, vertices[:, 1].min(), 0.0])
        rest_mesh = np.array([v.co[:] for v in body.data.vertices])
        np.testing.assert_allclose(rest_mesh, frames.canonical_to_blender_rest(vertices - ground), atol=1e-6)
        heads = np.array([person.armature.data.bones[n].head_local[:] for n in skeleton.SMPL_JOINT_NAMES])
        np.testing.assert_allclose(heads, frames.canonical_to_blender_rest(joints - ground), atol=1e-6)
        weight_of_vertex_7 = {g.group: g.weight for g in body.data.vertices[7].groups}
        expected_weights = {j: w for j, w in enumerate(model.weights[7]) if w > 0}
        assert weight_of_vertex_7.keys() == expected_weights.keys()
        np.testing.assert_allclose([weight_of_vertex_7[j] for j in expected_weights], list(expected_weights.values()),
                                   atol=1e-6)
        # Skinned vertices = linear blend skinning of the SMPL FK transforms (no pose blend shapes).
        poses = np.array(track.poses)
        poses[:, 0] = track.global_orient_world
        global_rotations, posed_joints = fk.forward_kinematics(joints, poses)
        placed = fk.place_by_hip_center(posed_joints, track.hip_center_world)
        for row in (0, 120, 299):
            transforms = np.zeros((24, 3, 4))
            transforms[:, :, :3] = global_rotations[row]
            transforms[:, :, 3] = placed[row] - np.einsum("jab,jb->ja", global_rotations[row], joints)
            blended = np.einsum("vj,jab->vab", model.weights, transforms)  # [V, 3, 4]
            skinned = np.einsum("vab,vb->va", blended[:, :, :3], vertices) + blended[:, :, 3]
            expected = frames.map_points(frames.trace_to_blender_transform(), skinned)
            actual = evaluated_vertices(bpy, body, 1 + int(track.frames[row]))
            assert np.abs(actual - expected).max() < FK_TOLERANCE_M
        assert tags.PROP_REST_BETAS in person.armature.keys()


def test_world_alignment_is_applied_as_one_rigid_transform(empty_scene):
    result = make_result(people=1, frames=20, seed=8)
    alignment = np.eye(4)
    alignment[:3, :3] = rotations.axis_angle_to_matrix(np.array([0.0, 0.0, 0.7])) @ frames.TRACE_TO_BLENDER
    alignment[:3, 3] = [1.0, -2.0, 0.25]
    build.import_result(result, bpy.context, plan.ImportOptions(world_alignment=alignment))
    armature = armatures_by_track(bpy.context)[1]
    default = reference_joints_blender(result.tracks[0], skeleton.load_default_skeleton())  # with (x, z, -y)
    in_trace = default @ frames.TRACE_TO_BLENDER  # back to TRACE world (inverse = transpose)
    expected = frames.map_points(alignment, in_trace)
    for row in (0, 19):
        assert np.abs(evaluated_bone_heads(bpy, armature, 1 + row) - expected[row]).max() < FK_TOLERANCE_M


def test_reimport_never_overwrites_existing_people(empty_scene):
    result = make_result(people=2, frames=30, seed=1)
    first = build.import_result(result, bpy.context, source_path="/x/clip.npz")
    first_names = [p.armature.name for p in first.people]
    first_actions = [p.armature.animation_data.action.name for p in first.people]
    second = build.import_result(result, bpy.context, source_path="/x/clip.npz")
    assert first_names == ["clip_person1", "clip_person2"]
    assert [p.armature.name for p in second.people] == ["clip_person1_2", "clip_person2_2"]
    assert [p.armature.name for p in first.people] == first_names  # untouched
    assert [p.armature.animation_data.action.name for p in first.people] == first_actions
    assert second.collection.name == "TRACE clip_2" and first.collection.name == "TRACE clip"
    colours = {tuple(p.armature.color) for p in first.people}
    assert len(colours) == 2  # each person has its own colour
    assert {p.collection.color_tag for p in first.people} == {"COLOR_01", "COLOR_02"}
    assert len(tags.imported_people(bpy.context.scene)) == 4


def test_failed_import_leaves_the_scene_unchanged(empty_scene, smpl_model_path, monkeypatch):
    result = make_result(people=3, frames=20, seed=2)
    build.import_result(result, bpy.context, source_path="kept.npz")  # existing work must survive
    bpy.context.scene.render.fps = 24
    before = scene_fingerprint(bpy)
    calls = {"count": 0}
    original = build.build_body

    def failing_body(*args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 2:
            raise RuntimeError("simulated failure while building person 2")
        return original(*args, **kwargs)

    monkeypatch.setattr(build, "build_body", failing_body)
    with pytest.raises(SceneBuildError, match="simulated failure.*nothing was added"):
        build.import_result(result, bpy.context, plan.ImportOptions(smpl_model_path=str(smpl_model_path)),
                               source_path="new.npz")
    assert calls["count"] == 2
    assert scene_fingerprint(bpy) == before


def test_bad_inputs_give_clear_errors_and_change_nothing(empty_scene, tmp_path, long_result_path, capsys):
    before = scene_fingerprint(bpy)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(long_result_path.read_bytes()[:5000])
    with pytest.raises(ResultFileError, match="truncated.npz"):
        build.import_result_file(truncated, bpy.context)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip archive")
    with pytest.raises(ResultFileError, match="garbage.npz"):
        build.import_result_file(garbage, bpy.context)
    with pytest.raises(ResultFileError, match="not found"):
        build.import_result_file(tmp_path / "missing.npz", bpy.context)
    bad_model = tmp_path / "bad_model.pkl"
    bad_model.write_bytes(b"\x80\x02not a model")
    with pytest.raises(SmplModelLoadError):
        build.import_result_file(long_result_path, bpy.context, plan.ImportOptions(smpl_model_path=str(bad_model)))
    assert scene_fingerprint(bpy) == before

    empty = make_result(people=1, frames=5)
    empty.tracks = []
    with pytest.raises(ResultFileError, match="no tracked person"):
        build.import_result(empty, bpy.context)
    assert scene_fingerprint(bpy) == before

    assert cli.main(["import", str(truncated)]) == 3
    assert "error: cannot read the TRACE result" in capsys.readouterr().err
    assert cli.main(["import", str(long_result_path), "--smpl-model", str(bad_model)]) == 5


def test_official_trace2_result_is_placed_like_the_official_code(empty_scene, tmp_path, smpl_model_path):
    official_format = pytest.importorskip("helpers.official_format")
    model = load_smpl_model_file(smpl_model_path)
    outputs, imgpaths, expected = official_format.make_official_outputs(model, seed=4)
    path = official_format.write_official_result(tmp_path / "trace2_results.npz", outputs, imgpaths)
    assert cli.main(["import", str(path), "--frame-start", "10", "--fps", "25"]) == 0
    context = bpy.context
    assert (context.scene.render.fps, context.scene.frame_start) == (25, 10)
    armatures = armatures_by_track(context)
    assert sorted(armatures) == sorted(expected)
    result = read_result(path)
    rest = skeleton.load_default_skeleton()
    for track in result.tracks:
        truth = expected[track.track_id]
        np.testing.assert_array_equal(track.frames, truth["frames"])
        joints = reference_joints_blender(track, rest)
        # Hip midpoint (joints 1 and 2 of the default skeleton) sits where the official body's hips are.
        hips_blender = frames.map_points(frames.trace_to_blender_transform(), truth["hip_center_world"])
        for row, video_frame in enumerate(track.frames):
            heads = evaluated_bone_heads(bpy, armatures[track.track_id], 10 + int(video_frame))
            assert np.abs(heads - joints[row]).max() < FK_TOLERANCE_M
            assert np.abs(fk.hip_centers(heads) - hips_blender[row]).max() < 1e-4
        # Orientation: the pelvis bone turns with world_global_rots.
        channelbag = keys.assigned_curves(armatures[track.track_id])
        keyed = read_curve(channelbag.fcurves.find('pose.bones["pelvis"].rotation_quaternion', index=0))[:, 0]
        np.testing.assert_array_equal(keyed, 10 + truth["frames"])  # gaps stay gaps (frame 7 of track 5)


def test_one_edit_mode_session_per_import_whatever_the_number_of_people(empty_scene, monkeypatch):
    """Each mode switch is a line in Blender's Info editor: bones of all people are made in one session."""
    from trace_blender.build import armature as armature_build

    calls = []

    class CountingBpy:   # the real bpy, with bpy.ops.object.mode_set counted
        def __getattr__(self, name):
            if name == "ops":
                return SimpleNamespace(object=SimpleNamespace(
                    mode_set=lambda **kwargs: (calls.append(kwargs["mode"]), bpy.ops.object.mode_set(**kwargs))[1]))
            return getattr(bpy, name)

    monkeypatch.setattr(armature_build, "bpy", CountingBpy())
    summary = build.import_result(make_result(people=4, frames=12, seed=3), bpy.context,
                                  plan.ImportOptions(build_camera=False))
    assert len(summary.people) == 4 and calls == ["EDIT", "OBJECT"]
    assert all(len(p.armature.data.bones) == 24 for p in summary.people)
