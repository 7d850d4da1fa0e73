"""FBX for Unity and Unreal through Blender's own FBX writer, from engine skeletons (export_rig).

The people are rebuilt, for the length of the export only, as "export rigs" in a scene of their own:
bones already in the engine's axes, units and names (export_rig.engine_skeleton), with a rest key on
frame -1, where the scene stands while Blender collects node defaults (node defaults and bind pose =
the T-pose). The rig object carries the inverse of the exporter's axis conversion, so the file's
root node has an identity transform (no rotated or scaled root). Blender's writer bakes animation
per frame and bone in Python (~30 s for 3 people x 1 minute), so it bakes only a two-frame probe
(_probe); finish_fbx then checks Blender's probe keys against ours (axes, units, Euler order) and
writes every frame itself with numpy: key i at t = i / fps, Euler XYZ angles that continue from the
rest without jumps (export_rig.continuous_euler_xyz_degrees), curves equal to their node default
left out. A skeleton-only file gets a bind pose added (Blender writes one only for skinned meshes).
Nothing of the user's scene is touched except object names that the file needs, which are
borrowed and given back.
"""
from __future__ import annotations

import dataclasses
import os
import struct
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import bpy
import numpy as np
from mathutils import Matrix

from trace_format import atomic
from .build.keys import assign_action, fill_curve
from .errors import ExportError
from .export_rig import (EngineSkeleton, blender_pose_basis, continuous_euler_xyz_degrees, euler_xyz_to_matrix,
                         globals_from_local)
from .frames import blender_frame_rate

UNREAL_ARMATURE_NAME = "Armature"  # Unreal drops a root node of this name instead of adding a bone
# A curve that never leaves its node's default (bone offsets, scales, unused axes) is removed after
# writing; Blender's own simplify would also drop constant curves that differ from the default.
# Translation in metres (scaled to the file's units), rotation in degrees, scale as a factor.
CONSTANT_TOLERANCE = {b"Lcl Translation": 1e-5, b"Lcl Rotation": 1e-4, b"Lcl Scaling": 1e-6}

FBX_COMMON: dict[str, Any] = dict(
    check_existing=False, use_selection=False, use_visible=False, use_active_collection=False,
    object_types={"ARMATURE", "MESH"}, global_scale=1.0, apply_unit_scale=True,
    apply_scale_options="FBX_SCALE_UNITS", bake_space_transform=False,
    use_mesh_modifiers=False, mesh_smooth_type="FACE", use_custom_props=False,
    add_leaf_bones=False, use_armature_deform_only=True, armature_nodetype="NULL",
    primary_bone_axis="Y", secondary_bone_axis="X",
    bake_anim=True, bake_anim_use_all_bones=True, bake_anim_use_nla_strips=False,
    bake_anim_use_all_actions=False, bake_anim_force_startend_keying=True,
    bake_anim_step=1.0, bake_anim_simplify_factor=0.0,
)
FBX_AXES: dict[str, dict[str, str]] = {
    "unity": dict(axis_forward="-Z", axis_up="Y"),   # y up; the character faces +z
    "unreal": dict(axis_forward="Y", axis_up="Z"),   # z up, the send2ue axes
}
# Blender units per metre in the export scene: Unreal's rig is built in centimetres.
SCENE_UNIT = {"unity": 1.0, "unreal": 0.01}


