"""`python -m trace_blender import RESULT ...`: headless import and export through the bpy module;
`python -m trace_blender retarget RESULT --target RIG ...`: the same import, then a person's motion
baked onto your character's rig (trace_blender.retarget) and exported.

Same code path as the add-on: build.import_result and exporting.export_people. A result with
shots imports each shot as its own frame range (`--shot N` picks shots), with its ground alignment
(`--no-align`: the fixed (x, z, -y) mapping), the world stage's denoised, skate-cleaned motion
(`--raw-motion`: TRACE's raw motion) and one camera per shot with the source video as background (`--video` when it moved).
Exit codes (docs/blender.md): 0 ok, 1 export/build failure, 2 usage, 3 unreadable result file,
5 SMPL model file, 6 retarget refused (not a humanoid, incomplete map, ...), 7 an output file cannot
be written. Every failure is one `error:` line.
"""
from __future__ import annotations

import argparse
import math
import sys
import traceback
from pathlib import Path
from typing import Sequence

from trace_format import atomic

from .errors import OutputError, TraceBlenderError, UsageError
from .retarget.bone_maps import RIG_FAMILIES

PROG = "python -m trace_blender"
# Blender's scene frame limits (MINAFRAME / MAXFRAME): keys outside are clamped by Blender.
SCENE_FRAME_LIMIT = 1_048_574
OUTPUT_OPTIONS = {"fbx": ".fbx", "glb": ".glb", "bvh": ".bvh", "smpl": ".smpl", "amass": ".npz", "blend": ".blend",
                  "save_map": ".json"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Turn TRACE results into animated SMPL characters "
                                                            "and export them (needs the bpy module).")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("import", help="import a result file (ours or an official trace2 .npz)")
    command.add_argument("result", type=Path, metavar="RESULT", help="result .npz")
    command.add_argument("--fbx", type=Path, metavar="OUT.fbx", help="write an FBX (see --preset)")
    command.add_argument("--preset", choices=("unity", "unreal"), default="unity", help="FBX axes and naming")
    command.add_argument("--glb", type=Path, metavar="OUT.glb", help="write a binary glTF")
    command.add_argument("--bvh", type=Path, metavar="OUT.bvh", help="write a BVH (Y up; one file per person)")
    command.add_argument("--smpl", type=Path, metavar="OUT.smpl",
                         help="write SMPL motion as .smpl (smplcodec / Meshcapade; Z up; one file per person)")
    command.add_argument("--amass", type=Path, metavar="OUT.npz",
                         help="write SMPL motion as AMASS-style .npz (Z up; one file per person)")
    command.add_argument("--blend", type=Path, metavar="OUT.blend", help="save the scene as a .blend file")
    command.add_argument("--per-person", action="store_true",
                         help="one export file per person: OUT_<person>.ext beside OUT.ext")
    command.add_argument("--smpl-model", type=Path, metavar="FILE",
                         help="SMPL model file: body shapes and a skinned mesh (default: built-in skeleton)")
    command.add_argument("--frame-start", type=int, default=1, metavar="N",
                         help="scene frame of the video's first frame (default 1)")
    command.add_argument("--fps", type=float, default=None, metavar="F",
                         help="frame rate of an official trace2 result (it does not store one; default 30)")
    command.add_argument("--shot", type=int, action="append", default=None, metavar="N", dest="shots",
                         help="import only this shot (repeatable; default: every shot)")
    command.add_argument("--no-align", dest="align", action="store_false",
                         help="ignore the stored ground alignment: the fixed (x, z, -y) mapping of TRACE's world")
    command.add_argument("--raw-motion", dest="clean_motion", action="store_false",
                         help="animate TRACE's raw motion instead of the world stage's denoised, "
                              "foot-skate-cleaned motion")
    command.add_argument("--no-camera", dest="camera", action="store_false",
                         help="do not create the scene camera")
    command.add_argument("--no-body", dest="body", action="store_false",
                         help="armatures only: no skinned body (default: the SMPL mesh with --smpl-model, "
                              "else the built-in low-poly mannequin)")
    command.add_argument("--video", type=Path, metavar="FILE",
                         help="source video for the camera background (default: the path stored in the result)")
    retarget = commands.add_parser("retarget", help="import a result and bake one person onto your character's rig")
    retarget.add_argument("result", type=Path, metavar="RESULT", help="result .npz")
    retarget.add_argument("--target", type=Path, required=True, metavar="RIG",
                          help="your character: a .blend, .fbx, .glb or .gltf file with its armature")
    retarget.add_argument("--armature", metavar="NAME", help="the armature to use when the file holds several")
    retarget.add_argument("--rig", choices=RIG_FAMILIES, default="auto",
                          help="bone naming of the rig (default auto: detected, else by name and hierarchy)")
    retarget.add_argument("--map", type=Path, metavar="MAP.json", help="a bone map preset (overrides --rig)")
    retarget.add_argument("--save-map", type=Path, metavar="MAP.json",
                          help="write the bone map used (or the partial one found) as a preset to edit")
    retarget.add_argument("--person", type=int, metavar="ID", help="track id of the person (needed when several)")
    retarget.add_argument("--no-floor-contact", dest="floor_contact", action="store_false",
                          help="do not shift the character per frame to keep planted feet on the floor")
    retarget.add_argument("--fbx", type=Path, metavar="OUT.fbx", help="write the character as FBX (see --preset)")
    retarget.add_argument("--preset", choices=("unity", "unreal"), default="unity", help="FBX axes and naming")
    retarget.add_argument("--glb", type=Path, metavar="OUT.glb", help="write the character as binary glTF")
    retarget.add_argument("--blend", type=Path, metavar="OUT.blend", help="save the scene as a .blend file")
    retarget.add_argument("--fps", type=float, default=None, metavar="F",
                          help="frame rate of an official trace2 result (it does not store one; default 30)")
    retarget.add_argument("--shot", type=int, action="append", default=None, metavar="N", dest="shots",
                          help="import only this shot (repeatable; default: every shot)")
    retarget.add_argument("--raw-motion", dest="clean_motion", action="store_false",
                          help="TRACE's raw motion instead of the world stage's denoised, skate-cleaned motion")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)     # usage mistakes: argparse's message and exit 2
    try:
        if arguments.command == "retarget":
            return _retarget_command(arguments)
        return _import_command(arguments)
    except TraceBlenderError as exc:
        _print_error(str(exc))
        return exc.exit_code
    except OSError as exc:                           # writing an output met the file system
        _print_error(atomic.folder_problem(exc))
        return OutputError.exit_code
    except Exception as exc:                         # a bug: keep the traceback for the report
        traceback.print_exc()
        _print_error(f"internal error: {type(exc).__name__}: {exc}. This is a bug in TRACE for Blender, not a "
                     f"problem with your files: please report it with the traceback above.")
        return 1


