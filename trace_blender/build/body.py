"""A person's skinned body: the shaped SMPL template mesh, 24 vertex groups and an Armature modifier."""
from __future__ import annotations

from typing import Any

import bpy
import numpy as np

from trace_format.smpl_file import SmplModelData

from .. import frames
from ..errors import SceneBuildError
from ..plan import PersonPlan
from . import tags
from .armature import JOINT_NAMES, PersonColour
from .rollback import CreatedDatablocks, unique_name


def build_body(armature: Any, collection: Any, person: PersonPlan, model: SmplModelData, colour: PersonColour,
               base: str, created: CreatedDatablocks) -> Any:
    """Shaped template mesh in the rest frame, 24 vertex groups, Armature modifier, parented."""
    vertices = frames.canonical_to_blender_rest(person.rest_vertices)  # [V, 3]
    faces = np.asarray(model.faces, np.int64)
    weights = np.asarray(model.weights, np.float64)  # [V, 24]
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
        raise SceneBuildError(f"the SMPL model's faces do not form a valid mesh ({model.source_path})")
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
    for joint, name in enumerate(JOINT_NAMES):
        group = body.vertex_groups.new(name=name)
        column = weights[:, joint]
        for vertex in np.flatnonzero(column > 0.0).tolist():
            group.add([vertex], float(column[vertex]), "REPLACE")
    modifier = body.modifiers.new(name="Armature", type="ARMATURE")
    modifier.object = armature
    return body
