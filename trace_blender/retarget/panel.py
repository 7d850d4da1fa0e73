"""The Retarget panel: pick an imported person and your character's armature, find (or edit) the bone
map, save / load it as a preset, bake. Settings live on the scene, so the map is saved with the file.

Operators only collect settings and report; the work is `bone_maps`, `solve` and `bake`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, PointerProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from .. import exporting
from ..build.tags import PROP_TRACK_ID
from ..errors import TraceBlenderError
from . import bake, bone_maps

FAMILY_LABELS = {"auto": ("Automatic", "By family if the names fit one, else by name and hierarchy"),
                 "mixamo": ("Mixamo", "mixamorig:Hips, LeftUpLeg ..."),
                 "ue5": ("UE5 Mannequin", "Manny / Quinn: pelvis, thigh_l, spine_01 ..."),
                 "rigify": ("Rigify", "Metarig or generated rig (FK controls)"),
                 "vrm": ("VRM", "VRM humanoid / VRoid J_Bip_* bones")}
RIG_ITEMS = [(key, *FAMILY_LABELS[key]) for key in bone_maps.RIG_FAMILIES]
PRESET_FOLDER = "presets/trace_blender/bone_maps"


def settings_of(context: Any) -> Any:
    return context.scene.trace_retarget


def _is_person(_self: Any, ob: Any) -> bool:
    return ob.type == "ARMATURE" and PROP_TRACK_ID in ob.keys()


def _is_character(_self: Any, ob: Any) -> bool:
    return ob.type == "ARMATURE" and PROP_TRACK_ID not in ob.keys()


class TRACE_RetargetBone(bpy.types.PropertyGroup):
    joint: StringProperty(name="Joint")
    bone: StringProperty(name="Bone", description="The character's bone that plays this joint (empty: none)")


class TRACE_RetargetSettings(bpy.types.PropertyGroup):
    source: PointerProperty(name="Person", type=bpy.types.Object, poll=_is_person,
                            description="The imported TRACE person whose motion is retargeted")
    target: PointerProperty(name="Character", type=bpy.types.Object, poll=_is_character,
                            description="Your character's armature that receives the motion")
    rig: EnumProperty(name="Rig", items=RIG_ITEMS,
                      default="auto", description="Bone naming of the character's rig")
    bones: CollectionProperty(type=TRACE_RetargetBone)
    floor_contact: BoolProperty(name="Keep Feet on Floor", default=True,
                                description="Shift the character per frame so planted feet stay on the floor")
    show_map: BoolProperty(name="Bone Map", default=False, description="Show and edit the bone map")


def current_map(settings: Any) -> dict[str, str]:
    return {item.joint: item.bone for item in settings.bones if item.bone}


def set_map(settings: Any, bone_map: dict[str, str]) -> None:
    """One row per SMPL joint, in SMPL order (empty bone = not mapped)."""
    settings.bones.clear()
    for joint in bone_maps.SMPL_JOINTS:
        item = settings.bones.add()
        item.joint, item.bone = joint, bone_map.get(joint, "")


def find_bones(settings: Any) -> bone_maps.MapCheck:
    target = settings.target
    rig = bake.rig_from_armature(target)
    deform = [bool(target.data.bones[name].use_deform) for name in rig.names]
    set_map(settings, bone_maps.make_map(settings.rig, rig.names, rig.parents, deform))
    return bone_maps.check_map(current_map(settings), rig.names, rig.parents)


def preset_folder() -> Path:
    return Path(bpy.utils.user_resource("SCRIPTS", path=PRESET_FOLDER, create=True))


class TRACE_OT_retarget_find_bones(bpy.types.Operator):
    """Fill the bone map from the rig's bone names and hierarchy"""

    bl_idname = "trace.retarget_find_bones"
    bl_label = "Find Bones"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: Any) -> set[str]:
        settings = settings_of(context)
        if settings.target is None:
            self.report({"ERROR"}, "Pick your character's armature first")
            return {"CANCELLED"}
        try:
            check = find_bones(settings)
        except TraceBlenderError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        mapped = len(current_map(settings))
        if not check.ok:
            settings.show_map = True
            self.report({"WARNING"}, bone_maps.describe_check(check, settings.target.name))
            return {"FINISHED"}
        self.report({"INFO"}, f"Mapped {mapped} bones of {settings.target.name}")
        return {"FINISHED"}


class TRACE_OT_retarget_bake(bpy.types.Operator):
    """Bake the person's motion onto the character, into a new action"""

    bl_idname = "trace.retarget_bake"
    bl_label = "Bake Retarget"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: Any) -> set[str]:
        settings = settings_of(context)
        if settings.target is not None and not current_map(settings):
            try:
                find_bones(settings)
            except TraceBlenderError as exc:
                self.report({"ERROR"}, str(exc))
                return {"CANCELLED"}
        try:
            report = bake.bake(settings.source, settings.target, current_map(settings),
                               floor_contact=settings.floor_contact)
        except bone_maps.BoneMapError as exc:
            settings.show_map = True
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except TraceBlenderError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for warning in report.warnings:
            self.report({"WARNING"}, warning)
        kept = f"; kept {report.previous_action}" if report.previous_action else ""
        self.report({"INFO"}, f"Baked {report.action}: frames {report.frames[0]}-{report.frames[1]}, "
                              f"{report.keyed_bones} bones, stride x{report.scale:.2f}{kept}")
        return {"FINISHED"}


