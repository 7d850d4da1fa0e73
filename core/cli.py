"""Command line: `python -m core run INPUT -o OUT_DIR [options]` (see docs/cli.md).

This module only parses arguments, wires progress output and signals, and turns errors into exit
codes and messages; the work is in core.pipeline. Every failure a user can fix ends with a one-line
explanation and its documented exit code (core.errors.ExitCode), also as a JSON `error` event when
--progress-json is given (then stdout carries only JSON lines and human text goes to stderr).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, TextIO

from . import __version__
from .camera import MAX_FOV_DEG, MIN_FOV_DEG
from .errors import ExitCode, OutputError, PartialResultError, RunInterruptedError, TraceError, UsageError
from .progress import ProgressReporter

if TYPE_CHECKING:
    from .world.postprocess import WorldSummary

PROG = "python -m core"


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that raises UsageError (so --progress-json still gets a JSON error event)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{PROG} run --help`)")


# Ranges of numeric options (docs/cli.md): finite, and where a value outside would crash or make
# nonsense hours later, bounded here so the mistake is reported before the network loads.
MAX_THREADS = 1024
FPS_RANGE = (0.01, 1000.0)


def _whole_number(low: int, high: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, got {value}"
                                             if high is not None else f"expected a number >= {low}, got {value}")
        return value
    return parse


_positive_int = _whole_number(1)


def _finite_number(low: float, high: float, unit: str = ""):
    """argparse type: a finite float in [low, high] (inf, nan, 1e400 and 1e-300 are refused)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"expected a number from {low:g} to {high:g}{unit}, got {text}")
        return value
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


