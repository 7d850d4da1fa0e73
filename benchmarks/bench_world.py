"""Time and peak memory of the world post-processing on a long synthetic scene (prints only).

`core.world.postprocess.apply_world_processing` (shots, scene camera + track registration, floor,
foot contacts and skate cleanup) on a scene of TRACKS people over FRAMES frames at 30 fps (default
10 people x 18000 frames = 10 minutes). The scene is made in a first child process and written as
a result file; a second, fresh process reads it and runs the processing, so its peak RSS is that of
reading + processing only.

Scene: a camera 1.5 m high, pitched 15 degrees down, slowly panning and drifting, films people
walking in circles (FK + two-bone IK gait, stance feet sliding 3 cm per step). Track k starts 2 s
after track k-1, in the TRACE world of the camera at its first frame (as TRACE does for late
tracks); 0.5 degree / 5 mm of noise per frame.

    python benchmarks/bench_world.py                          # 10 x 18000
    python benchmarks/bench_world.py --tracks 3 --frames 3000 --repeat 1
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

FPS = 30.0
UP = np.array([0.0, 0.0, 1.0])
CANONICAL_TO_WORLD = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])   # canonical body faces +Y
LEVEL_CAMERA = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])           # OpenCV camera looking along +Y


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotations [...,3,3] about x (0) or z (2)."""
    angle = np.asarray(angle, float)
    c, s, o, z = np.cos(angle), np.sin(angle), np.ones_like(angle), np.zeros_like(angle)
    rows = [o, z, z, z, c, -s, z, s, c] if axis == 0 else [c, -s, z, s, c, z, z, z, o]
    return np.stack(rows, -1).reshape(angle.shape + (3, 3))