class TRACE_OT_retarget_save_preset(bpy.types.Operator, ExportHelper):
    """Save the bone map as a preset file"""

    bl_idname = "trace.retarget_save_preset"
    bl_label = "Save Map Preset"
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context: Any, event: Any) -> set[str]:
        target = settings_of(context).target
        self.filepath = str(preset_folder() / f"{target.name if target else 'rig'}.json")
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: Any) -> set[str]:
        settings = settings_of(context)
        if not current_map(settings):
            self.report({"ERROR"}, "The bone map is empty: press Find Bones first")
            return {"CANCELLED"}
        try:
            path = bone_maps.write_preset(self.filepath, current_map(settings), settings.rig)
        except OSError as exc:
            self.report({"ERROR"}, f"Cannot save the preset: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Saved {path.name}")
        return {"FINISHED"}


class TRACE_OT_retarget_load_preset(bpy.types.Operator, ImportHelper):
    """Load a bone map preset file"""

    bl_idname = "trace.retarget_load_preset"
    bl_label = "Load Map Preset"
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context: Any, event: Any) -> set[str]:
        self.filepath = str(preset_folder()) + "/"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: Any) -> set[str]:
        settings = settings_of(context)
        try:
            bone_map, family = bone_maps.read_preset(self.filepath)
        except TraceBlenderError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        set_map(settings, bone_map)
        if family in bone_maps.RIG_FAMILIES:
            settings.rig = family
        settings.show_map = True
        if settings.target is not None:
            rig = bake.rig_from_armature(settings.target)
            check = bone_maps.check_map(bone_map, rig.names, rig.parents)
            if not check.ok:
                self.report({"WARNING"}, bone_maps.describe_check(check, settings.target.name))
                return {"FINISHED"}
        self.report({"INFO"}, f"Loaded {Path(self.filepath).name}: {len(bone_map)} bones")
        return {"FINISHED"}


CHARACTER_FORMATS = ("unity", "unreal", "gltf")   # BVH: the writer knows only the SMPL skeleton
CHARACTER_FORMAT_ITEMS = [(key.upper(), exporting.FORMAT_LABELS[key], "") for key in CHARACTER_FORMATS]


class TRACE_OT_retarget_export(bpy.types.Operator, ExportHelper):
    """Export the character (its armature, the meshes parented to it and the baked action)"""

    bl_idname = "trace.retarget_export"
    bl_label = "Export Character"
    filename_ext = ".fbx"
    filter_glob: StringProperty(default="*.fbx;*.glb", options={"HIDDEN"})
    export_format: EnumProperty(name="Format", items=CHARACTER_FORMAT_ITEMS, default="UNITY")

    def invoke(self, context: Any, event: Any) -> set[str]:
        target = settings_of(context).target
        self.filepath = f"{target.name if target else 'character'}{self.filename_ext}"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: Any) -> set[str]:
        target = settings_of(context).target
        if target is None:
            self.report({"ERROR"}, "Pick your character's armature first")
            return {"CANCELLED"}
        try:
            written = exporting.export_people(context, [target], bpy.path.abspath(self.filepath),
                                              self.export_format.lower())
        except TraceBlenderError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, "Exported " + ", ".join(path.name for path in written))
        return {"FINISHED"}


class TRACE_PT_retarget(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "TRACE"
    bl_idname = "TRACE_PT_retarget"
    bl_label = "Retarget"
    bl_parent_id = "TRACE_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: Any) -> None:
        layout = self.layout
        settings = settings_of(context)
        layout.prop(settings, "source")
        layout.prop(settings, "target")
        layout.prop(settings, "rig")
        row = layout.row(align=True)
        row.operator(TRACE_OT_retarget_find_bones.bl_idname, icon="VIEWZOOM")
        row.operator(TRACE_OT_retarget_load_preset.bl_idname, text="", icon="FILEBROWSER")
        row.operator(TRACE_OT_retarget_save_preset.bl_idname, text="", icon="FILE_TICK")
        layout.prop(settings, "floor_contact")
        column = layout.column()
        column.enabled = settings.source is not None and settings.target is not None
        column.operator(TRACE_OT_retarget_bake.bl_idname, icon="ACTION")
        row = layout.row()
        row.enabled = settings.target is not None
        row.operator(TRACE_OT_retarget_export.bl_idname, icon="EXPORT")
        if not settings.bones:
            return
        layout.prop(settings, "show_map", icon="TRIA_DOWN" if settings.show_map else "TRIA_RIGHT", emboss=False)
        if not settings.show_map:
            return
        box = layout.box()
        for item in settings.bones:
            row = box.row()
            row.alert = not item.bone and item.joint in bone_maps.REQUIRED_JOINTS
            if settings.target is not None:
                row.prop_search(item, "bone", settings.target.data, "bones", text=item.joint)
            else:
                row.prop(item, "bone", text=item.joint)


CLASSES = (TRACE_RetargetBone, TRACE_RetargetSettings, TRACE_OT_retarget_find_bones, TRACE_OT_retarget_bake,
           TRACE_OT_retarget_save_preset, TRACE_OT_retarget_load_preset, TRACE_OT_retarget_export, TRACE_PT_retarget)


def register_properties() -> None:
    bpy.types.Scene.trace_retarget = PointerProperty(type=TRACE_RetargetSettings)


def unregister_properties() -> None:
    if hasattr(bpy.types.Scene, "trace_retarget"):
        del bpy.types.Scene.trace_retarget