def _print_error(message: str) -> None:
    first, *rest = message.strip().splitlines() or ["failed"]
    try:
        print(f"error: {first}", *rest, sep="\n", file=sys.stderr)
    except (OSError, ValueError, AttributeError):
        pass


def check_arguments(args: argparse.Namespace) -> None:
    """Everything checkable before Blender builds anything (import and retarget): numbers in range,
    outputs writable."""
    if args.fps is not None and not (math.isfinite(args.fps) and 0 < args.fps <= 1000):
        raise UsageError(f"--fps must be a frame rate from 0 to 1000, got {args.fps}")
    frame_start = getattr(args, "frame_start", 1)
    if not -SCENE_FRAME_LIMIT <= frame_start <= SCENE_FRAME_LIMIT:
        raise UsageError(f"--frame-start must be within Blender's frame range -{SCENE_FRAME_LIMIT:,} to "
                         f"{SCENE_FRAME_LIMIT:,}, got {frame_start:,}")
    if args.shots is not None and any(shot < 0 for shot in args.shots):
        raise UsageError("--shot: shot numbers start at 0")
    for option, extension in OUTPUT_OPTIONS.items():
        target = getattr(args, option, None)
        if target is None:
            continue
        flag = "--" + option.replace("_", "-")
        if target.is_dir():
            raise UsageError(f"{flag} {target} is a folder; give a file name, e.g. {target / ('scene' + extension)}")
        if not target.resolve().parent.is_dir():
            raise UsageError(f"{flag}: the folder {target.resolve().parent} does not exist")
        try:
            atomic.probe_folder(target.resolve())
        except OSError as exc:
            raise OutputError(atomic.folder_problem(exc, target.resolve().parent)) from None


def check_frame_range(frame_start: int, result) -> None:
    """The imported frames must fit Blender's scene frame range (else keys would be clamped)."""
    first, stop = result.processed_range()
    if frame_start + stop - 1 > SCENE_FRAME_LIMIT or frame_start + first < -SCENE_FRAME_LIMIT:
        raise UsageError(f"--frame-start {frame_start:,}: the result's frames {first}-{stop - 1} would end at scene "
                         f"frame {frame_start + stop - 1:,}, beyond Blender's limit {SCENE_FRAME_LIMIT:,}")


