"""Sidebar panels (3D viewport, tab 'TRACE'), the window-manager state they show, and drag-and-drop.

The panels draw and call operators; nothing here computes anything.
"""
from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import runner
from .build.tags import bodies_of, imported_people
from .operators import EXPORT_FORMAT_ITEMS, EXPORT_SCOPE_ITEMS, active_job, session_state


class TRACE_ShotItem(bpy.types.PropertyGroup):
    """One shot of the last imported result, as the panel lists it."""

    index: IntProperty(name="Shot", default=0)
    first_frame: IntProperty(name="First frame", default=1)
    last_frame: IntProperty(name="Last frame", default=1)
    people: IntProperty(name="People", default=0)
    camera_name: StringProperty(name="Camera", default="")
    aligned: BoolProperty(name="Floor aligned", default=False)
    floor_low_confidence: BoolProperty(name="Floor fit has low confidence", default=False)
    floor_note: StringProperty(name="Floor note", default="")
    imported: BoolProperty(name="Imported", default=False)
    selected: BoolProperty(name="Selected", default=True, description="Import this shot with 'Import Selected Shots'")


class TRACE_SessionState(bpy.types.PropertyGroup):
    """Per-session UI state: lives on the WindowManager, so it is never saved into .blend files."""

    video_path: StringProperty(name="Video", subtype="FILE_PATH", description="Video to run TRACE on")
    result_path: StringProperty(name="Result", subtype="FILE_PATH", description="Last imported result file")
    running: BoolProperty(name="Running", default=False)
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR", default=0.0)
    status: StringProperty(name="Status", default="")
    export_format: EnumProperty(name="Format", items=EXPORT_FORMAT_ITEMS, default="PREFERENCES")
    export_scope: EnumProperty(name="People", items=EXPORT_SCOPE_ITEMS, default="ALL")
    export_per_person: BoolProperty(name="One file per person", default=False,
                                    description="Write one file per person instead of one combined file")
    export_path: StringProperty(name="File", subtype="FILE_PATH", default="",
                                description="Target file (per person: <name>_<person>.<ext> beside it)")
    align: BoolProperty(name="Align floor", default=True,
                        description="Ground and gravity alignment: people stand on Blender's floor (z = 0, +Z up). "
                                    "Off: TRACE's camera world with the fixed axis swap")
    foot_cleanup: BoolProperty(name="Clean foot skate", default=True,
                               description="Detect foot contacts and pin planted feet (off: raw motion)")
    denoise: BoolProperty(name="Smooth jitter", default=True,
                          description="Temporal denoising of every person's world motion (off: TRACE's raw jitter)")
    shot_detection: BoolProperty(name="Detect shot cuts", default=True,
                                 description="Restart tracking, world and camera at hard cuts; each shot is "
                                             "imported as its own frame range")
    shots: CollectionProperty(type=TRACE_ShotItem, name="Shots")
    active_shot: IntProperty(name="Active shot", default=-1, description="Shot shown in the timeline (-1: all)")
    video_first_frame: IntProperty(name="First frame", default=1)
    video_last_frame: IntProperty(name="Last frame", default=1)


class _TracePanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "TRACE"


class TRACE_PT_main(_TracePanel, bpy.types.Panel):
    bl_idname = "TRACE_PT_main"
    bl_label = "TRACE: Video to People"

    def draw(self, context: Any) -> None:
        layout = self.layout
        state = session_state(context)
        layout.prop(state, "video_path", text="Video")
        column = layout.column(heading="World", align=True)
        column.prop(state, "align")
        column.prop(state, "denoise")
        column.prop(state, "foot_cleanup")
        column.prop(state, "shot_detection")
        job = active_job()
        running = job is not None and not job.run.state.finished
        row = layout.row(align=True)
        if running:
            row.operator("trace.cancel_run", text="Cancel", icon="CANCEL")
        else:
            run = row.operator("trace.run_video", text="Run TRACE", icon="PLAY")
            run.filepath = state.video_path
        if running or state.status:
            layout.progress(factor=state.progress, type="BAR", text=state.status or "starting...")


class TRACE_PT_import(_TracePanel, bpy.types.Panel):
    bl_idname = "TRACE_PT_import"
    bl_label = "Import"
    bl_parent_id = "TRACE_PT_main"

    def draw(self, context: Any) -> None:
        layout = self.layout
        layout.operator("trace.import_result", text="Import Result (.npz)", icon="IMPORT")
        state = session_state(context)
        if state.result_path:
            layout.label(text=f"Last: {bpy.path.basename(state.result_path)}", icon="FILE")
            preview = runner.preview_path_for(state.result_path)
            if preview.is_file():
                layout.operator("trace.open_preview", text="Open Preview Video", icon="FILE_MOVIE").filepath = str(preview)