def write_fbx(context: Any, skeletons: list[EngineSkeleton], fps: float, path: str | os.PathLike, preset: str,
              take_name: str) -> Path:
    """Write one FBX with every skeleton (one export rig each), atomically."""
    if preset not in FBX_AXES:
        raise ExportError(f"no FBX preset {preset!r}")
    target = Path(path)
    if len({skeleton.posed.shape[0] for skeleton in skeletons}) != 1:
        raise ExportError("every person of one FBX file must be sampled on the same frames")
    probes = [_probe(skeleton) for skeleton in skeletons]
    scene = bpy.data.scenes.new(f"TRACE export {uuid.uuid4().hex[:8]}")
    made: list[tuple[str, Any]] = []
    try:
        scene.render.fps, scene.render.fps_base = blender_frame_rate(fps)
        scene.frame_start, scene.frame_end = 0, 1       # the probe's two frames (see _probe)
        scene.unit_settings.system = "METRIC"
        scene.unit_settings.scale_length = SCENE_UNIT[preset]
        view_layer = scene.view_layers[0]
        axes = skeletons[0].axes
        rig_matrix = np.eye(4)
        rig_matrix[:3, :3] = axes.T       # cancels the exporter's axis conversion: root node = identity
        names: dict[Any, str] = {}
        with context.temp_override(scene=scene, view_layer=view_layer):
            for skeleton, probe in zip(skeletons, probes):
                rig = _build_rig(scene, view_layer, probe, rig_matrix, take_name, made)
                single_unreal = preset == "unreal" and len(skeletons) == 1
                names[rig] = UNREAL_ARMATURE_NAME if single_unreal else skeleton.person
                for child in rig.children:
                    names[child] = child["trace_export_name"]
        scene.frame_set(-1)               # the rest key: node defaults = T-pose
        with _borrowed_names(names), atomic.atomic_path(target, suffix=".fbx") as temporary:
            with context.temp_override(scene=scene, view_layer=view_layer):
                outcome = bpy.ops.export_scene.fbx(filepath=str(temporary), **FBX_COMMON, **FBX_AXES[preset])
            if "FINISHED" not in outcome:
                raise ExportError(f"the FBX exporter returned {sorted(outcome)} for {target.name}")
            finish_fbx(temporary, skeletons, probes, [names[rig] for rig, _ in _rigs(made)], fps, take_name)
    except RuntimeError as exc:           # Blender reports operator errors as RuntimeError
        raise ExportError(f"FBX export failed: {exc}") from exc
    finally:
        _remove(made)
        bpy.data.scenes.remove(scene)
    return target


def _probe(skeleton: EngineSkeleton) -> EngineSkeleton:
    """The skeleton on two frames only: its first pose, then that pose with every bone moved a little.

    Blender's writer bakes every frame in Python (~30 s for 3 people x 1 minute), so it bakes only
    these two; finish_fbx checks its two keys against ours (proving axes, units and Euler order
    agree) and writes every frame from the engine skeleton. The second frame moves every channel,
    so Blender writes a curve for each one.
    """
    first = skeleton.local(skeleton.posed[:1])[0]                            # [J, 4, 4]
    nudge = np.eye(4)
    nudge[:3, :3] = euler_xyz_to_matrix(np.array([0.05, 0.07, 0.09]))
    nudge[:3, 3] = np.array([0.01, 0.02, 0.03]) * skeleton.units
    second = globals_from_local(first @ nudge, skeleton.parents)
    return dataclasses.replace(skeleton, posed=np.stack([skeleton.posed[0], second]))


def _rigs(made: list[tuple[str, Any]]) -> list[tuple[Any, None]]:
    return [(item, None) for kind, item in made if kind == "objects" and item.type == "ARMATURE"]


