"""Operators: run TRACE on a video, cancel, import a result, export people, select people.

The work happens in plain functions (`start_inference`, `finish_inference`, build.*,
exporting.*); operators only collect settings and report. Import and export follow Blender's own I/O
add-ons: `ImportHelper` / `ExportHelper` operators with File › Import / Export menu entries. In background mode `invoke()` never
runs, so `execute()` of the run operator drives the subprocess synchronously there; with a UI it
hands over to `modal()` and a window-manager timer.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import advice, build, exporting, plan, runner
from .build import tags
from .errors import TraceBlenderError, UsageError
from .preferences import addon_settings, user_data_dir

VIDEO_GLOB = ";".join(f"*{ext}" for ext in runner.VIDEO_EXTENSIONS)
TIMER_INTERVAL_S = 0.25


def session_state(context: Any) -> Any:
    """Transient UI state on the window manager (not saved in .blend files)."""
    return context.window_manager.trace_blender


@dataclass
class InferenceJob:
    video: Path
    run: runner.CoreRun


_ACTIVE_JOB: InferenceJob | None = None


def active_job() -> InferenceJob | None:
    return _ACTIVE_JOB


def start_inference(context: Any, video: str | os.PathLike, launcher: list[str] | None = None) -> InferenceJob:
    """Launch `python -m core run VIDEO -o <new folder> --progress-json ...` with the add-on settings."""
    global _ACTIVE_JOB
    if _ACTIVE_JOB is not None and not _ACTIVE_JOB.run.state.finished:
        raise UsageError("TRACE is already running on a video: cancel it or wait until it finishes")
    video_path = Path(bpy.path.abspath(str(video)))
    if not video_path.is_file():
        raise UsageError(f"video not found: {video_path}")
    if video_path.suffix.lower() not in runner.VIDEO_EXTENSIONS:
        raise UsageError(f"{video_path.name} is not a supported video ({', '.join(runner.VIDEO_EXTENSIONS)})")
    settings = addon_settings(context)
    state = session_state(context)
    if launcher is None:
        problem = runner.check_core_interpreter(settings.python)
        if problem is not None:
            raise TraceBlenderError(problem)
    output_dir = runner.new_run_directory(user_data_dir("runs"), video_path)
    command = runner.CoreCommand(python=settings.python, video=video_path, output_dir=output_dir,
                                 weights_dir=settings.weights_dir, device=settings.device,
                                 smpl_model=settings.smpl_model_path,
                                 smpl_extra_regressor=settings.smpl_extra_regressor_path, launcher=launcher,
                                 offline=not bpy.app.online_access, align=state.align,
                                 foot_cleanup=state.foot_cleanup, denoise=state.denoise,
                                 shot_detection=state.shot_detection, preview=True)
    job = InferenceJob(video_path, runner.CoreRun(command.argv(), output_dir).start())
    _ACTIVE_JOB = job
    state.running, state.progress, state.status = True, 0.0, "starting TRACE..."
    return job


def update_progress(context: Any, job: InferenceJob) -> runner.RunState:
    """Poll the subprocess and mirror its progress into the window-manager state."""
    run_state = job.run.poll()
    state = session_state(context)
    state.progress = job.run.progress.fraction
    state.status = job.run.progress.describe()
    return run_state


def finish_inference(context: Any, job: InferenceJob) -> tuple[set[str], list[tuple[str, str]]]:
    """Import the result of a finished job; returns (operator result, [(report type, message)])."""
    global _ACTIVE_JOB
    state = session_state(context)
    state.running = False
    if _ACTIVE_JOB is job:
        _ACTIVE_JOB = None
    outcome = job.run.outcome
    reports = [("WARNING", warning) for warning in outcome.warnings]
    if outcome.state is runner.RunState.CANCELLED:
        state.status = "cancelled"
        return {"CANCELLED"}, reports + [("WARNING", "TRACE run cancelled; its output was removed")]
    if outcome.state is runner.RunState.FAILED or outcome.result_path is None:
        message = advice.core_failure(outcome.message, outcome.exit_code, online_access=bpy.app.online_access)
        state.status = f"failed: {advice.first_line(message)}"
        return {"CANCELLED"}, reports + [("ERROR", message)]
    try:
        summary = import_with_settings(context, outcome.result_path)
    except TraceBlenderError as exc:
        state.status = f"import failed: {exc}"
        return {"CANCELLED"}, reports + [("ERROR", str(exc))]
    state.progress = 1.0
    state.status = f"imported {len(summary.people)} people from {job.video.name}"
    if outcome.state is runner.RunState.PARTIAL:
        reports.append(("WARNING", outcome.message))
    elif outcome.state is runner.RunState.SAVED_ELSEWHERE:
        state.status += f" (saved to {outcome.result_path})"
        reports.append(("WARNING", outcome.message))
    reports.append(("INFO", state.status))
    return {"FINISHED"}, reports


def import_with_settings(context: Any, path: str | os.PathLike, shots: list[int] | None = None,
                         apply_alignment: bool | None = None, use_clean_motion: bool | None = None,
                         replace_shots: bool = False) -> build.ImportSummary:
    """Import with the add-on preferences and the panel's toggles (arguments given here win)."""
    settings = addon_settings(context)
    state = session_state(context)
    options = plan.ImportOptions(
        smpl_model_path=settings.smpl_model_path, frame_start=settings.frame_start, shots=shots,
        apply_alignment=state.align if apply_alignment is None else apply_alignment,
        use_clean_motion=(state.foot_cleanup or state.denoise) if use_clean_motion is None else use_clean_motion,
        replace_shots=replace_shots)
    summary = build.import_result_file(path, context, options)
    state.result_path = str(path)
    remember_shots(state, summary, settings.frame_start, context.scene, str(path))
    return summary