def _tracking_preset(text: str) -> str:
    from .tracking.settings import TrackingSettingsError, preset_values

    try:
        preset_values(text)
    except TrackingSettingsError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text.strip()


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog=PROG, description="TRACE for Blender: video -> tracked, world-space SMPL people.")
    parser.add_argument("--version", action="version", version=f"trace-blender {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)
    run = commands.add_parser(
        "run", help="run TRACE on a video file or image folder and write OUT_DIR/<name>.trace.npz",
        description="Run TRACE on a video file (or a folder of images) and write OUT_DIR/<input name>.trace.npz.")
    run.add_argument("input", type=Path, metavar="INPUT", help="video file, or a folder of images (natural order)")
    run.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="folder for the result file")
    run.add_argument("--weights", type=Path, metavar="DIR",
                     help="folder with the three TRACE checkpoints (default: per-user folder, see docs/cli.md)")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="auto = cuda when available, else cpu (default: auto)")
    run.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="network precision")
    run.add_argument("--autocast", choices=("none", "bf16", "fp16"), default="none",
                     help="mixed precision for the backbones and head maps (CUDA: ~1.5x faster; tracking and "
                          "regressors stay float32; fp16 needs CUDA)")
    speed = run.add_argument_group("RAFT schedule (changes the results: off the official program; settings.raft)")
    speed.add_argument("--raft-iterations", type=_positive_int, default=None, metavar="N",
                       help="RAFT refinement iterations per frame pair (default: the official 20; fewer is faster "
                            "and less accurate, RAFT's time is about proportional to N)")
    speed.add_argument("--raft-warm-start", action="store_true",
                       help="start each frame pair's RAFT from the previous pair's flow (RAFT's own video "
                            "practice; pairs then run one at a time); meant for use with fewer --raft-iterations")
    run.add_argument("--subjects", metavar="N|all", default=None,
                     help="people to track: 'all' (default: everyone who appears) or a fixed number N")
    run.add_argument("--official-tracking", action="store_true",
                     help="the official TRACE tracker settings exactly (1 subject unless --subjects N)")
    run.add_argument("--tracking-preset", type=_tracking_preset, metavar="NAME",
                     help="official evaluation settings: demo, dynacam, 3dpw, mupots, dyna3dpw, or PRESET:SEQUENCE "
                          "(e.g. 3dpw:downtown_car_00); implies --official-tracking")
    world = run.add_argument_group("world post-processing (all on by default; docs/cli.md)")
    cuts = world.add_mutually_exclusive_group()
    cuts.add_argument("--no-shot-detection", dest="shot_detection", action="store_const", const=False, default=None,
                      help="no hard-cut detection: the whole video is one shot (tracking never restarts)")
    cuts.add_argument("--shot-detection", dest="shot_detection", action="store_const", const=True,
                      help="detect hard cuts also with --official-tracking (where it is off by default)")
    world.add_argument("--no-align", dest="align", action="store_false",
                       help="no ground/gravity alignment: the fixed (x, z, -y) mapping of TRACE's world")
    world.add_argument("--no-denoise", dest="denoise", action="store_false",
                       help="keep TRACE's frame-to-frame jitter (no temporal denoising of the world motion)")
    world.add_argument("--no-foot-cleanup", dest="foot_cleanup", action="store_false",
                       help="keep TRACE's leg motion (no foot-skate cleanup); contacts are still detected when aligned")
    run.add_argument("--tracking", action="append", default=[], metavar="KEY=VALUE",
                     help="override one tracking setting (repeatable), e.g. --tracking time2forget=60; "
                          "keys: the fields of core.tracking.TrackingSettings (docs/cli.md)")
    lens = run.add_mutually_exclusive_group()
    lens.add_argument("--fov", type=_finite_number(MIN_FOV_DEG, MAX_FOV_DEG, " degrees"), metavar="DEG",
                      help="horizontal field of view of the source video in degrees (default: official 50 deg "
                           "over the padded square)")
    lens.add_argument("--focal", type=_positive_float, metavar="PX", help="focal length in source-video pixels")
    run.add_argument("--start", metavar="FRAME|SECs", help="first frame to process (e.g. 120 or 4.5s)")
    run.add_argument("--end", metavar="FRAME|SECs", help="stop before this frame (e.g. 600 or 20s)")
    run.add_argument("--stride", type=_positive_int, default=1, metavar="N", help="process every N-th frame")
    run.add_argument("--fps", type=_finite_number(*FPS_RANGE, " frames/s"), default=None, metavar="F",
                     help="frame rate of an image-folder input (default 30; ignored for video files)")
    run.add_argument("--smpl-model", type=Path, metavar="FILE",
                     help="SMPL model file (e.g. SMPL_NEUTRAL.pkl): also store joints in camera and world frames, "
                          "and stand each person's own body on the floor in the world stage")
    run.add_argument("--smpl-extra-regressor", type=Path, metavar="J_regressor_extra.npy",
                     help="ROMP's J_regressor_extra.npy: place bodies exactly as the official code (midpoint of its "
                          "joints 35/36 at the network's translation; needs --smpl-model)")
    run.add_argument("--save-vertices", action="store_true", help="also store mesh vertices (needs --smpl-model; large)")
    run.add_argument("--offline", action="store_true", help="never download weights (also: TRACE_OFFLINE=1)")
    run.add_argument("--progress-json", action="store_true",
                     help="JSON-lines events on stdout (for the Blender add-on); human text goes to stderr")
    run.add_argument("--preview", action="store_true",
                     help="also write OUT_DIR/<name>.preview.mp4: the result drawn on the video (see `preview`)")
    run.add_argument("--threads", type=_whole_number(1, MAX_THREADS), metavar="N", help="CPU threads for torch and OpenCV")

    preview = commands.add_parser(
        "preview", help="draw a result on its video: skeletons, track ids, shots and a top view (mp4)",
        description="Write an overlay video of a result: every person's skeleton and track id in one colour per "
                    "identity, the shot index, and a small top-down view of the trajectories.")
    preview.add_argument("result", type=Path, metavar="RESULT", help="a .trace.npz result file")
    preview.add_argument("-o", "--output", type=Path, required=True, metavar="PREVIEW.mp4", help="video to write")
    preview.add_argument("--video", type=Path, metavar="VIDEO",
                         help="the source video (default: the one recorded in the result, if it is still there; "
                              "otherwise a grey canvas)")
    preview.add_argument("--no-video", action="store_true", help="draw on a grey canvas even if the video exists")
    preview.add_argument("--no-world-view", dest="world_view", action="store_false", help="no top-down inset")
    preview.add_argument("--progress-json", action="store_true", help="JSON-lines events on stdout")
    return parser


def parse_tracking_overrides(items: Sequence[str]) -> dict[str, object]:
    """['time2forget=60', 'accept_new_dets=false'] -> {'time2forget': 60, 'accept_new_dets': False}.

    Values are read as JSON when possible (numbers, true/false, [lists]), else kept as text; unknown
    keys and bad values are reported by TrackingSettings itself.
    """
    overrides: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--tracking expects KEY=VALUE (e.g. time2forget=60), got {item!r}")
        try:
            value = json.loads(text, parse_float=_finite_json_number, parse_int=_finite_json_number,
                               parse_constant=_refuse_json_constant)
        except json.JSONDecodeError:
            value = {"True": True, "False": False}.get(text, text)
        except ValueError as error:
            raise UsageError(f"--tracking {item}: {error}") from None
        overrides[key.strip()] = tuple(value) if isinstance(value, list) else value
    return overrides


