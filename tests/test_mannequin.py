"""The default body (trace_blender.mannequin): a low-poly skinned mesh generated from the rest skeleton,
checked without Blender (shape, stature, floor, weights, symmetry, face orientation), and in Blender
(every import without an SMPL model gets one; it deforms with the bones; FBX exports carry it)."""
from __future__ import annotations

import numpy as np
import pytest

from trace_blender import mannequin
from trace_format import skeleton

REST = skeleton.load_default_skeleton()


def _pieces(faces: np.ndarray, count: int) -> np.ndarray:
    """Connected-component label of every face."""
    parent = np.arange(count)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, c in faces:
        for u, w in ((a, b), (b, c)):
            ru, rw = find(u), find(w)
            if ru != rw:
                parent[ru] = rw
    return np.array([find(int(face[0])) for face in faces])


def test_mesh_is_well_formed_and_stands_on_the_floor():
    body = mannequin.mannequin_from_skeleton(REST)
    vertices, faces, weights = body.vertices, body.faces, body.weights
    assert vertices.shape[1] == 3 and weights.shape == (vertices.shape[0], 24) and faces.shape[1] == 3
    assert 300 < vertices.shape[0] < 2000                            # low-poly
    assert faces.min() == 0 and faces.max() == vertices.shape[0] - 1
    assert np.all(weights >= 0) and np.allclose(weights.sum(1), 1.0)
    edges = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    assert np.linalg.norm(edges, axis=1).min() > 1e-5                # no degenerate triangles
    # Soles on the floor (y = 0), the top of the head at the stature the skeleton implies (~1.75 m).
    assert abs(vertices[:, 1].min()) < 5e-3
    assert vertices[:, 1].max() == pytest.approx(skeleton.DEFAULT_HEIGHT_M, abs=0.03)
    # Left/right mirror images of each other like the skeleton.
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    nearest = np.linalg.norm(mirrored[:, None] - vertices[None], axis=2).min(axis=1)
    assert nearest.max() < 1e-9


def _segment_distance(point: np.ndarray, start: np.ndarray, end: np.ndarray) -> float:
    along = end - start
    t = np.clip((point - start) @ along / max(along @ along, 1e-12), 0.0, 1.0)
    return float(np.linalg.norm(point - (start + t * along)))


def test_every_vertex_belongs_to_a_nearby_bone():
    body = mannequin.mannequin_from_skeleton(REST)
    children = skeleton.children_of()
    for vertex, joint in zip(body.vertices, body.weights.argmax(axis=1)):
        distance = min([float(np.linalg.norm(vertex - REST[joint]))]
                       + [_segment_distance(vertex, REST[joint], REST[child]) for child in children[joint]])
        assert distance < 0.15 * skeleton.DEFAULT_HEIGHT_M, (skeleton.SMPL_JOINT_NAMES[joint], distance)


def test_faces_point_outwards():
    body = mannequin.mannequin_from_skeleton(REST)
    vertices, faces = body.vertices, body.faces
    normals = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    labels = _pieces(faces, vertices.shape[0])
    for label in np.unique(labels):
        chosen = np.flatnonzero(labels == label)
        points = vertices[np.unique(faces[chosen])]
        centre = points.mean(axis=0)
        axis = np.linalg.svd(points - centre)[2][0]                  # the piece's centre line
        offsets = vertices[faces[chosen]].mean(axis=1) - centre
        radial = offsets - (offsets @ axis)[:, None] * axis
        caps = np.linalg.norm(radial, axis=1) < 0.3 * np.linalg.norm(offsets, axis=1)
        away = np.where(caps[:, None], offsets, radial)
        assert np.mean(np.einsum("ij,ij->i", normals[chosen], away) > 0) > 0.9