def remember_shots(state: Any, summary: build.ImportSummary, frame_start: int, scene: Any = None,
                   result_path: str | None = None) -> None:
    """List the result's shots in the panel: scene ranges, people, camera; imported ones selected.

    A shot counts as imported when this import made it, or when an earlier import of the same result
    left its people in the scene (so "not imported" is never shown next to people you can see)."""
    imported = {shot.index: shot for shot in summary.shots}
    earlier_people: dict[int, int] = {}
    earlier_cameras: dict[int, str] = {}
    if scene is not None and result_path is not None:
        for ob in scene.objects:
            if ob.get(tags.PROP_RESULT) == result_path and tags.PROP_SHOT in ob.keys():
                if ob.get(tags.PROP_ROLE) == "armature":
                    earlier_people[int(ob[tags.PROP_SHOT])] = earlier_people.get(int(ob[tags.PROP_SHOT]), 0) + 1
                elif ob.get(tags.PROP_ROLE) == "camera":
                    earlier_cameras[int(ob[tags.PROP_SHOT])] = ob.name
    state.shots.clear()
    for listed in summary.result_shots:
        item = state.shots.add()
        item.index = listed.index
        item.first_frame, item.last_frame = listed.scene_range(frame_start)
        shot = imported.get(listed.index)
        item.selected = shot is not None
        item.imported = shot is not None or listed.index in earlier_people
        item.people = len(shot.people) if shot is not None else earlier_people.get(listed.index, 0)
        item.aligned = shot.aligned if shot is not None else listed.aligned
        item.floor_low_confidence = item.aligned and listed.floor_confidence == "low"
        item.floor_note = listed.floor_note
        camera = shot.camera if shot is not None else None
        item.camera_name = camera.name if camera is not None else earlier_cameras.get(listed.index, "")
    state.video_first_frame, state.video_last_frame = summary.frame_start, summary.frame_end
    state.active_shot = summary.shots[0].index if len(summary.shots) == 1 else -1


def view_shot(context: Any, shot_index: int) -> tuple[int, int]:
    """Scene frame range (and active camera) to one listed shot; -1: the whole imported range."""
    state = session_state(context)
    scene = context.scene
    if shot_index < 0:
        if not state.shots:
            raise UsageError("no shots listed: import a TRACE result first")
        first, last, camera_name = state.video_first_frame, state.video_last_frame, ""
    else:
        item = next((entry for entry in state.shots if entry.index == shot_index), None)
        if item is None:
            raise UsageError(f"no shot {shot_index} listed; the last imported result has shots "
                             f"{', '.join(str(entry.index) for entry in state.shots) or 'none'}")
        first, last, camera_name = item.first_frame, item.last_frame, item.camera_name
    scene.frame_start, scene.frame_end = first, last   # start first: Blender raises end to start if needed
    scene.frame_current = first
    camera = bpy.data.objects.get(camera_name) if camera_name else None
    if camera is not None:
        scene.camera = camera
    state.active_shot = shot_index
    return first, last


