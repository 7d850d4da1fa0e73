"""One animated camera per shot, with the lens TRACE assumed and the source video as its background."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from trace_format.schema import TraceResult

from .. import frames
from ..plan import CameraPlan
from . import keys, tags
from .rollback import CreatedDatablocks, unique_name

CAMERA_CLIP_START_M = 0.05
CAMERA_CLIP_END_M = 1000.0


def find_video(result: TraceResult, video_path: str | None, source_path: str | os.PathLike | None
               ) -> tuple[Path | None, list[Path]]:
    """The source video file: video_path, else the result's video.path, else a file of that name beside
    the result file. Returns (found or None, places looked at)."""
    stored = video_path or str(result.video.path or "")
    if not stored:
        return None, []
    candidates = [Path(bpy.path.abspath(stored))]
    if source_path is not None:
        beside = Path(source_path).resolve().parent
        if not candidates[0].is_absolute():
            candidates.append(beside / stored)
        candidates.append(beside / Path(stored).name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate, candidates
    return None, candidates


def load_video_clip(result: TraceResult, video_path: str | None, frame_start: int,
                    source_path: str | os.PathLike | None, created: CreatedDatablocks) -> tuple[Any, list[str]]:
    """The source video as a MovieClip starting at scene frame frame_start, or (None, [why not])."""
    video_file, looked = find_video(result, video_path, source_path)
    if video_file is None:
        where = ", ".join(str(p) for p in dict.fromkeys(looked)) or "(the result names no video)"
        return None, [f"source video not found at {where}: the camera has no background footage; pass the video "
                      "(python -m trace_blender import ... --video FILE) or put it beside the result"]
    try:
        clip = created.add("movieclips", bpy.data.movieclips.load(str(video_file), check_existing=False))
    except RuntimeError as exc:
        return None, [f"Blender cannot open the source video {video_file} ({exc}): the camera has no background"]
    clip.frame_start = frame_start   # clip frame 1 (video frame 0) at scene frame frame_start
    clip.frame_offset = 0
    warnings = []
    rotation = int(result.video.rotation_deg or 0)
    if rotation % 360:
        warnings.append(f"the source video carries a {rotation} degree rotation that TRACE applied before inference; "
                        "check that the camera background shows it upright")
    return clip, warnings


def build_camera(camera_plan: CameraPlan, lens: frames.LensSettings, clip: Any | None, frame_start: int,
                 collection: Any, name: str, created: CreatedDatablocks, source_path: str | None) -> Any:
    """One camera object following the shot's scene camera (bulk keys), lens and footage background."""
    data = created.add("cameras", bpy.data.cameras.new(unique_name(bpy.data.cameras, name)))
    data.lens = lens.lens_mm
    data.sensor_fit = lens.sensor_fit
    data.sensor_width = lens.sensor_mm
    data.sensor_height = lens.sensor_mm
    data.clip_start, data.clip_end = CAMERA_CLIP_START_M, CAMERA_CLIP_END_M
    camera = created.add("objects", bpy.data.objects.new(unique_name(bpy.data.objects, name), data))
    collection.objects.link(camera)
    camera.rotation_mode = "QUATERNION"
    camera[tags.PROP_ROLE] = "camera"
    camera[tags.PROP_SHOT] = camera_plan.shot
    if source_path:
        camera[tags.PROP_RESULT] = str(source_path)

    path = camera_plan.path
    matrices = frames.camera_object_matrices(path.rotations, path.positions, camera_plan.base)  # [F, 4, 4]
    location, quaternions = frames.camera_keys(matrices)                                        # [F, 3], [F, 4]
    camera.location = location[0].tolist()
    camera.rotation_quaternion = quaternions[0].tolist()
    scene_frames = (np.asarray(path.frames, np.int64) + frame_start).astype(np.float32)          # [F]
    new_curve = keys.new_action(camera, f"{name}_motion", created)
    for axis in range(3):
        keys.fill_curve(new_curve("location", axis, "Object Transforms"), scene_frames, location[:, axis])
    for component in range(4):
        keys.fill_curve(new_curve("rotation_quaternion", component, "Object Transforms"), scene_frames,
                        quaternions[:, component])
    keys.add_flag_property(camera, tags.PROP_CAMERA_INTERPOLATED,
                           "1 where nobody was tracked and the camera pose was bridged from neighbouring frames")
    keys.fill_curve(new_curve(f'["{tags.PROP_CAMERA_INTERPOLATED}"]', 0, "TRACE"), scene_frames,
                    np.asarray(path.interpolated, np.float32), "CONSTANT")
    keys.hide_outside(camera, float(scene_frames[0]), float(scene_frames[-1]))   # only during its shot

    if clip is not None:
        background = data.background_images.new()
        background.source = "MOVIE_CLIP"
        background.clip = clip
        background.use_camera_clip = False
        background.alpha = 1.0
        background.display_depth = "BACK"
        background.frame_method = "STRETCH"
        data.show_background_images = True
    return camera
