"""From a video to tracked, world-grounded SMPL sequences in one result file.

* `plan`: RunOptions -> a frozen RunPlan (every cheap check and decision, before anything loads).
* `loop`: the temporal loop (clips of 8 through the network, rows decoded and gathered per track).
* `run`: `run_video`, the composition: plan -> SMPL file -> network -> loop -> SMPL geometry ->
  world stage (core.world.postprocess) -> the result file, written once.

Tests replace `core.pipeline.run.load_network` to run the whole command with a stand-in network.
"""
from .loop import (CLIP_LENGTH, FINITE_FIELDS, ClipFrames, ClipModel, InferenceOutcome, TrackAccumulator, decode_clip_rows,
                   infill_non_finite_rows,
                   run_inference, trim_unobserved_ends)
from .plan import (RunOptions, RunPlan, build_lens, build_tracking_settings, plan_run,
                   resolve_autocast, resolve_dtype)
from .run import (Body, LoadedNetwork, RunSummary, WorldOptions, add_smpl_geometry, build_run_result,
                  check_rest_body, disable_tf32, process_world, run_video)

__all__ = [
    "CLIP_LENGTH", "FINITE_FIELDS", "ClipFrames", "ClipModel", "InferenceOutcome", "TrackAccumulator", "decode_clip_rows",
    "infill_non_finite_rows", "run_inference", "trim_unobserved_ends",
    "RunOptions", "RunPlan", "build_lens", "build_tracking_settings", "plan_run",
    "resolve_autocast", "resolve_dtype",
    "Body", "LoadedNetwork", "RunSummary", "WorldOptions", "add_smpl_geometry", "build_run_result",
    "check_rest_body", "disable_tf32", "process_world", "run_video",
]