def _report_all(operator: Any, reports: list[tuple[str, str]]) -> None:
    for kind, message in reports:
        operator.report({kind}, message)


class TRACE_OT_run_video(bpy.types.Operator, ImportHelper):
    """Run TRACE on a video in a separate Python and import every tracked person"""

    bl_idname = "trace.run_video"
    bl_label = "Run TRACE on Video"
    bl_options = {"REGISTER"}

    filename_ext = ""
    filepath: StringProperty(name="Video", subtype="FILE_PATH", options={"SKIP_SAVE"})
    filter_glob: StringProperty(default=VIDEO_GLOB, options={"HIDDEN"})

    _timer = None
    _job: InferenceJob | None = None

    @classmethod
    def poll(cls, context: Any) -> bool:
        job = active_job()
        return job is None or job.run.state.finished

    def _video(self, context: Any) -> str:
        return self.filepath or session_state(context).video_path

    def invoke(self, context: Any, event: Any) -> set[str]:
        if not self._video(context):
            return ImportHelper.invoke(self, context, event)
        return self.execute(context)

    def execute(self, context: Any) -> set[str]:
        video = self._video(context)
        if not video:
            self.report({"ERROR"}, "choose a video file first")
            return {"CANCELLED"}
        session_state(context).video_path = video
        try:
            job = start_inference(context, video)
        except TraceBlenderError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if bpy.app.background or context.window is None:
            job.run.wait()
            result, reports = finish_inference(context, job)
            _report_all(self, reports)
            return result
        self._job = job
        self._timer = context.window_manager.event_timer_add(TIMER_INTERVAL_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: Any, event: Any) -> set[str]:
        if event.type != "TIMER" or self._job is None:
            return {"PASS_THROUGH"}
        state = update_progress(context, self._job)
        _redraw_view3d(context)
        if not state.finished:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        result, reports = finish_inference(context, self._job)
        _report_all(self, reports)
        self._job = None
        return result

    def cancel(self, context: Any) -> None:
        """Blender ends the modal operator (file load, quit): stop the process too."""
        if self._job is not None:
            self._job.run.cancel()
            finish_inference(context, self._job)
            self._job = None
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)


def _redraw_view3d(context: Any) -> None:
    screen = getattr(context, "screen", None)
    for area in (screen.areas if screen else []):
        if area.type == "VIEW_3D":
            area.tag_redraw()


class TRACE_OT_cancel_run(bpy.types.Operator):
    """Stop the running TRACE process and delete its temporary output"""

    bl_idname = "trace.cancel_run"
    bl_label = "Cancel TRACE Run"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: Any) -> bool:
        job = active_job()
        return job is not None and not job.run.state.finished

    def execute(self, context: Any) -> set[str]:
        job = active_job()
        if job is None:
            return {"CANCELLED"}
        job.run.cancel()
        session_state(context).status = "cancelling..."
        self.report({"INFO"}, "TRACE run cancelled")
        return {"FINISHED"}


class TRACE_OT_import_result(bpy.types.Operator, ImportHelper):
    """Import a TRACE result file (.npz, also official trace2 results) as animated characters"""

    bl_idname = "trace.import_result"
    bl_label = "Import TRACE Result"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".npz"
    filepath: StringProperty(name="Result file", subtype="FILE_PATH", options={"SKIP_SAVE"})
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})
    shots: StringProperty(name="Shots", default="", options={"SKIP_SAVE"},
                          description="Shots to import, e.g. '0,2' (empty: every shot)")
    apply_alignment: BoolProperty(name="Align floor", default=True, options={"SKIP_SAVE"},
                                  description="Use the stored ground alignment (floor at z = 0); unset: the panel's "
                                              "toggle")
    use_clean_motion: BoolProperty(name="Smoothed, planted motion", default=True, options={"SKIP_SAVE"},
                                   description="Use the world stage's denoised, foot-skate-cleaned motion when "
                                               "stored (off: TRACE's raw motion); unset: the panel's toggles")

    replace_shots: BoolProperty(name="Replace", default=False, options={"SKIP_SAVE"},
                                description="Replace what an earlier import of this result made for these shots "
                                            "(the Shots panel's re-import) instead of adding a copy")

    def invoke(self, context: Any, event: Any) -> set[str]:
        if self.filepath:  # drag and drop, the panel's re-import
            return self.execute(context)
        return ImportHelper.invoke(self, context, event)

    def _given(self, name: str) -> bool | None:
        """An explicitly set toggle, or None (then the panel's toggle applies, e.g. on drag and drop)."""
        return getattr(self, name) if self.properties.is_property_set(name) else None

    def execute(self, context: Any) -> set[str]:
        if not self.filepath:
            self.report({"ERROR"}, "choose a result file (.npz) first")
            return {"CANCELLED"}
        try:
            shots = plan.parse_shot_list(self.shots)
            summary = import_with_settings(context, bpy.path.abspath(self.filepath), shots=shots,
                                           apply_alignment=self._given("apply_alignment"),
                                           use_clean_motion=self._given("use_clean_motion"),
                                           replace_shots=self.replace_shots)
        except TraceBlenderError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for warning in summary.warnings:
            self.report({"WARNING"}, warning)
        shot_count = len(summary.result_shots)
        shot_text = f", {len(summary.shots)} of {shot_count} shots" if shot_count > 1 else ""
        self.report({"INFO"}, f"imported {len(summary.people)} people (frames {summary.frame_start}-"
                              f"{summary.frame_end}{shot_text})")
        return {"FINISHED"}