def camera(frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Truth camera: (R camera -> z-up world [F,3,3], centre [F,3])."""
    t = np.arange(frames) / FPS
    pan, pitch = np.radians(10.0) * np.sin(0.05 * t), np.full(frames, -math.radians(15.0))
    rotation = _rot(2, pan) @ LEVEL_CAMERA @ _rot(0, pitch)
    centre = np.stack([0.5 * np.sin(0.01 * t), 0.3 * np.sin(0.013 * t), np.full(frames, 1.5)], axis=1)
    return rotation, centre


def walker(frames: int, rng: np.random.Generator, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Someone walking in a circle: (poses [F,24,3] with joint 0 = z-up world orientation, hips [F,3])."""
    from trace_format.rotations import matrix_to_axis_angle
    from core.world.contacts import LEGS, pose_to_joints, two_bone_ik

    centre = np.array([rng.uniform(-3.0, 3.0), rng.uniform(6.0, 9.0)])
    radius, speed, direction = rng.uniform(1.5, 2.5), 0.8, rng.choice([-1.0, 1.0])
    phase0 = rng.uniform(0, 2 * math.pi)
    hip_rest = 0.5 * (rest[1] + rest[2])

    def heading(t: np.ndarray) -> np.ndarray:
        """Facing angle about +Z: along the circle's tangent."""
        return phase0 + direction * speed * t / radius + (0.0 if direction > 0 else math.pi)

    def body(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        angle = phase0 + direction * speed * t / radius
        position = np.stack([centre[0] + radius * np.cos(angle), centre[1] + radius * np.sin(angle),
                             np.zeros_like(t)], axis=1)
        return position, _rot(2, heading(t)) @ CANONICAL_TO_WORLD

    t = np.arange(frames) / FPS
    ground, orientation = body(t)
    hips = ground + (0.84 + 0.01 * np.cos(4 * math.pi * t))[:, None] * UP
    poses = np.zeros((frames, 24, 3))
    poses[:, 0] = matrix_to_axis_angle(orientation)
    rotations, joints = pose_to_joints(rest, poses, hips)
    pelvis = rotations[:, 0]
    for side, (hip, knee, ankle, _) in enumerate(LEGS):
        phase = 0.5 * side
        cycle_float = t + phase                                           # period 1 s
        cycle, within = np.floor(cycle_float), cycle_float % 1.0

        def planted(n: np.ndarray) -> np.ndarray:
            """Where the ankle stands during stance n (the body's nominal ankle at mid-stance)."""
            tm = n + 0.3 - phase
            g, o = body(tm)
            offset = np.einsum("tij,j->ti", o, rest[ankle] - hip_rest)
            return g + np.stack([offset[:, 0], offset[:, 1], np.full(len(tm), rest[ankle, 1])], axis=1)

        here, ahead = planted(cycle), planted(cycle + 1.0)
        swing = np.clip((within - 0.6) / 0.4, 0.0, 1.0)
        slide = 0.03 * np.where(within < 0.6, within / 0.6, 1.0 - swing)
        target = ((1 - swing)[:, None] * here + swing[:, None] * ahead + (0.1 * np.sin(np.pi * swing))[:, None] * UP
                  + slide[:, None] * np.array([0.7, 0.7, 0.0]))
        swing_thigh, swing_shin, _, _ = two_bone_ik(joints[:, hip], joints[:, knee], joints[:, ankle], target,
                                                     pelvis @ [0.0, 0.0, 1.0])
        thigh = swing_thigh @ rotations[:, hip]
        shin = swing_shin @ swing_thigh @ rotations[:, knee]
        # The planted foot keeps the heading it landed with; it turns during the swing.
        foot_heading = ((1 - swing) * heading(cycle + 0.3 - phase) + swing * heading(cycle + 1.3 - phase))
        foot = _rot(2, foot_heading) @ CANONICAL_TO_WORLD
        poses[:, hip] = matrix_to_axis_angle(np.swapaxes(pelvis, -1, -2) @ thigh)
        poses[:, knee] = matrix_to_axis_angle(np.swapaxes(thigh, -1, -2) @ shin)
        poses[:, ankle] = matrix_to_axis_angle(np.swapaxes(shin, -1, -2) @ foot)
    return poses, hips


def make_scene(path: Path, tracks: int, frames: int) -> None:
    """Write the synthetic TRACE-like result (TRACE world of each track = camera at its first frame)."""
    from trace_format.npz import write_result
    from trace_format.schema import CameraInfo, FramesProcessed, TraceResult, TrackResult, VideoInfo
    from trace_format.rotations import axis_angle_to_matrix, matrix_to_axis_angle
    from trace_format.skeleton import load_default_skeleton

    rng = np.random.default_rng(0)
    rest = load_default_skeleton()
    cam_r, cam_t = camera(frames)
    results = []
    for k in range(tracks):
        poses, hips = walker(frames, rng, rest)
        keep = np.arange(min(k * 60, frames - 1), frames)
        count = len(keep)
        r0, c0 = cam_r[keep[0]], cam_t[keep[0]]
        r_body = axis_angle_to_matrix(poses[keep, 0])
        noise = axis_angle_to_matrix(rng.normal(0.0, math.radians(0.5), (count, 3)))
        camera_poses = poses[keep].copy()
        camera_poses[:, 0] = matrix_to_axis_angle(noise @ np.swapaxes(cam_r[keep], -1, -2) @ r_body)
        results.append(TrackResult(
            track_id=k + 1, frames=keep, times=keep / FPS, poses=camera_poses,
            global_orient_world=matrix_to_axis_angle(r0.T @ r_body), betas=np.zeros((count, 10)),
            hip_center_cam=np.einsum("tji,tj->ti", cam_r[keep], hips[keep] - cam_t[keep])
            + rng.normal(0.0, 0.005, (count, 3)),
            hip_center_world=(hips[keep] - c0) @ r0, confidence=np.full(count, 0.9), observed=np.ones(count, bool),
            center_2d=np.full((count, 2), 320.0)))
    result = TraceResult(tracks=results, video=VideoInfo(path="synthetic.mp4", fps=FPS, width=1280, height=720,
                                                         frame_count=frames),
                         camera=CameraInfo(fov_deg=50.0, focal_px=1372.4),
                         frames_processed=FramesProcessed(first=0, last=frames - 1))
    write_result(path, result)


def measure(path: Path) -> dict:
    """Read the scene and run the world processing once (fresh process: peak RSS is ours)."""
    from trace_format.npz import read_result
    from core.world.postprocess import apply_world_processing

    result = read_result(path)
    rows = sum(track.num_frames for track in result.tracks)
    peak_read = peak_rss_mb()
    started, cpu_started = time.perf_counter(), time.process_time()
    processed = apply_world_processing(result)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    sliding = processed.world_processing["metrics"]["foot_sliding"]
    shot = processed.world_processing["metrics"]["shots"][0]
    return {"tracks": len(result.tracks), "rows": rows, "seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2),
            "peak_rss_after_read_mb": round(peak_read, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
            "sliding_before_mm": None if sliding["before_m"] is None else round(1000 * sliding["before_m"], 2),
            "sliding_after_mm": None if sliding["after_m"] is None else round(1000 * sliding["after_m"], 2),
            "ground": (shot["ground"] or {}).get("method"),
            "camera_spread_deg_median": shot["camera"].get("spread_deg_median")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=10)
    parser.add_argument("--frames", type=int, default=18000)
    parser.add_argument("--repeat", type=int, default=1, help="measurements (fresh process each)")
    parser.add_argument("--make", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        make_scene(args.make, args.tracks, args.frames)
        return
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    print(f"bench_world: apply_world_processing, {args.tracks} tracks x {args.frames} frames "
          f"({args.frames / FPS / 60:.1f} min at {FPS:.0f} fps)")
    with tempfile.TemporaryDirectory() as folder:
        scene = Path(folder) / "scene.trace.npz"
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--make", str(scene), "--tracks", str(args.tracks), "--frames",
                        str(args.frames)], check=True, cwd=REPO_ROOT)
        print(f"scene made in {time.perf_counter() - started:.1f} s ({scene.stat().st_size / 2**20:.1f} MB file)")
        for _ in range(args.repeat):
            run = subprocess.run([sys.executable, __file__, "--measure", str(scene)], capture_output=True, text=True,
                                 cwd=REPO_ROOT)
            if run.returncode != 0:
                raise SystemExit(f"measurement failed:\n{run.stderr[-3000:]}")
            row = json.loads(run.stdout.strip().splitlines()[-1])
            print(f"{row['tracks']} tracks, {row['rows']} person-frames: {row['seconds']:.1f} s ({row['cpu_seconds']:.1f} s "
                  f"CPU: on a loaded machine wall time overstates), peak RSS "
                  f"{row['peak_rss_mb']:.0f} MB (after reading the result: {row['peak_rss_after_read_mb']:.0f} MB); "
                  f"foot sliding {row['sliding_before_mm']} -> {row['sliding_after_mm']} mm/frame, floor "
                  f"{row['ground']}, camera spread median {row['camera_spread_deg_median']:.2f} deg")


if __name__ == "__main__":
    main()