def _build_rig(scene: Any, view_layer: Any, skeleton: EngineSkeleton, rig_matrix: np.ndarray, take_name: str,
               made: list[tuple[str, Any]]) -> Any:
    data = bpy.data.armatures.new(f"{skeleton.person}_export")
    made.append(("armatures", data))
    rig = bpy.data.objects.new(f"{skeleton.person}_export", data)
    made.append(("objects", rig))
    scene.collection.objects.link(rig)
    rig.matrix_world = Matrix(rig_matrix.tolist())
    view_layer.objects.active = rig
    with bpy.context.temp_override(scene=scene, view_layer=view_layer, active_object=rig, object=rig):
        bpy.ops.object.mode_set(mode="EDIT")
        try:
            _edit_bones(data, skeleton)
        finally:
            bpy.ops.object.mode_set(mode="OBJECT")
    for name in skeleton.names:

        rig.pose.bones[name].rotation_mode = "QUATERNION"
    locations, quaternions = blender_pose_basis(skeleton)          # [T, J, 3], [T, J, 4]
    rest_key = np.zeros((1,) + locations.shape[1:])
    locations = np.concatenate([rest_key, locations])
    quaternions = np.concatenate([np.tile([1.0, 0, 0, 0], (1, quaternions.shape[1], 1)), quaternions])
    frames = np.arange(-1, locations.shape[0] - 1, dtype=np.float32)
    action = bpy.data.actions.new(take_name)
    made.append(("actions", action))
    new_curve = assign_action(rig, action)
    for joint, name in enumerate(skeleton.names):
        if np.abs(locations[:, joint]).max() > 1e-9:
            for axis in range(3):
                fill_curve(new_curve(f'pose.bones["{name}"].location', axis, name), frames, locations[:, joint, axis])
        for component in range(4):
            fill_curve(new_curve(f'pose.bones["{name}"].rotation_quaternion', component, name), frames,
                       quaternions[:, joint, component])
    if skeleton.body is not None:
        _build_body(scene, rig, skeleton, made)
    return rig


def _edit_bones(data: Any, skeleton: EngineSkeleton) -> None:
    """Edit bones with exactly the skeleton's rest frames (length: to the first child, else 8 cm)."""
    bones = []
    heads = skeleton.rest[:, :3, 3]
    for joint, name in enumerate(skeleton.names):
        children = [c for c, p in enumerate(skeleton.parents) if p == joint]
        length = max([float(np.linalg.norm(heads[c] - heads[joint])) for c in children] + [0.0])
        length = length if length > 0.02 * skeleton.units else 0.08 * skeleton.units
        bone = data.edit_bones.new(name)
        bone.head, bone.tail = (0.0, 0.0, 0.0), (0.0, length, 0.0)
        bone.matrix = Matrix(skeleton.rest[joint].tolist())
        bone.use_deform = True
        bones.append(bone)
    for joint, parent in enumerate(skeleton.parents):
        if parent >= 0:
            bones[joint].parent = bones[parent]


def _build_body(scene: Any, rig: Any, skeleton: EngineSkeleton, made: list[tuple[str, Any]]) -> Any:
    body = skeleton.body
    vertices = np.asarray(body.vertices, np.float32)
    triangles = np.asarray(body.triangles, np.int32)
    mesh = bpy.data.meshes.new(f"{body.name}_export")
    made.append(("meshes", mesh))
    mesh.vertices.add(vertices.shape[0])
    mesh.vertices.foreach_set("co", vertices.ravel())
    mesh.loops.add(triangles.size)
    mesh.loops.foreach_set("vertex_index", triangles.ravel())
    mesh.polygons.add(triangles.shape[0])
    mesh.polygons.foreach_set("loop_start", np.arange(0, triangles.size, 3, dtype=np.int32))
    mesh.update()
    mesh.polygons.foreach_set("use_smooth", np.ones(triangles.shape[0], bool))
    ob = bpy.data.objects.new(f"{body.name}_export", mesh)
    made.append(("objects", ob))
    scene.collection.objects.link(ob)
    ob.parent = rig
    ob.matrix_parent_inverse = Matrix.Identity(4)
    ob["trace_export_name"] = body.name
    weights = np.asarray(body.weights, np.float64)
    for joint, source in enumerate(skeleton.source_joint):
        group = ob.vertex_groups.new(name=skeleton.names[joint])
        if source < 0:
            continue
        column = weights[:, source]
        for vertex in np.flatnonzero(column > 0.0).tolist():
            group.add([vertex], float(column[vertex]), "REPLACE")
    modifier = ob.modifiers.new(name="Armature", type="ARMATURE")
    modifier.object = rig
    return ob


def _remove(made: list[tuple[str, Any]]) -> None:
    for kind in ("objects", "meshes", "armatures", "actions"):
        for item_kind, item in reversed(made):
            if item_kind == kind:
                try:
                    getattr(bpy.data, kind).remove(item)
                except ReferenceError:
                    pass