def _finite_json_number(text: str) -> int | float:
    value = float(text) if any(c in text for c in ".eE") else int(text)
    if not math.isfinite(value) or abs(value) > 1e15:
        raise ValueError(f"{text} is not a usable number (finite, at most 1e15 in size)")
    return value


def _refuse_json_constant(text: str) -> float:
    raise ValueError(f"{text} is not a finite number")


class _ProtectedStdout:
    """Keeps stdout for JSON lines only: file descriptor 1 is pointed at stderr for the run, so stray
    prints from libraries (Python or C level) cannot corrupt the protocol; JSON goes to a duplicate
    of the original stdout."""

    def __init__(self, saved_fd: int, json_stream: TextIO) -> None:
        self.saved_fd = saved_fd
        self.json_stream = json_stream

    @classmethod
    def open(cls) -> "_ProtectedStdout | None":
        try:
            sys.stdout.flush()
            saved_fd = os.dup(1)
            json_stream = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
            os.dup2(2, 1)
        except (OSError, ValueError, AttributeError):   # no real file descriptors (embedded use)
            return None
        return cls(saved_fd, json_stream)

    def close(self) -> None:
        """Restore file descriptor 1; a reader that went away (broken pipe) is no error of the run."""
        for action in (self.json_stream.flush, _flush_stdout, lambda: os.dup2(self.saved_fd, 1),
                       lambda: os.close(self.saved_fd), self.json_stream.close):
            try:
                action()
            except (OSError, ValueError):
                pass


def _flush_stdout() -> None:
    if sys.stdout is not None:
        sys.stdout.flush()


def _write_quietly(stream: TextIO | None, text: str) -> None:
    """Summary text is best effort: a closed stdout (pythonw, services) or a reader that quit
    (`| head`) must not turn a finished run into a failure."""
    if stream is None:
        return
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError, AttributeError):
        pass


def exit_status(code: int) -> int:
    """The process exit status after flushing stdout; if the reader of stdout went away, the rest is
    dropped (os.devnull) so the interpreter's own flush at exit cannot fail the run (exit 120)."""
    try:
        _flush_stdout()
    except (OSError, ValueError):
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
    return code


class _Interrupted(BaseException):
    """Raised from the SIGTERM handler (a BaseException so nothing swallows it on the way up)."""


def _raise_interrupted(signum: int, _frame) -> None:
    raise _Interrupted(signum)


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Entry point; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    json_mode = "--progress-json" in argv
    protected = None
    if stdout is None and json_mode:
        protected = _ProtectedStdout.open()
    stdout = (protected.json_stream if protected else None) or stdout or sys.stdout
    stderr = stderr or sys.stderr
    reporter = ProgressReporter(json_stream=stdout if json_mode else None, human_stream=stderr)
    previous_term = None
    try:
        previous_term = signal.signal(signal.SIGTERM, _raise_interrupted)
    except ValueError:          # not the main thread (embedded use): Ctrl+C still works
        pass
    try:
        try:
            args = build_parser().parse_args(argv)
            if args.command == "preview":
                return _preview(args, reporter, summary_stream=stderr if json_mode else stdout)
            if args.command != "run":
                _write_quietly(stderr, build_parser().format_help())
                raise UsageError(f"no command given; use `{PROG} run INPUT -o OUT_DIR`")
            return _run(args, reporter, summary_stream=stderr if json_mode else stdout)
        except (KeyboardInterrupt, _Interrupted):
            raise RunInterruptedError("interrupted: the run was stopped before it finished; no result was written")
    except PartialResultError as error:
        reporter.warning(error.message)
        reporter.done(error.result_path, error.tracks, int(error.exit_code))
        return int(error.exit_code)
    except TraceError as error:
        reporter.error(error.code, error.message, int(error.exit_code))
        return int(error.exit_code)
    except (KeyboardInterrupt, _Interrupted):   # a second Ctrl+C while reporting
        return int(ExitCode.INTERRUPTED)
    except Exception as error:  # a bug, not a user error: keep the traceback for the report
        if stderr is not None:
            try:
                traceback.print_exc(file=stderr)
            except (OSError, ValueError):
                pass
        reporter.error("internal", f"internal error: {type(error).__name__}: {error}. This is a bug in TRACE for "
                       f"Blender, not a problem with your files: please report it with the traceback above.",
                       int(ExitCode.INTERNAL))
        return int(ExitCode.INTERNAL)
    finally:
        reporter.close()
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
        if protected is not None:
            protected.close()