def _import_command(args: argparse.Namespace) -> int:
    check_arguments(args)
    try:
        import bpy
    except ImportError as exc:
        raise UsageError("this command needs Blender as a Python module: `pip install bpy==5.0.1` "
                         "(Python 3.11), or run it with Blender's own Python") from exc
    from . import build, exporting, plan

    bpy.ops.wm.read_factory_settings(use_empty=True)
    context = bpy.context
    options = plan.ImportOptions(smpl_model_path=str(args.smpl_model) if args.smpl_model else None,
                                     frame_start=args.frame_start, apply_alignment=args.align,
                                     use_clean_motion=args.clean_motion, shots=args.shots, build_camera=args.camera,
                                     build_mesh=args.body,
                                     video_path=str(args.video) if args.video else None)
    result = build.read_result_file(args.result, official_fps=args.fps)
    check_frame_range(args.frame_start, result)
    summary = build.import_result(result, context, options, source_path=args.result)
    for note in summary.warnings:
        print(f"note: {note}", file=sys.stderr)
    print(f"imported {len(summary.people)} people from {args.result.name}: scene frames "
          f"{summary.frame_start}-{summary.frame_end} at {summary.fps or 'unknown'} fps")
    for shot in summary.shots:
        camera = f", camera {shot.camera.name}" if shot.camera is not None else ""
        print(f"shot {shot.index}: scene frames {shot.first_frame}-{shot.last_frame}, {len(shot.people)} people, "
              f"{'floor aligned' if shot.aligned else 'not aligned'}{camera}")
    armatures = [person.armature for person in summary.people]
    exports = [(args.fbx, args.preset), (args.glb, "gltf"), (args.bvh, "bvh"), (args.smpl, "smpl"),
               (args.amass, "amass")]
    for target, export_format in exports:
        if target is None:
            continue
        per_person = args.per_person or (export_format in exporting.ONE_PERSON_FORMATS and len(armatures) > 1)
        for path in exporting.export_people(context, armatures, target, export_format, per_person=per_person):
            print(f"wrote {path}")
    if args.blend is not None:
        print(f"wrote {save_blend_atomic(bpy, args.blend)}")
    return 0


def save_blend_atomic(bpy, path: Path) -> Path:
    """Save the current file as `path` through a temporary file and os.replace."""
    target = path.resolve()
    with atomic.atomic_path(target, suffix=".blend") as temporary:
        bpy.ops.wm.save_as_mainfile(filepath=str(temporary), check_existing=False, copy=True, compress=False)
    return target


def _retarget_command(args: argparse.Namespace) -> int:
    check_arguments(args)
    if not args.target.is_file():
        raise UsageError(f"--target: no file at {args.target}")
    try:
        import bpy
    except ImportError as exc:
        raise UsageError("this command needs Blender as a Python module: `pip install bpy==5.0.1` "
                         "(Python 3.11), or run it with Blender's own Python") from exc
    from . import build, exporting, plan
    from .retarget import bake, bone_maps, files

    bone_map = bone_maps.read_preset(args.map)[0] if args.map is not None else None
    bpy.ops.wm.read_factory_settings(use_empty=True)
    context = bpy.context
    options = plan.ImportOptions(use_clean_motion=args.clean_motion, shots=args.shots, build_camera=False)
    result = build.read_result_file(args.result, official_fps=args.fps)
    summary = build.import_result(result, context, options, source_path=args.result)
    for note in summary.warnings:
        print(f"note: {note}", file=sys.stderr)
    people = {person.track_id: person.armature for person in summary.people}
    if args.person is None and len(people) != 1:
        raise UsageError(f"{args.result.name} holds {len(people)} people (track ids "
                         f"{', '.join(map(str, sorted(people)))}): pick one with --person ID")
    track_id = args.person if args.person is not None else next(iter(people))
    if track_id not in people:
        raise UsageError(f"--person {track_id}: no such person (track ids {', '.join(map(str, sorted(people)))})")
    source = people[track_id]
    target = files.load_rig_file(args.target, args.armature)
    if bone_map is None:
        rig = bake.rig_from_armature(target)
        deform = [bool(target.data.bones[name].use_deform) for name in rig.names]
        bone_map = bone_maps.make_map(args.rig, rig.names, rig.parents, deform)
    if args.save_map is not None:
        print(f"wrote {bone_maps.write_preset(args.save_map, bone_map, args.rig if args.map is None else 'custom')}")
    try:
        report = bake.bake(source, target, bone_map, floor_contact=args.floor_contact)
    except bone_maps.BoneMapError as exc:
        hint = ("edit the map written by --save-map and pass it with --map" if args.save_map is not None else
                "write the partial map with --save-map MAP.json, fill in the bones, pass it with --map MAP.json")
        raise bone_maps.BoneMapError(f"{exc}\nheadless: {hint}", exc.bone_map, exc.unmapped) from exc
    for warning in report.warnings:
        print(f"note: {warning}", file=sys.stderr)
    print(f"retargeted {source.name} onto {report.target}: action {report.action}, scene frames "
          f"{report.frames[0]}-{report.frames[1]}, {report.keyed_bones} bones keyed, root motion x{report.scale:.3f}")
    for path, export_format in ((args.fbx, args.preset), (args.glb, "gltf")):
        if path is not None:
            for written in exporting.export_people(context, [target], path, export_format):
                print(f"wrote {written}")
    if args.blend is not None:
        print(f"wrote {save_blend_atomic(bpy, args.blend)}")
    return 0