@contextmanager
def _borrowed_names(names: dict[Any, str]) -> Iterator[None]:
    """Give each object its wanted name; objects of the user's that hold one are renamed and given it back."""
    holders = []
    for ob, wanted in names.items():
        holder = bpy.data.objects.get(wanted)
        if holder is not None and holder not in names:
            original = holder.name
            holder.name = f"{wanted}_{uuid.uuid4().hex[:8]}"
            holders.append((holder, original))
    saved = [(ob, ob.name) for ob in names]
    try:
        for ob, wanted in names.items():
            ob.name = wanted
            if ob.name != wanted:
                raise ExportError(f"two people of one FBX file would both be called {wanted!r}")
        yield
    finally:
        for ob, name in saved:
            ob.name = f"{name}_{uuid.uuid4().hex[:8]}"
        for holder, original in holders:
            holder.name = original


# ------------------------------------------------------------------------------------------- bind pose
def _fbx_modules() -> tuple[Any, Any]:
    from io_scene_fbx import encode_bin, parse_fbx  # Blender's own FBX reader / writer (pure Python)
    return parse_fbx, encode_bin


_SCALARS = {ord("Y"): "<h", ord("C"): "<c", ord("B"): "?", ord("Z"): "<b", ord("I"): "<i", ord("F"): "<f",
            ord("D"): "<d", ord("L"): "<q"}
_ARRAYS = {ord("b"): np.bool_, ord("c"): np.uint8, ord("i"): np.int32, ord("l"): np.int64, ord("f"): np.float32,
           ord("d"): np.float64}


def _to_writer(parsed: Any, encode_bin: Any) -> Any:
    """A parsed FBX element tree -> encode_bin.FBXElem (properties re-packed byte for byte)."""
    elem = encode_bin.FBXElem(parsed.id)
    for kind, value in zip(parsed.props_type, parsed.props):
        if kind in _SCALARS:
            elem.props_type.append(kind)
            elem.props.append(struct.pack(_SCALARS[kind], value))
        elif kind in (ord("S"), ord("R")):
            elem.props_type.append(kind)
            elem.props.append(struct.pack("<I", len(value)) + value)
        else:
            data = np.asarray(value, _ARRAYS[kind])
            elem._add_array_helper(data.tobytes(), kind, int(data.size))
    elem.elems = [_to_writer(child, encode_bin) for child in parsed.elems]
    return elem


def _child(elem: Any, name: bytes) -> Any | None:
    return next((e for e in elem.elems if e.id == name), None)


def finish_fbx(path: Path, skeletons: list[EngineSkeleton], probes: list[EngineSkeleton], rig_names: list[str],
               fps: float, take_name: str) -> None:
    """Rewrite Blender's FBX: every frame's keys, drop curves that carry nothing, add a bind pose where
    there is none."""
    parse_fbx, encode_bin = _fbx_modules()
    root, version = parse_fbx.parse(str(path))
    _fill_animation(root, skeletons, probes, fps, take_name)
    writer_root = _to_writer(root, encode_bin)
    removed = _drop_constant_curves(root, writer_root, skeletons[0].units)
    poses = _add_bind_poses(root, writer_root, skeletons, rig_names, encode_bin)
    definitions = _child(writer_root, b"Definitions")
    _adjust_definition(definitions, b"Pose", poses, encode_bin)
    for kind, count in removed.items():
        _adjust_definition(definitions, kind, -count, encode_bin)
    encode_bin.write(str(path), writer_root, version)


FBX_KTIME = 46186158000  # FBX time units per second
_AXES = (b"d|X", b"d|Y", b"d|Z")
PROBE_TOLERANCE = 1e-3   # metres / rotation-matrix elements