def _preview(args: argparse.Namespace, reporter: ProgressReporter, summary_stream: TextIO) -> int:
    from .preview import PreviewOptions, render_preview

    if args.video is not None and args.no_video:
        raise UsageError("--video and --no-video exclude each other")
    options = PreviewOptions(result_path=args.result, output_path=args.output, video_path=args.video,
                             world_view=args.world_view, blank=args.no_video)
    _check_preview_output(Path(args.output))
    started = [False]

    def on_progress(done: int, total: int) -> None:
        if not started[0]:
            reporter.begin_stage("preview", total)
            started[0] = True
        reporter.update(done)

    try:
        summary = render_preview(options, on_progress)
    except OSError as error:                      # the folder failed while writing (disk full, removed)
        from trace_format.atomic import folder_problem

        raise OutputError(f"the preview could not be written: {folder_problem(error, Path(args.output).parent)}") from None
    if started[0]:
        reporter.end_stage()
    for note in summary.notes:
        reporter.warning(note)
    _write_quietly(summary_stream, f"preview: {summary.frames} frames ({summary.frames_per_second:.0f} frames/s) "
                                   f"on {summary.background} -> {summary.output_path}\n")
    reporter.done(str(summary.output_path), summary.tracks, int(ExitCode.OK),
                  {"preview": str(summary.output_path), "frames": summary.frames})
    return int(ExitCode.OK)


def _check_preview_output(output: Path) -> None:
    """`preview -o FILE`: a folder, a read-only place or a full disk is reported before drawing."""
    from trace_format.atomic import folder_problem, probe_folder

    if output.is_dir():
        raise UsageError(f"-o {output} is a folder; give the preview's file name, e.g. {output / 'preview.mp4'}")
    try:
        probe_folder(output)
    except OSError as error:
        raise OutputError(f"-o {output}: {folder_problem(error, output.parent)}") from None


def _run_preview(result_path: Path, video: Path, reporter: ProgressReporter) -> Path:
    """`run --preview`: the overlay video beside the result (`<name>.preview.mp4`)."""
    from .preview import PreviewOptions, render_preview

    result_path = Path(result_path)
    name = result_path.name[:-len(".trace.npz")] if result_path.name.endswith(".trace.npz") else result_path.stem
    output = result_path.with_name(name + ".preview.mp4")
    started = [False]

    def on_progress(done: int, total: int) -> None:
        if not started[0]:
            reporter.begin_stage("preview", total)
            started[0] = True
        reporter.update(done)

    summary = render_preview(PreviewOptions(result_path, output, video_path=Path(video)), on_progress)
    if started[0]:
        reporter.end_stage()
    return summary.output_path


def _run_preview_keeping_result(result_path: Path, video: Path, reporter: ProgressReporter) -> Path | None:
    """`run --preview` once the result is saved: a preview that cannot be made is a warning, never a lost run."""
    try:
        return _run_preview(result_path, video, reporter)
    except (TraceError, OSError) as error:
        reporter.warning(f"the preview video was not written ({error}); the result {result_path} is complete")
        return None


