"""A person's skinned body: the shaped SMPL template mesh when a model file is given, else the low-poly
mannequin generated from the rest skeleton (trace_blender.mannequin); 24 vertex groups, an Armature
modifier, parented to the armature."""
from __future__ import annotations

from typing import Any

import bpy
import numpy as np

from trace_format.smpl_file import SmplModelData

from .. import frames, mannequin
from ..errors import SceneBuildError
from ..plan import PersonPlan
from . import tags
from .armature import JOINT_NAMES, PersonColour
from .rollback import CreatedDatablocks, unique_name


PROP_BODY_KIND = "trace_body"  # "smpl" | "mannequin"


def build_body(armature: Any, collection: Any, person: PersonPlan, model: SmplModelData | None, colour: PersonColour,
               base: str, created: CreatedDatablocks) -> Any:
    """Skinned body in the rest frame: the shaped SMPL template with a model (and rest vertices), else the
    mannequin around the person's rest skeleton."""
    if model is not None and person.rest_vertices is not None:
        kind, canonical = "smpl", person.rest_vertices
        faces, weights = np.asarray(model.faces, np.int64), np.asarray(model.weights, np.float64)
        problem = f"the SMPL model's faces do not form a valid mesh ({model.source_path})"
    else:
        try:
            generated = mannequin.mannequin_from_skeleton(person.rest_joints)
        except ValueError as exc:
            raise SceneBuildError(f"cannot build the default body for person {person.track_id}: {exc}") from exc
        kind, canonical, faces, weights = "mannequin", generated.vertices, generated.faces, generated.weights
        problem = "the generated mannequin is not a valid mesh (a bug: please report it)"
    vertices = frames.canonical_to_blender_rest(canonical)  # [V, 3]
    mesh_name = unique_name(bpy.data.meshes, f"{base}_body")
    mesh = created.add("meshes", bpy.data.meshes.new(mesh_name))
    mesh.vertices.add(vertices.shape[0])
    mesh.vertices.foreach_set("co", vertices.astype(np.float32).ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.astype(np.int32).ravel())
    mesh.polygons.add(faces.shape[0])
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.update()
    if mesh.validate(verbose=False):
        raise SceneBuildError(problem)
    mesh.polygons.foreach_set("use_smooth", np.ones(faces.shape[0], bool))

    material = created.add("materials", bpy.data.materials.new(unique_name(bpy.data.materials, f"{base}_skin")))
    material.diffuse_color = colour.rgba
    mesh.materials.append(material)

    body = created.add("objects", bpy.data.objects.new(unique_name(bpy.data.objects, f"{base}_body"), mesh))
    collection.objects.link(body)
    body.parent = armature
    body.color = colour.rgba
    body[tags.PROP_TRACK_ID] = person.track_id
    body[tags.PROP_PERSON] = base
    body[tags.PROP_ROLE] = "body"
    body[PROP_BODY_KIND] = kind
    for joint, name in enumerate(JOINT_NAMES):
        group = body.vertex_groups.new(name=name)
        column = weights[:, joint]
        for vertex in np.flatnonzero(column > 0.0).tolist():
            group.add([vertex], float(column[vertex]), "REPLACE")
    modifier = body.modifiers.new(name="Armature", type="ARMATURE")
    modifier.object = armature
    return body