def _fill_animation(root: Any, skeletons: list[EngineSkeleton], probes: list[EngineSkeleton], fps: float,
                    take_name: str) -> None:
    """Replace the two probe keys Blender wrote on every bone curve by the skeleton's every frame (key i
    at t = i / fps), after checking that Blender's keys equal ours for the probe."""
    objects = _child(root, b"Objects")
    by_id = {e.props[0]: e for e in objects.elems if e.props}
    models = {e.props[1].split(b"\x00\x01")[0].decode("utf-8"): e for e in objects.elems if e.id == b"Model"}
    node_of: dict[tuple[int, bytes], int] = {}
    curves_of: dict[int, dict[bytes, Any]] = {}
    for c in _child(root, b"Connections").elems:
        if c.props[0] != b"OP" or by_id.get(c.props[1]) is None:
            continue
        kind = by_id[c.props[1]].id
        if kind == b"AnimationCurveNode":
            node_of[(c.props[2], c.props[3])] = c.props[1]
        elif kind == b"AnimationCurve":
            curves_of.setdefault(c.props[2], {})[c.props[3]] = by_id[c.props[1]]
    count = skeletons[0].posed.shape[0]
    times = np.round(np.arange(count) * (FBX_KTIME / fps)).astype(np.int64)
    filled: set[int] = set()
    for skeleton, probe in zip(skeletons, probes):
        local = skeleton.local(skeleton.posed)                       # [T, J, 4, 4]
        probe_local = probe.local(probe.posed)                       # [2, J, 4, 4]
        # Node defaults = our rest (Blender's are its float32 evaluation of it), the Euler solution
        # nearest Blender's; every frame's angles continue from there.
        rest_local = skeleton.local(skeleton.rest)
        blender_defaults = np.array([_model_property(models[name], b"Lcl Rotation") for name in skeleton.names])
        rest_rotations = continuous_euler_xyz_degrees(rest_local[None, :, :3, :3], blender_defaults)[0]
        rotations = continuous_euler_xyz_degrees(local[..., :3, :3], rest_rotations)   # [T, J, 3]
        for joint, name in enumerate(skeleton.names):
            model = models[name]
            _set_model_property(model, b"Lcl Translation", rest_local[joint, :3, 3])
            _set_model_property(model, b"Lcl Rotation", rest_rotations[joint])
            channels = ((b"Lcl Translation", local[:, joint, :3, 3], probe_local[:, joint, :3, 3]),
                        (b"Lcl Rotation", rotations[:, joint], probe_local[:, joint, :3, :3]))
            for prop, values, expected in channels:
                curves = curves_of.get(node_of.get((model.props[0], prop)), {})
                if set(curves) != set(_AXES):
                    raise ExportError(f"Blender's FBX writer left out {prop.decode()} curves of bone {name} "
                                      "(a bug in this exporter: please report it)")
                written = np.stack([np.asarray(_child(curves[axis], b"KeyValueFloat").props[0], np.float64)
                                    for axis in _AXES], axis=-1)
                # Blender evaluates in float32 (~1e-4 down a leg); a wrong axis, unit or order is off by
                # the probe's nudge (1-3 cm, 3-5 degrees) or more.
                if prop == b"Lcl Translation":
                    error = np.abs(written - expected).max() / skeleton.units if written.shape[0] == 2 else np.inf
                else:
                    error = (np.abs(euler_xyz_to_matrix(np.radians(written)) - expected).max()
                             if written.shape[0] == 2 else np.inf)
                ok = error < PROBE_TOLERANCE
                if not ok:
                    raise ExportError(f"Blender's FBX writer and the export rig disagree on bone {name} "
                                      f"({prop.decode()}, {error:.2g}): a bug in this exporter, please report it")
                for axis, curve in enumerate(curves[a] for a in _AXES):
                    _set_keys(curve, times, values[:, axis])
                    filled.add(curve.props[0])
    for element in objects.elems:          # rig and mesh nodes, scales: constant, on the same frames
        if element.id == b"AnimationCurve" and element.props[0] not in filled:
            first = float(np.asarray(_child(element, b"KeyValueFloat").props[0])[0])
            _set_keys(element, times, np.full(count, first))
    _set_take(root, objects, take_name, int(times[-1]))