def _run(args: argparse.Namespace, reporter: ProgressReporter, summary_stream: TextIO) -> int:
    from .pipeline import RunOptions, run_video   # heavy imports (torch) only once the arguments are fine

    if args.save_vertices and args.smpl_model is None:
        raise UsageError("--save-vertices needs --smpl-model FILE (vertices come from the SMPL model)")
    options = RunOptions(
        input_path=args.input, output_dir=args.output, weights_dir=args.weights, device=args.device,
        dtype=args.dtype, autocast=args.autocast, subjects=args.subjects,
        official_tracking=args.official_tracking or args.tracking_preset is not None,
        tracking_preset=args.tracking_preset, fov_deg=args.fov,
        focal_px=args.focal, start=args.start, end=args.end, stride=args.stride, image_fps=args.fps,
        smpl_model=args.smpl_model, smpl_extra_regressor=args.smpl_extra_regressor,
        save_vertices=args.save_vertices, offline=args.offline, threads=args.threads,
        tracking_overrides=parse_tracking_overrides(args.tracking), shot_detection=args.shot_detection,
        align=args.align, foot_cleanup=args.foot_cleanup, denoise=args.denoise,
        raft_iterations=args.raft_iterations, raft_warm_start=args.raft_warm_start)
    summary = run_video(options, reporter)
    rate = summary.frames / summary.seconds if summary.seconds > 0 else 0.0
    lines = [f"{summary.tracks} track(s) over {summary.frames} frames in {summary.seconds:.1f} s "
             f"({rate:.2f} frames/s) -> {summary.result_path}"]
    if summary.world is not None:
        lines += world_summary_lines(summary.world)
    extra = dict(summary.world.event_fields()) if summary.world is not None else {}
    if args.preview:
        preview_path = _run_preview_keeping_result(summary.result_path, args.input, reporter)
        if preview_path is not None:
            lines.append(f"preview -> {preview_path}")
            extra["preview"] = str(preview_path)
    _write_quietly(summary_stream, "".join(line + "\n" for line in lines))
    write = summary.write
    if write is not None and write.saved_elsewhere:
        message = (f"{write.failure}. The finished result was saved to {write.path} instead: move it where you "
                   f"want it" + (f" (it covers the frames before this: {summary.partial_error.message})"
                                 if summary.partial_error is not None else ""))
        reporter.warning(message)
        reporter.done(str(write.path), summary.tracks, int(ExitCode.SAVED_ELSEWHERE), extra)
        return int(ExitCode.SAVED_ELSEWHERE)
    if summary.partial_error is not None:
        beside = (f" (beside the complete result {write.intended.name}, which was kept)"
                  if write is not None and write.beside_complete else "")
        partial = PartialResultError(
            f"{summary.partial_error.message}. The result of the frames before it was written to "
            f"{summary.result_path}{beside}", str(summary.result_path), summary.tracks)
        reporter.warning(partial.message)
        reporter.done(str(summary.result_path), summary.tracks, int(partial.exit_code), extra)
        return int(partial.exit_code)
    reporter.done(str(summary.result_path), summary.tracks, int(ExitCode.OK), extra)
    return int(ExitCode.OK)


def world_summary_lines(world: "WorldSummary", max_shots: int = 8) -> list[str]:
    """What the world stage did, for people: one line per shot (at most max_shots) and one for the feet."""
    out = [f"world: {world.shots} shot(s), floor aligned in {world.aligned_shots}"
           + (f"; {world.split_tracks} track(s) split at cuts" if world.split_tracks else "")]
    for entry in world.ground[:max_shots]:
        frames = f"frames {entry['start']}-{entry['stop'] - 1}"
        out.append(f"  shot {entry['shot']} ({frames}): {_describe_ground(entry)}")
    if len(world.ground) > max_shots:
        out.append(f"  ... and {len(world.ground) - max_shots} more shot(s) (see the result's shots)")
    if world.denoised_tracks:
        out.append(f"denoising: {world.denoised_tracks} of {world.tracks} track(s); input noise "
                   f"~{100 * (world.noise_m or 0):.1f} cm per frame; root jitter {world.root_jitter_before or 0:.0f} -> "
                   f"{world.root_jitter_after or 0:.0f} m/s^3")
    elif world.tracks:
        out.append("denoising: off or no track long enough")
    before, after = world.foot_sliding_mm_before, world.foot_sliding_mm_after
    if before is None:
        out.append("foot sliding: no foot contacts found")
    elif after is None:
        out.append(f"foot sliding: {before:.2f} mm per frame (cleanup off)")
    else:
        share = world.foot_sliding_reduction
        reduction = "" if share is None else f" ({100 * share:.0f}% less)"
        out.append(f"foot sliding: {before:.2f} -> {after:.2f} mm per frame{reduction}")
    return out


def _describe_ground(entry: dict) -> str:
    """One shot's floor fit (an entry of WorldSummary.ground) in words."""
    if entry["method"] == "none":
        return f"not aligned ({entry['note'] or 'no floor'})"
    where = (f"camera {entry['camera_height_m']:.2f} m above it, tilted {entry['camera_tilt_deg']:.1f} deg"
             if entry["camera_height_m"] is not None and entry["camera_tilt_deg"] is not None else "")
    if entry["method"] == "plane_fit":
        rms = "" if entry["rms_residual_m"] is None else f", rms {100 * entry['rms_residual_m']:.1f} cm"
        floor = f"floor fitted to {entry['inliers']} of {entry['candidates']} foot contact points{rms}"
        if entry.get("confidence") == "low":
            floor += f" (LOW CONFIDENCE: {entry['confidence_note']})"
    else:
        floor = (f"floor from the people's upright direction ({entry['candidates']} contact points, too few for a plane; "
                 f"LOW CONFIDENCE: {entry.get('confidence_note') or 'not fitted'})")
    used = "" if entry["aligned"] else "; alignment off: used for the foot contacts only"
    return f"{floor}; {where}{used}" if where else f"{floor}{used}"
