"""Retarget math without Blender: bone maps per rig family, rest-pose alignment, root scale, floor
contact, channels in every rotation mode, and the refusals (tests/helpers/target_rigs.py builds the
target rigs: Mixamo-like, UE-like, Rigify-metarig-like, VRM-like, with A-poses, other proportions,
other bone axes, facing, Y-up centimetre content)."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import target_rigs as rigs
from helpers.factories import make_track

from trace_format import rotations
from trace_blender.retarget import bone_maps, solve

SPECS = {"mixamo": rigs.mixamo_like, "ue5": rigs.ue_like, "rigify": rigs.rigify_metarig_like, "vrm": rigs.vrm_like}
DIRECTION_TOLERANCE_DEG = 2.0
FLOOR_TOLERANCE_M = 0.02
PERSON = rigs.person_rig()
PERSON_JOINTS = {name: name for name in PERSON.names}


def random_pose(frames: int = 40, seed: int = 3) -> np.ndarray:
    track = make_track(1, np.arange(frames), seed)
    poses = np.array(track.poses)
    poses[:, 0] = track.global_orient_world
    from trace_blender import frames as frame_math
    return rigs.person_pose(poses, np.asarray(track.hip_center_world), frame_math.trace_to_blender_transform())


def segment_angles_deg(plan: solve.RetargetPlan, source_pose: np.ndarray, motion: solve.TargetMotion) -> dict:
    """Worst angle per mapped segment between source and target world directions."""
    source_points = PERSON.world_points(source_pose[:, :, :3, 3])
    target_points = plan.target.world_points(motion.pose[:, :, :3, 3])
    worst = {}
    for joint, child in solve.DIRECTION_CHILD.items():
        if child is None or joint not in plan.target_bones or child not in plan.target_bones:
            continue
        a = source_points[:, plan.source_bones[child]] - source_points[:, plan.source_bones[joint]]
        b = target_points[:, plan.target_bones[child]] - target_points[:, plan.target_bones[joint]]
        cosine = np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        worst[f"{joint}->{child}"] = float(np.degrees(np.arccos(np.clip(cosine, -1, 1))).max())
    return worst


@pytest.mark.parametrize("family", sorted(SPECS))
def test_family_and_automatic_maps_find_every_bone(family):
    spec = SPECS[family]()
    rig = rigs.spec_to_rig(spec)
    assert bone_maps.detect_family(rig.names) == family
    assert bone_maps.make_map("auto", rig.names, rig.parents) == spec.smpl_to_bone
    assert bone_maps.make_map(family, rig.names, rig.parents) == spec.smpl_to_bone
    if family != "rigify":  # metarig neck/head are spine.004/.006: only the family map knows that
        assert bone_maps.auto_map(rig.names, rig.parents) == spec.smpl_to_bone


@pytest.mark.parametrize("renamer", [
    lambda n: "DEF-" + n.split(":")[-1],                                   # a deform prefix
    lambda n: "CC_Base_" + n.split(":")[-1].replace("Left", "L_").replace("Right", "R_"),
    lambda n: n.split(":")[-1].lower().replace("left", "l_").replace("right", "r_"),
])
def test_automatic_map_by_name_tokens_and_hierarchy(renamer):
    spec = rigs.mixamo_like()
    rename = {b.name: renamer(b.name) for b in spec.bones}
    rig = rigs.spec_to_rig(spec)
    names = tuple(rename[n] for n in rig.names)
    found = bone_maps.auto_map(names, rig.parents)
    assert found == {joint: rename[bone] for joint, bone in spec.smpl_to_bone.items()}


def test_spine_chain_is_split_by_hierarchy_whatever_the_names():
    spec = rigs.ue_like()
    rig = rigs.spec_to_rig(spec)
    names = tuple(n.replace("spine_0", "Torso") for n in rig.names)
    found = bone_maps.auto_map(names, rig.parents)
    assert (found["spine1"], found["spine2"], found["spine3"]) == ("Torso1", "Torso3", "Torso5")


@pytest.mark.parametrize("family", sorted(SPECS))
def test_world_limb_directions_match_the_source(family):
    spec = SPECS[family]()
    target = rigs.spec_to_rig(spec)
    plan = solve.plan_retarget(PERSON, PERSON_JOINTS, target, spec.smpl_to_bone)
    source_pose = random_pose()
    motion = solve.retarget_motion(plan, source_pose)
    worst = segment_angles_deg(plan, source_pose, motion)
    assert len(worst) >= 17 and max(worst.values()) < DIRECTION_TOLERANCE_DEG, worst
    # The keyed channels reproduce the pose (Blender's rule P = P_parent L Basis).
    np.testing.assert_allclose(solve.pose_from_basis(target, motion.basis), motion.pose, atol=1e-6 * 100)
    assert not plan.warnings


@pytest.mark.parametrize("family", sorted(SPECS))
def test_planted_feet_stay_on_the_floor_and_root_scales_with_leg_length(family):
    poses, hips, stance = rigs.walking_motion()
    source_pose = rigs.person_pose(poses, hips)
    spec = SPECS[family]()
    target = rigs.spec_to_rig(spec)
    plan = solve.plan_retarget(PERSON, PERSON_JOINTS, target, spec.smpl_to_bone)
    motion = solve.retarget_motion(plan, source_pose)
    floor = solve.rest_floor(target, plan.target_bones)
    points = target.world_points(motion.pose[:, :, :3, 3])
    rest = target.rest_heads_world()
    for side_index, side in enumerate(("left", "right")):
        bones = [plan.target_bones[j] for j in solve.FOOT_POINTS[side]]
        sole = (points[:, bones, 2] - (rest[bones, 2] - floor)).min(axis=1)     # [T] above the floor
        planted = stance[:, side_index]
        assert planted.sum() > 10
        assert np.abs(sole[planted]).max() < FLOOR_TOLERANCE_M, (side, np.abs(sole[planted]).max())
    # Stride scaled by the leg-length ratio: the hips travel s times the source's distance.
    source_travel = np.linalg.norm(np.diff(PERSON.world_points(source_pose[:, 0, :3, 3])[:, :2], axis=0), axis=1).sum()
    target_travel = np.linalg.norm(np.diff(points[:, plan.root_bone, :2], axis=0), axis=1).sum()
    assert target_travel == pytest.approx(plan.scale * source_travel, rel=1e-6)
    assert plan.scale != pytest.approx(1.0, abs=0.03)


def test_floor_contact_correction_is_what_keeps_other_proportions_planted():
    poses, hips, stance = rigs.walking_motion()
    source_pose = rigs.person_pose(poses, hips)
    spec = rigs.ue_like()            # shins 8 % longer than the thighs' ratio: ankles sit higher
    target = rigs.spec_to_rig(spec)
    plan = solve.plan_retarget(PERSON, PERSON_JOINTS, target, spec.smpl_to_bone)
    corrected = solve.retarget_motion(plan, source_pose, floor_contact=True)
    raw = solve.retarget_motion(plan, source_pose, floor_contact=False)
    assert np.abs(raw.floor_offset).max() == 0.0
    assert np.abs(corrected.floor_offset).max() > 1e-3


def test_euler_and_axis_angle_channels_are_continuous_and_exact():
    spec = rigs.mixamo_like()
    target = rigs.spec_to_rig(spec)
    modes = tuple(solve.EULER_ORDERS[i % 6] if i % 7 else ("AXIS_ANGLE" if i % 2 else "QUATERNION")
                  for i in range(len(target.names)))
    target = solve.Rig(target.names, target.parents, target.rest, target.tails, target.object_matrix,
                       target.connected, modes, target.name)
    plan = solve.plan_retarget(PERSON, PERSON_JOINTS, target, spec.smpl_to_bone)
    motion = solve.retarget_motion(plan, random_pose(120, seed=5))
    for channel in solve.bone_channels(plan, motion):
        index = target.index[channel.name]
        expected = motion.basis[:, index, :3, :3]
        if channel.rotation_mode == "QUATERNION":
            got = rotations.quaternion_to_matrix(channel.rotation)
        elif channel.rotation_mode == "AXIS_ANGLE":
            got = rotations.axis_angle_to_matrix(channel.rotation[:, 1:] * channel.rotation[:, :1])
        else:
            got = solve.euler_to_matrix(channel.rotation, channel.rotation_mode)
            assert np.abs(np.diff(channel.rotation, axis=0)).max() < np.pi  # no 360-degree jumps
        np.testing.assert_allclose(got, expected, atol=1e-9)
        assert (channel.location is not None) == (index == plan.root_bone)


def test_euler_conversion_round_trips_every_order_and_gimbal_lock():
    rng = np.random.default_rng(1)
    for order in solve.EULER_ORDERS:
        angles = rng.uniform(-3, 3, (200, 3))
        matrices = solve.euler_to_matrix(angles, order)
        np.testing.assert_allclose(solve.euler_to_matrix(solve.matrix_to_euler(matrices, order), order), matrices,
                                   atol=1e-12)
        locked = angles.copy()
        locked[:, "XYZ".index(order[1])] = np.pi / 2
        matrices = solve.euler_to_matrix(locked, order)
        np.testing.assert_allclose(solve.euler_to_matrix(solve.matrix_to_euler(matrices, order), order), matrices,
                                   atol=1e-9)


# ------------------------------------------------------------------------------------------------ refusals
def test_not_a_humanoid_names_what_is_missing():
    target = rigs.spec_to_rig(rigs.not_humanoid())
    found = bone_maps.make_map("auto", target.names, target.parents)
    with pytest.raises(bone_maps.BoneMapError) as caught:
        solve.plan_retarget(PERSON, PERSON_JOINTS, target, found)
    message = str(caught.value)
    assert message.splitlines()[0].startswith("Retarget:") and "Bone Map" in message.splitlines()[0]
    for joint in bone_maps.REQUIRED_JOINTS:
        assert joint in message
    assert set(caught.value.unmapped) == set(bone_maps.REQUIRED_JOINTS)


def test_missing_limb_keeps_the_partial_map_for_editing():
    spec = rigs.mixamo_like()
    target = rigs.spec_to_rig(spec)
    partial = {j: b for j, b in spec.smpl_to_bone.items() if j not in ("left_elbow", "right_knee")}
    with pytest.raises(bone_maps.BoneMapError) as caught:
        solve.plan_retarget(PERSON, PERSON_JOINTS, target, partial)
    assert caught.value.unmapped == ("right_knee", "left_elbow")
    assert "not mapped: right_knee, left_elbow" in str(caught.value)
    assert caught.value.bone_map == partial


def test_crossed_chains_swapped_sides_and_unknown_bones_are_refused():
    spec = rigs.mixamo_like()
    target = rigs.spec_to_rig(spec)
    crossed = dict(spec.smpl_to_bone, left_knee=spec.smpl_to_bone["right_knee"], right_knee=spec.smpl_to_bone["left_knee"])
    with pytest.raises(bone_maps.BoneMapError, match="left_knee .* is not below left_hip"):
        solve.plan_retarget(PERSON, PERSON_JOINTS, target, crossed)
    swapped = {}
    for joint, bone in spec.smpl_to_bone.items():
        other = joint.replace("left_", "RIGHT_").replace("right_", "left_").replace("RIGHT_", "right_")
        swapped[other] = bone
    with pytest.raises(bone_maps.BoneMapError, match="left and right look swapped"):
        solve.plan_retarget(PERSON, PERSON_JOINTS, target, swapped)
    with pytest.raises(bone_maps.BoneMapError, match="the rig has no bone 'Nope'"):
        solve.plan_retarget(PERSON, PERSON_JOINTS, target, dict(spec.smpl_to_bone, head="Nope"))


def test_non_uniform_scale_connected_hips_and_unit_mismatch():
    spec = rigs.vrm_like()
    stretched = rigs.RigSpec(spec.name, spec.bones, np.diag([1.0, 2.0, 1.0, 1.0]), spec.smpl_to_bone)
    with pytest.raises(solve.RetargetError, match="non-uniform object scale"):
        solve.plan_retarget(PERSON, PERSON_JOINTS, rigs.spec_to_rig(stretched), spec.smpl_to_bone)
    connected = rigs.vrm_like()
    connected.bones = [rigs.BoneSpec(b.name, "Root" if b.name == "J_Bip_C_Hips" else b.parent, b.head, b.tail,
                                     connected=b.name == "J_Bip_C_Hips") for b in connected.bones]
    hips_head = next(b.head for b in connected.bones if b.name == "J_Bip_C_Hips")
    connected.bones.insert(0, rigs.BoneSpec("Root", None, np.zeros(3), hips_head))
    with pytest.raises(solve.RetargetError, match="connected to its parent"):
        solve.plan_retarget(PERSON, PERSON_JOINTS, rigs.spec_to_rig(connected), connected.smpl_to_bone)
    centimetres = rigs.mixamo_like()
    centimetres.object_matrix = np.eye(4)        # cm content without the 0.01 object scale: 100x taller, lying
    plan = solve.plan_retarget(PERSON, PERSON_JOINTS, rigs.spec_to_rig(centimetres), centimetres.smpl_to_bone)
    assert plan.scale > 50
    assert any("leg length" in w for w in plan.warnings) and any("upright" in w for w in plan.warnings)


def test_presets_round_trip_and_reject_other_files(tmp_path):
    spec = rigs.ue_like()
    path = bone_maps.write_preset(tmp_path / "presets" / "my_rig.json", spec.smpl_to_bone, "ue5")
    assert bone_maps.read_preset(path) == (spec.smpl_to_bone, "ue5")
    (tmp_path / "other.json").write_text('{"bones": {}}')
    with pytest.raises(bone_maps.BoneMapError, match="not a TRACE bone map preset"):
        bone_maps.read_preset(tmp_path / "other.json")
    (tmp_path / "bad.json").write_text('{"format": "trace_blender.bone_map", "bones": {"tail": "x"}}')
    with pytest.raises(bone_maps.BoneMapError, match="unknown joints: tail"):
        bone_maps.read_preset(tmp_path / "bad.json")