class TRACE_OT_view_shot(bpy.types.Operator):
    """Set the scene frame range and active camera to one shot (or the whole video)"""

    bl_idname = "trace.view_shot"
    bl_label = "View Shot"
    bl_options = {"REGISTER", "UNDO"}

    shot_index: IntProperty(name="Shot", default=-1, min=-1, options={"SKIP_SAVE"},
                            description="Shot number; -1: the whole imported range")

    def execute(self, context: Any) -> set[str]:
        try:
            first, last = view_shot(context, self.shot_index)
        except TraceBlenderError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        what = "whole video" if self.shot_index < 0 else f"shot {self.shot_index}"
        self.report({"INFO"}, f"{what}: frames {first}-{last}")
        return {"FINISHED"}


def people_to_export(context: Any, scope: str) -> list[Any]:
    """Armatures of imported people: all of them, or those whose armature or body is selected."""
    people = tags.imported_people(context.scene)
    if scope == "ALL":
        return people
    chosen = []
    for armature in people:
        if armature.select_get() or any(body.select_get() for body in tags.bodies_of(armature)):
            chosen.append(armature)
    return chosen


EXPORT_FORMAT_ITEMS = (("PREFERENCES", "Default", "The default export format from the add-on preferences"),) + tuple(
    (key.upper(), exporting.FORMAT_LABELS[key], f"Export {exporting.FORMAT_LABELS[key]}")
    for key in exporting.EXPORT_FORMATS)
EXPORT_SCOPE_ITEMS = (("ALL", "All", "Every imported person in the scene"),
                      ("SELECTED", "Selected", "People whose armature or body is selected"))


class TRACE_OT_export_people(bpy.types.Operator, ExportHelper):
    """Export imported people as FBX (Unity / Unreal), glTF binary or BVH"""

    bl_idname = "trace.export_people"
    bl_label = "Export TRACE People"
    bl_options = {"REGISTER"}

    filepath: StringProperty(name="File", subtype="FILE_PATH", options={"SKIP_SAVE"})
    check_existing: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})
    # Unset: the panel's Export settings apply (so the panel button and File > Export agree).
    export_format: EnumProperty(name="Format", items=EXPORT_FORMAT_ITEMS, default="PREFERENCES",
                                options={"SKIP_SAVE"})
    export_scope: EnumProperty(name="People", items=EXPORT_SCOPE_ITEMS, default="ALL", options={"SKIP_SAVE"})
    per_person: BoolProperty(name="One file per person", default=False, options={"SKIP_SAVE"},
                             description="Write one file per person instead of one combined file")

    def _setting(self, context: Any, name: str, state_name: str) -> Any:
        return getattr(self, name) if self.properties.is_property_set(name) else getattr(session_state(context),
                                                                                         state_name)

    def _format(self, context: Any) -> str:
        choice = self._setting(context, "export_format", "export_format")
        return addon_settings(context).export_preset if choice == "PREFERENCES" else choice.lower()

    @property
    def filename_ext(self) -> str:
        """ExportHelper's extension: follows the chosen format."""
        return exporting.EXTENSIONS[self._format(bpy.context)]

    def invoke(self, context: Any, event: Any) -> set[str]:
        if self.filepath or session_state(context).export_path:
            return self.execute(context)
        self.filepath = "trace_people" + self.filename_ext
        return ExportHelper.invoke(self, context, event)

    def execute(self, context: Any) -> set[str]:
        state = session_state(context)
        target = bpy.path.abspath(self.filepath or state.export_path)
        if not target:
            self.report({"ERROR"}, "choose where to export first")
            return {"CANCELLED"}
        people = people_to_export(context, self._setting(context, "export_scope", "export_scope"))
        try:
            written = exporting.export_people(context, people, target, self._format(context),
                                              per_person=self._setting(context, "per_person", "export_per_person"))
        except TraceBlenderError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, "exported " + ", ".join(path.name for path in written))
        return {"FINISHED"}