def _model_property(model: Any, name: bytes) -> np.ndarray:
    properties = _child(model, b"Properties70")
    for p in properties.elems if properties is not None else []:
        if p.props[0] == name:
            return np.array(p.props[4:7], np.float64)
    return np.zeros(3)


def _set_model_property(model: Any, name: bytes, value: np.ndarray) -> None:
    properties = _child(model, b"Properties70")
    for p in properties.elems if properties is not None else []:
        if p.props[0] == name:
            p.props[4:7] = [float(v) for v in value]
            return


def _set_keys(curve: Any, times: np.ndarray, values: np.ndarray) -> None:
    values = np.asarray(values, np.float32)
    _child(curve, b"KeyTime").props[0] = times
    _child(curve, b"KeyValueFloat").props[0] = values
    _child(curve, b"KeyAttrRefCount").props[0] = np.array([len(times)], np.int32)
    _child(curve, b"Default").props[0] = float(values[0])


def _set_take(root: Any, objects: Any, take_name: str, stop: int) -> None:
    """The animation stack, its layer and the Takes entry named `take_name`, spanning 0 .. stop."""
    name = take_name.encode("utf-8")
    for element in objects.elems:
        if element.id == b"AnimationStack":
            element.props[1] = name + b"\x00\x01AnimStack"
            properties = _child(element, b"Properties70")
            for p in properties.elems if properties is not None else []:
                if p.props[0] in (b"LocalStop", b"ReferenceStop"):
                    p.props[4] = stop
                elif p.props[0] in (b"LocalStart", b"ReferenceStart"):
                    p.props[4] = 0
        elif element.id == b"AnimationLayer":
            element.props[1] = name + b"\x00\x01AnimLayer"
    settings = _child(_child(root, b"GlobalSettings"), b"Properties70")
    for p in settings.elems:
        if p.props[0] == b"TimeSpanStart":
            p.props[4] = 0
        elif p.props[0] == b"TimeSpanStop":
            p.props[4] = stop
    takes = _child(root, b"Takes")
    take = _child(takes, b"Take") if takes is not None else None
    if take is not None:
        take.props[0] = name
        _child(takes, b"Current").props[0] = name
        _child(take, b"FileName").props[0] = name + b".tak"
        for field in (b"LocalTime", b"ReferenceTime"):
            _child(take, field).props[:] = [0, stop]


def _drop_constant_curves(root: Any, writer_root: Any, units: float) -> dict[bytes, int]:
    """Remove every AnimationCurve whose keys all equal its model property's default (and curve nodes
    left without curves), with their connections."""
    objects = _child(root, b"Objects")
    by_id = {e.props[0]: e for e in objects.elems if e.props}
    connections = _child(root, b"Connections").elems
    curve_target = {}     # curve id -> (curve node id, b"d|X")
    node_target = {}      # curve node id -> (model id, property name)
    for c in connections:
        if c.props[0] == b"OP" and by_id.get(c.props[1]) is not None:
            kind = by_id[c.props[1]].id
            if kind == b"AnimationCurve":
                curve_target[c.props[1]] = (c.props[2], c.props[3])
            elif kind == b"AnimationCurveNode":
                node_target[c.props[1]] = (c.props[2], c.props[3])
    defaults = {}
    for e in objects.elems:
        if e.id == b"Model":
            properties = _child(e, b"Properties70")
            for p in properties.elems if properties is not None else []:
                if p.props[0] in CONSTANT_TOLERANCE:
                    defaults[(e.props[0], p.props[0])] = np.array(p.props[4:7], np.float64)
    gone: set[int] = set()
    for curve_id, (node_id, channel) in curve_target.items():
        model_id, prop = node_target.get(node_id, (None, None))
        default = defaults.get((model_id, prop))
        if default is None:
            continue
        values = np.asarray(_child(by_id[curve_id], b"KeyValueFloat").props[0], np.float64)
        axis = b"XYZ".index(channel[-1:])
        tolerance = CONSTANT_TOLERANCE[prop] * (units if prop == b"Lcl Translation" else 1.0)
        if np.abs(values - default[axis]).max() <= tolerance:
            gone.add(curve_id)
    left = {}
    for curve_id, (node_id, _) in curve_target.items():
        left[node_id] = left.get(node_id, 0) + (curve_id not in gone)
    gone |= {node_id for node_id, count in left.items() if count == 0}
    removed = {b"AnimationCurve": sum(by_id[i].id == b"AnimationCurve" for i in gone),
               b"AnimationCurveNode": sum(by_id[i].id == b"AnimationCurveNode" for i in gone)}
    writer_objects = _child(writer_root, b"Objects")
    writer_objects.elems = [w for w, e in zip(writer_objects.elems, objects.elems)
                            if not (e.props and e.props[0] in gone)]
    writer_connections = _child(writer_root, b"Connections")
    writer_connections.elems = [w for w, c in zip(writer_connections.elems, connections)
                                if c.props[1] not in gone and c.props[2] not in gone]
    return removed