class TRACE_PT_shots(_TracePanel, bpy.types.Panel):
    bl_idname = "TRACE_PT_shots"
    bl_label = "Shots"
    bl_parent_id = "TRACE_PT_main"

    def draw(self, context: Any) -> None:
        layout = self.layout
        state = session_state(context)
        if not state.shots:
            layout.label(text="Import a result to list its shots", icon="INFO")
            return
        column = layout.column(align=True)
        for item in state.shots:
            # Two short rows per shot, so nothing is cut off at the default sidebar width.
            row = column.row(align=True)
            row.prop(item, "selected", text="")
            view = row.operator("trace.view_shot", depress=state.active_shot == item.index, text=f"Shot {item.index}")
            view.shot_index = item.index
            if not item.imported:
                row.label(text="not imported", icon="HIDE_ON")
            else:
                row.label(text=f"{item.people}", icon="ARMATURE_DATA")
                row.label(text="", icon="VIEW_CAMERA" if item.camera_name else "BLANK1")
                row.label(text="", icon="MESH_PLANE" if item.aligned else "BLANK1")
            detail = column.row(align=True)
            detail.label(text=f"{item.first_frame}-{item.last_frame}", icon="TIME")
            if item.imported and item.floor_low_confidence:
                detail.label(text="floor?", icon="ERROR")
        row = layout.row(align=True)
        whole = row.operator("trace.view_shot", text="Whole Video", depress=state.active_shot < 0)
        whole.shot_index = -1
        chosen = [str(item.index) for item in state.shots if item.selected]
        row = layout.row()
        row.enabled = bool(chosen and state.result_path)
        reimport = row.operator("trace.import_result", text="Import Selected Shots", icon="IMPORT")
        reimport.filepath = state.result_path
        reimport.shots = ",".join(chosen)
        reimport.replace_shots = True


class TRACE_PT_people(_TracePanel, bpy.types.Panel):
    bl_idname = "TRACE_PT_people"
    bl_label = "People"
    bl_parent_id = "TRACE_PT_main"

    def draw(self, context: Any) -> None:
        layout = self.layout
        people = imported_people(context.scene)
        if not people:
            layout.label(text="No people imported yet", icon="INFO")
            return
        column = layout.column(align=True)
        for armature in people:
            selected = armature.select_get()
            row = column.row(align=True)
            toggle = row.operator("trace.toggle_person", text=armature.name, depress=selected,
                                  icon="CHECKBOX_HLT" if selected else "CHECKBOX_DEHLT")
            toggle.armature_name = armature.name
            bodies = bodies_of(armature)
            row.label(text="", icon="MESH_DATA" if bodies else "ARMATURE_DATA")


class TRACE_PT_export(_TracePanel, bpy.types.Panel):
    bl_idname = "TRACE_PT_export"
    bl_label = "Export"
    bl_parent_id = "TRACE_PT_main"

    def draw(self, context: Any) -> None:
        layout = self.layout
        state = session_state(context)
        layout.prop(state, "export_format")
        layout.prop(state, "export_scope", expand=True)
        layout.prop(state, "export_per_person")
        layout.prop(state, "export_path")
        row = layout.row()
        row.enabled = bool(imported_people(context.scene))
        row.operator("trace.export_people", text="Export", icon="EXPORT")


class TRACE_FH_video(bpy.types.FileHandler):
    """Drop a video on the 3D viewport: run TRACE on it."""

    bl_idname = "TRACE_FH_video"
    bl_label = "TRACE: run on video"
    bl_import_operator = "trace.run_video"
    bl_file_extensions = ";".join(runner.VIDEO_EXTENSIONS)

    @classmethod
    def poll_drop(cls, context: Any) -> bool:
        return context.area is not None and context.area.type == "VIEW_3D"


class TRACE_FH_result(bpy.types.FileHandler):
    """Drop a result .npz on the 3D viewport: import its people."""

    bl_idname = "TRACE_FH_result"
    bl_label = "TRACE: import result"
    bl_import_operator = "trace.import_result"
    bl_file_extensions = ".npz"

    @classmethod
    def poll_drop(cls, context: Any) -> bool:
        return context.area is not None and context.area.type == "VIEW_3D"


CLASSES = (TRACE_ShotItem, TRACE_SessionState, TRACE_PT_main, TRACE_PT_import, TRACE_PT_shots, TRACE_PT_people,
           TRACE_PT_export, TRACE_FH_video, TRACE_FH_result)