class TRACE_OT_toggle_person(bpy.types.Operator):
    """Select or deselect this person (armature and body)"""

    bl_idname = "trace.toggle_person"
    bl_label = "Toggle Person Selection"
    bl_options = {"REGISTER", "UNDO"}

    armature_name: StringProperty(options={"SKIP_SAVE"})

    def execute(self, context: Any) -> set[str]:
        armature = bpy.data.objects.get(self.armature_name)
        if armature is None or tags.PROP_TRACK_ID not in armature.keys():
            self.report({"ERROR"}, f"no imported person named {self.armature_name!r}")
            return {"CANCELLED"}
        select = not armature.select_get()
        action = armature.animation_data.action if armature.animation_data else None
        if select and armature.hide_viewport and action is not None:
            # Hidden outside its own frames (and hidden objects cannot be selected): go to where it appears.
            first = int(action.frame_range[0])
            context.scene.frame_set(first)
            self.report({"INFO"}, f"{armature.name} appears from frame {first}: moved there")
        for ob in [armature] + tags.bodies_of(armature):
            if ob.name in context.view_layer.objects:
                ob.select_set(select)
        if select:
            context.view_layer.objects.active = armature
        return {"FINISHED"}


class TRACE_OT_check_core(bpy.types.Operator):
    """Check that the configured Python can run the TRACE core (imports core and torch)"""

    bl_idname = "trace.check_core"
    bl_label = "Check TRACE Core"
    bl_options = {"REGISTER"}

    def execute(self, context: Any) -> set[str]:
        python = addon_settings(context).python
        problem = runner.check_core_interpreter(python, use_cache=False)
        if problem is not None:
            self.report({"ERROR"}, problem)
            return {"CANCELLED"}
        self.report({"INFO"}, f"{python} can run the TRACE core")
        return {"FINISHED"}


class TRACE_OT_open_preview(bpy.types.Operator):
    """Open the overlay video of the last run (skeletons and track ids on the footage) in the system's player"""

    bl_idname = "trace.open_preview"
    bl_label = "Open Preview Video"
    bl_options = {"REGISTER"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"HIDDEN"})

    def execute(self, context: Any) -> set[str]:
        from pathlib import Path

        if not self.filepath or not Path(self.filepath).is_file():
            self.report({"ERROR"}, f"no preview video at {self.filepath or '(none)'}: run a video first")
            return {"CANCELLED"}
        return bpy.ops.wm.path_open(filepath=self.filepath)


def menu_import(menu: Any, context: Any) -> None:
    """File > Import entries."""
    menu.layout.operator(TRACE_OT_import_result.bl_idname, text="TRACE Result (.npz)")
    menu.layout.operator(TRACE_OT_run_video.bl_idname, text="TRACE: Run on Video")


def menu_export(menu: Any, context: Any) -> None:
    """File > Export entry."""
    menu.layout.operator(TRACE_OT_export_people.bl_idname, text="TRACE People (.fbx, .glb, .bvh, .smpl, .npz)")


CLASSES = (TRACE_OT_run_video, TRACE_OT_cancel_run, TRACE_OT_import_result, TRACE_OT_view_shot,
           TRACE_OT_export_people, TRACE_OT_toggle_person, TRACE_OT_check_core, TRACE_OT_open_preview)


def cancel_active_job() -> None:
    """Called on unregister: never leave a core process running behind a disabled add-on."""
    global _ACTIVE_JOB
    if _ACTIVE_JOB is not None and not _ACTIVE_JOB.run.state.finished:
        _ACTIVE_JOB.run.cancel()
    _ACTIVE_JOB = None