def test_follows_the_skeleton_and_refuses_what_is_not_a_human_in_metres():
    small = mannequin.mannequin_from_skeleton(REST * 0.6)
    assert small.vertices[:, 1].max() == pytest.approx(0.6 * skeleton.DEFAULT_HEIGHT_M, abs=0.03)
    with pytest.raises(ValueError, match="not a human stature"):
        mannequin.mannequin_from_skeleton(REST * 100.0)            # centimetres
    with pytest.raises(ValueError, match=r"\[24, 3\]"):
        mannequin.mannequin_from_skeleton(REST[:22])


# ------------------------------------------------------------------------------------------------ Blender
def test_imports_without_a_model_get_a_skinned_mannequin_that_deforms_and_exports(empty_scene, tmp_path):
    bpy = pytest.importorskip("bpy")
    from helpers.blender import evaluated_vertices
    from helpers.factories import make_result

    from trace_blender import build, exporting, plan
    from trace_blender.build.body import PROP_BODY_KIND

    result = make_result(people=2, frames=40, seed=4)
    summary = build.import_result(result, bpy.context, plan.ImportOptions(build_camera=False))
    generated = mannequin.mannequin_from_skeleton(REST)
    for person in summary.people:
        (body,) = build.bodies_of(person.armature)
        assert body == person.body and body[PROP_BODY_KIND] == "mannequin"
        assert [g.name for g in body.vertex_groups] == list(skeleton.SMPL_JOINT_NAMES)
        assert len(body.data.vertices) == generated.vertices.shape[0]
        assert body.modifiers["Armature"].object == person.armature
        # Linear blend skinning of the evaluated bones gives the evaluated mesh: the body moves with them.
        rest = np.array([v.co[:] for v in body.data.vertices])
        bones = person.armature.data.bones
        rest_inverse = np.array([np.linalg.inv(np.array(bones[n].matrix_local)) for n in skeleton.SMPL_JOINT_NAMES])
        for frame in (person.first_frame, person.first_frame + 17):
            got = evaluated_vertices(bpy, body, frame)
            evaluated = person.armature.evaluated_get(bpy.context.evaluated_depsgraph_get())
            pose = np.array([np.array(evaluated.pose.bones[n].matrix) for n in skeleton.SMPL_JOINT_NAMES])
            skinning = np.einsum("vj,jab->vab", generated.weights, pose @ rest_inverse)      # [V, 4, 4]
            expected = np.einsum("vab,vb->va", skinning, np.c_[rest, np.ones(len(rest))])[:, :3]
            world = np.array(person.armature.matrix_world)
            expected = expected @ world[:3, :3].T + world[:3, 3]
            np.testing.assert_allclose(got, expected, atol=1e-4)
            assert np.ptp(got - rest @ world[:3, :3].T, axis=0).max() > 0.05            # it really moved

    out = tmp_path / "people.fbx"
    exporting.export_people(bpy.context, [p.armature for p in summary.people], out, "unity")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(out))
    meshes = [ob for ob in bpy.context.scene.objects if ob.type == "MESH"]
    assert len(meshes) == 2 and all(len(m.vertex_groups) == 24 for m in meshes)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    summary = build.import_result(result, bpy.context, plan.ImportOptions(build_camera=False, build_mesh=False))
    assert all(not build.bodies_of(p.armature) and p.body is None for p in summary.people)


def test_cli_no_body_imports_armatures_only(empty_scene, tmp_path):
    bpy = pytest.importorskip("bpy")
    from helpers.factories import make_result
    from trace_format.npz import write_result

    from trace_blender import build, cli

    path = write_result(tmp_path / "r.npz", make_result(people=1, frames=10))
    assert cli.main(["import", str(path), "--no-body"]) == 0
    (armature,) = build.imported_people(bpy.context.scene)
    assert not build.bodies_of(armature) and not bpy.data.meshes
    assert cli.main(["import", str(path)]) == 0
    (armature,) = build.imported_people(bpy.context.scene)
    assert len(build.bodies_of(armature)) == 1