def _add_bind_poses(root: Any, writer_root: Any, skeletons: list[EngineSkeleton], rig_names: list[str],
                    encode_bin: Any) -> int:
    """A BindPose (rig node + every bone at rest) per rig when Blender wrote none (skeleton-only files)."""
    objects = _child(root, b"Objects")
    if any(e.id == b"Pose" and b"BindPose" in e.props for e in objects.elems):
        return 0
    models = {}
    for e in objects.elems:
        if e.id == b"Model":
            models[e.props[1].split(b"\x00\x01")[0].decode("utf-8")] = e.props[0]
    writer_objects = _child(writer_root, b"Objects")
    for skeleton, rig_name in zip(skeletons, rig_names):
        nodes = [(models[rig_name], np.eye(4))] + [(models[n], skeleton.rest[j]) for j, n in enumerate(skeleton.names)]
        pose = encode_bin.FBXElem(b"Pose")
        pose.add_int64(int(uuid.uuid4().int >> 65))
        pose.add_string(f"{rig_name}_bind".encode() + b"\x00\x01Pose")
        pose.add_string(b"BindPose")
        for field, value in ((b"Type", b"BindPose"),):
            child = encode_bin.FBXElem(field)
            child.add_string(value)
            pose.elems.append(child)
        version_elem = encode_bin.FBXElem(b"Version")
        version_elem.add_int32(100)
        count = encode_bin.FBXElem(b"NbPoseNodes")
        count.add_int32(len(nodes))
        pose.elems += [version_elem, count]
        for node_id, matrix in nodes:
            pose_node = encode_bin.FBXElem(b"PoseNode")
            node = encode_bin.FBXElem(b"Node")
            node.add_int64(int(node_id))
            values = encode_bin.FBXElem(b"Matrix")
            values.add_float64_array(np.ascontiguousarray(matrix.T, np.float64).ravel())  # FBX: column-major
            pose_node.elems += [node, values]
            pose.elems.append(pose_node)
        writer_objects.elems.append(pose)
    return len(skeletons)


def _adjust_definition(definitions: Any, kind: bytes, change: int, encode_bin: Any) -> None:
    """Definitions count the objects of every type: add `change` to `kind` (and to the total)."""
    if change == 0:
        return
    total = _child(definitions, b"Count")
    label = struct.pack("<I", len(kind)) + kind
    for object_type in definitions.elems:
        if object_type.id == b"ObjectType" and object_type.props and object_type.props[0] == label:
            count = _child(object_type, b"Count")
            count.props[0] = struct.pack("<i", struct.unpack("<i", count.props[0])[0] + change)
            break
    else:
        object_type = encode_bin.FBXElem(b"ObjectType")
        object_type.add_string(kind)
        count = encode_bin.FBXElem(b"Count")
        count.add_int32(change)
        object_type.elems.append(count)
        definitions.elems.append(object_type)
    if total is not None:
        total.props[0] = struct.pack("<i", struct.unpack("<i", total.props[0])[0] + change)
