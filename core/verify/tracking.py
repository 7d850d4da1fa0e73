"""`python -m core.verify tracking --expected FILE`: replay the official tracking fixture and compare.

The fixture (`expected_tracking.npz`, format in the reference README) holds synthetic network maps
in sparse form and, for several tracker configurations ("runs"), everything the official 3D-centre
parsing, tracker, memory unit and cam infilling produced from them. This command rebuilds the maps,
runs `core.tracking` on them clip by clip and compares every recorded key of every run:
integers and booleans exactly, floats within 1e-9 (absolute or relative). Exit 0 when everything
matches, 1 on any difference or any recorded key it could not produce, 2 when the file is unusable.

Runs are discovered from key prefixes: `subj{N}_` (subject_num N) and `subj{N}_t2f{K}_` (also
time2forget K); other settings come from `seq_cfgs_json` when present, else the official defaults.
The learned cam regressor is replaced by the fixture's synthetic camera
cam(z, y, x) = (0.9 - 0.012 z, y/64 - 1, x/64 - 1) at the parsed integer voxel; for the frames of a
track that has no tracker row (batch index -1, e.g. before a late entry or after a track hidden across
a clip boundary was forgotten) the official code samples an arbitrary place (the clip's last frame,
voxel (0, 0, 0)) where the synthetic camera is not defined: those cams are 0 before infilling.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..tracking import (Tracker3D, TrackingSettings, TrajectoryMemory, ensure_detection, gather_trajectory_features,
                        infill_low_quality_cams, parse_center_maps_3d, track_clip)

CLIP_LENGTH = 8                      # official temp_clip_length_eval
DEPTH_BINS, MAP_SIZE = 64, 128       # 3D centre map: 64 depth bins x 128 x 128
FLOAT_TOLERANCE = 1e-9
EXIT_OK, EXIT_MISMATCH, EXIT_UNUSABLE = 0, 1, 2

RUN_KEY = re.compile(r"^(?P<run>subj(?P<subjects>\d+)_(?:t2f(?P<forget>\d+)_)?)"
                     r"(?:clip(?P<clip>\d+)|tracker_call(?P<call>\d+))_(?P<field>.+)$")
INPUT_KEYS = {"center_sparse_idx", "center_sparse_val", "motion_sparse_idx", "motion_sparse_val", "seq_cfgs_json"}
GROUND_TRUTH_KEY = re.compile(r"^gt_[A-Za-z0-9]+_(z|y|x|score|vis)$")


class FixtureError(Exception):
    """The file is not a readable tracking fixture (missing inputs, bad shapes, unreadable npz)."""


# ------------------------------------------------------------------------------------------------
# the synthetic scene
# ------------------------------------------------------------------------------------------------

def synthetic_cams(czyxs: torch.Tensor) -> torch.Tensor:
    """[..., 3] integer voxels (z, y, x) -> [..., 3] float64 cams (0.9 - 0.012 z, y/64 - 1, x/64 - 1)."""
    v = czyxs.to(torch.float64)
    return torch.stack([0.9 - 0.012 * v[..., 0], v[..., 1] / 64 - 1, v[..., 2] / 64 - 1], dim=-1)


def synthetic_trajectory_cams(czyxs: torch.Tensor, batch_inds: torch.Tensor) -> torch.Tensor:
    """[K, L, 3] cams of a trajectory batch before infilling: the synthetic camera where the track has a
    tracker row, 0 where it has none (batch index -1: the official sample comes from a voxel that holds
    no camera). Infilling replaces those rows; they never reach the output."""
    cams = synthetic_cams(czyxs)
    return torch.where((batch_inds >= 0)[..., None], cams, torch.zeros_like(cams))


class SparseVolume:
    """A [T, Z, H, W] (optionally x channels) volume stored as (frame, z, y, x) -> value rows."""

    def __init__(self, idx: np.ndarray, values: np.ndarray, name: str) -> None:
        if idx.ndim != 2 or idx.shape[1] != 4 or len(values) != len(idx):
            raise FixtureError(f"{name}: expected idx [N,4] and N values, got {idx.shape} and {values.shape}")
        idx = idx.astype(np.int64)
        limits = np.array([np.iinfo(np.int64).max, DEPTH_BINS, MAP_SIZE, MAP_SIZE])
        if (idx < 0).any() or (idx[:, 1:] >= limits[1:]).any():
            raise FixtureError(f"{name}: voxel indices outside the {DEPTH_BINS}x{MAP_SIZE}x{MAP_SIZE} grid")
        linear = self._linear(idx)
        # last write wins on repeated voxels, as a dense assignment would do
        order = np.argsort(linear, kind="stable")
        linear_sorted = linear[order]
        last_of_run = np.append(linear_sorted[1:] != linear_sorted[:-1], True)[:len(linear_sorted)]  # [] stays []
        self.linear = linear_sorted[last_of_run]
        self.values = np.asarray(values, dtype=np.float64)[order][last_of_run]
        self.frames = idx[:, 0]

    @staticmethod
    def _linear(idx: np.ndarray) -> np.ndarray:
        return ((idx[:, 0] * DEPTH_BINS + idx[:, 1]) * MAP_SIZE + idx[:, 2]) * MAP_SIZE + idx[:, 3]

    def dense(self, start: int, end: int) -> np.ndarray:
        """Frames [start, end) as a dense float64 [n, Z, H, W] (scalar values only)."""
        per_frame = DEPTH_BINS * MAP_SIZE * MAP_SIZE
        lo, hi = np.searchsorted(self.linear, [start * per_frame, end * per_frame])
        out = np.zeros((end - start) * per_frame, np.float64)
        out[self.linear[lo:hi] - start * per_frame] = self.values[lo:hi]
        return out.reshape(end - start, DEPTH_BINS, MAP_SIZE, MAP_SIZE)

    def sample(self, frames: np.ndarray, czyxs: np.ndarray) -> np.ndarray:
        """Values at (frame, z, y, x) rows; zero where nothing is stored. [D] or [D, C]."""
        query = self._linear(np.concatenate([frames[:, None], czyxs], axis=1).astype(np.int64))
        pos = np.clip(np.searchsorted(self.linear, query), 0, max(len(self.linear) - 1, 0))
        found = (self.linear[pos] == query) if len(self.linear) else np.zeros(len(query), bool)
        out = np.zeros((len(query),) + self.values.shape[1:], np.float64)
        out[found] = self.values[pos[found]]
        return out


def mesh_feature_maps(start: int, end: int) -> torch.Tensor:
    """[n, 3, 128, 128] float64 with channels (global frame index, y, x) at every pixel."""
    frames = torch.arange(start, end, dtype=torch.float64)[:, None, None].expand(-1, MAP_SIZE, MAP_SIZE)
    ys = torch.arange(MAP_SIZE, dtype=torch.float64)[None, :, None].expand(end - start, -1, MAP_SIZE)
    xs = torch.arange(MAP_SIZE, dtype=torch.float64)[None, None, :].expand(end - start, MAP_SIZE, -1)
    return torch.stack([frames, ys, xs], dim=1).contiguous()


# ------------------------------------------------------------------------------------------------
# fixture reading
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunSpec:
    prefix: str
    subject_num: int
    time2forget: int


@dataclass
class Fixture:
    arrays: dict[str, np.ndarray]
    center: SparseVolume
    motion: SparseVolume
    num_frames: int
    clip_starts: list[int]
    runs: list[RunSpec]
    seq_cfgs: dict[str, Any] | None
    unclaimed_keys: list[str]


def load_fixture(path: Path) -> Fixture:
    """Read and sanity-check a tracking fixture; raises FixtureError with what is wrong."""
    if not path.is_file():
        raise FixtureError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise FixtureError(f"{path}: not a readable .npz file ({exc})") from exc
    missing = sorted(k for k in ("center_sparse_idx", "center_sparse_val", "motion_sparse_idx", "motion_sparse_val")
                     if k not in arrays)
    if missing:
        raise FixtureError(f"{path}: missing input arrays {missing} (is this an expected_tracking.npz?)")
    center = SparseVolume(arrays["center_sparse_idx"], arrays["center_sparse_val"].reshape(-1), "center_sparse")
    motion_values = arrays["motion_sparse_val"]
    if motion_values.ndim != 2 or motion_values.shape[1] != 3:
        raise FixtureError(f"motion_sparse_val must be [M, 3], got {motion_values.shape}")
    motion = SparseVolume(arrays["motion_sparse_idx"], motion_values, "motion_sparse")

    runs: dict[str, RunSpec] = {}
    clip_starts: dict[int, int] = {}
    unclaimed = []
    for key in sorted(arrays):
        m = RUN_KEY.match(key)
        if m:
            prefix = m["run"]
            runs.setdefault(prefix, RunSpec(prefix, int(m["subjects"]), int(m["forget"] or 0)))
            if m["clip"] is not None and m["field"] == "clip_start":
                start = clip_starts.setdefault(int(m["clip"]), int(arrays[key]))
                if start != int(arrays[key]):
                    raise FixtureError(f"{key} = {int(arrays[key])} disagrees with another run's clip start {start}")
        elif key not in INPUT_KEYS and not GROUND_TRUTH_KEY.match(key):
            unclaimed.append(key)
    if not runs:
        raise FixtureError(f"{path}: no run keys (subj{{N}}_clip{{c}}_... / subj{{N}}_tracker_call{{NN}}_...) found")
    if not clip_starts:
        raise FixtureError(f"{path}: no *_clip{{c}}_clip_start keys: cannot tell where clips begin")
    starts = [clip_starts[c] for c in sorted(clip_starts)]
    if starts[0] != 0 or any(b - a != CLIP_LENGTH for a, b in zip(starts, starts[1:])):
        raise FixtureError(f"clip starts {starts} are not consecutive clips of {CLIP_LENGTH} frames from 0")

    vis_lengths = {len(v) for k, v in arrays.items() if GROUND_TRUTH_KEY.match(k)}
    frame_evidence = [starts[-1] + 1]
    if len(center.frames):
        frame_evidence.append(int(center.frames.max()) + 1)
    if len(motion.frames):
        frame_evidence.append(int(motion.frames.max()) + 1)
    num_frames = max(vis_lengths) if vis_lengths else min(max(frame_evidence), starts[-1] + CLIP_LENGTH)
    if num_frames < max(frame_evidence):
        raise FixtureError(f"maps reference frame {max(frame_evidence) - 1} beyond the {num_frames} frames of the scene")
    if num_frames > starts[-1] + CLIP_LENGTH:
        raise FixtureError(f"{num_frames} frames but the last clip starts at {starts[-1]}: clip_start keys are missing")

    seq_cfgs = None
    if "seq_cfgs_json" in arrays:
        try:
            seq_cfgs = json.loads(str(arrays["seq_cfgs_json"]))
        except json.JSONDecodeError as exc:
            raise FixtureError(f"seq_cfgs_json is not valid JSON: {exc}") from exc
    return Fixture(arrays, center, motion, num_frames, starts, sorted(runs.values(), key=lambda r: r.prefix),
                   seq_cfgs, unclaimed)


def settings_for_run(run: RunSpec, seq_cfgs: dict[str, Any] | None) -> TrackingSettings:
    """Official settings (or the fixture's seq_cfgs) with the run's subject_num and time2forget."""
    if seq_cfgs is not None:
        return TrackingSettings.from_seq_cfgs(seq_cfgs, subject_num=run.subject_num, time2forget=run.time2forget)
    return TrackingSettings.official(subject_num=run.subject_num, time2forget=run.time2forget)


# ------------------------------------------------------------------------------------------------
# replay
# ------------------------------------------------------------------------------------------------

ParseCache = dict[tuple[int, float], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]


def parse_clip(fixture: Fixture, start: int, end: int, center_thresh: float,
               cache: ParseCache | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Detections of frames [start, end): (batch_ids, czyxs, scores, detection_flag); cached per clip and threshold."""
    key = (start, float(center_thresh))
    if cache is not None and key in cache:
        return cache[key]
    center_maps = torch.from_numpy(fixture.center.dense(start, end))       # [n, 64, 128, 128] float64
    batch_ids, czyxs, scores = parse_center_maps_3d(center_maps, center_thresh)
    result = ensure_detection(center_maps, batch_ids, czyxs, scores)
    if cache is not None:
        cache[key] = result
    return result


def replay_run(fixture: Fixture, settings: TrackingSettings, parse_cache: ParseCache | None = None) -> dict[str, np.ndarray]:
    """Run parsing -> tracking -> memory unit -> infilling clip by clip; keys as in the fixture (no run prefix)."""
    tracker = Tracker3D(settings, record_calls=True)
    memory = TrajectoryMemory()
    produced: dict[str, np.ndarray] = {}
    for clip_index, start in enumerate(fixture.clip_starts):
        end = min(start + CLIP_LENGTH, fixture.num_frames)
        out: dict[str, np.ndarray] = {}
        batch_ids, czyxs, scores, detection_flag = parse_clip(fixture, start, end, settings.center_thresh, parse_cache)
        motion = fixture.motion.sample(batch_ids.numpy() + start, czyxs.numpy())  # [D, 3]
        motion[batch_ids.numpy() == 0] = 0.0       # the network zeroes each clip's first-frame motion
        motion_offsets = torch.from_numpy(motion)
        cams = synthetic_cams(czyxs)
        out["clip_start"] = np.int64(start)
        out["parsed_batch_ids"] = batch_ids.numpy()
        out["parsed_czyxs"] = czyxs.numpy()
        out["parsed_scores"] = scores.numpy()
        out["parsed_motion_offsets"] = motion
        out["parsed_cams"] = cams.numpy()
        out["detection_flag"] = detection_flag.numpy()

        clip_tracks, tracker = track_clip(motion_offsets, batch_ids, cams, czyxs, scores, end - start, settings, tracker,
                                          detection_flag=detection_flag)
        if clip_tracks is None:
            out["none"] = np.bool_(True)
        else:
            ids = list(clip_tracks)
            out["track_ids_in_clip"] = np.array(ids, np.int64)
            out["trk_czyxs"] = np.stack([clip_tracks[t].czyxs.numpy() for t in ids])
            out["trk_batch_inds"] = np.stack([clip_tracks[t].batch_inds.numpy() for t in ids])
            out["trk_quality"] = np.stack([clip_tracks[t].quality.numpy() for t in ids])
            batch = gather_trajectory_features(clip_tracks, mesh_feature_maps(start, end), memory, settings)
            out["traj_features"] = batch.features.numpy()
            out["traj_czyxs"] = batch.czyxs.numpy()
            out["traj_batch_inds"] = batch.batch_inds.numpy()
            out["traj_valid_masks"] = batch.valid_masks.numpy()
            out["traj_track_ids"] = batch.track_ids[:, None].expand(-1, end - start).numpy()
            out["inherent_flags"] = batch.inherent_flags.numpy()
            out["memory_feature"] = np.stack([_feature_or_nan(memory[t].feature, batch.features.shape[-1]) for t in ids])
            cams_before = synthetic_trajectory_cams(batch.czyxs, batch.batch_inds)
            out["cams_before_infill"] = cams_before.numpy()
            out["cams_after_infill"] = infill_low_quality_cams(cams_before, batch.track_ids, memory,
                                                               batch.inherent_flags, settings).numpy()
        for name, value in out.items():
            produced[f"clip{clip_index}_{name}"] = value
    for call_index, call in enumerate(tracker.calls or []):
        key = f"tracker_call{call_index:02d}_"
        produced[key + "frame_id"] = np.int64(call.frame_id)
        produced[key + "in_trans3D"] = call.trans3d
        produced[key + "in_scores"] = call.scores
        produced[key + "in_last_trans3D"] = call.last_trans3d
        produced[key + "in_czyxs"] = call.czyxs
        produced[key + "out"] = call.output
    return produced


def _feature_or_nan(feature: torch.Tensor | None, channels: int) -> np.ndarray:
    return np.full(channels, np.nan) if feature is None else feature.numpy()


# ------------------------------------------------------------------------------------------------
# comparison
# ------------------------------------------------------------------------------------------------

def canonical_key(key: str) -> str:
    """Normalise clip / call numbers (clip01 == clip1, tracker_call7 == tracker_call07)."""
    key = re.sub(r"clip0*(\d+)_", lambda m: f"clip{int(m[1])}_", key)
    return re.sub(r"tracker_call0*(\d+)_", lambda m: f"tracker_call{int(m[1]):02d}_", key)


@dataclass
class Difference:
    key: str
    message: str


def compare_arrays(key: str, expected: np.ndarray, actual: np.ndarray) -> Difference | None:
    """None when equal (ints/bools exactly, floats within tolerance), else what differs."""
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    if expected.shape != actual.shape:
        return Difference(key, f"shape expected {expected.shape}, got {actual.shape}")
    if expected.size == 0:
        return None
    if expected.dtype.kind in "biu":
        actual_values = actual.astype(np.float64)
        if not np.all(actual_values == np.round(actual_values)):
            return Difference(key, f"expected integers ({expected.dtype}), got non-integral {actual.dtype} values")
        bad = expected.astype(np.int64) != actual_values.astype(np.int64)
        diff = np.abs(expected.astype(np.float64) - actual_values)
    elif expected.dtype.kind == "f":
        e = expected.astype(np.float64)
        a = actual.astype(np.float64)
        both_nan = np.isnan(e) & np.isnan(a)
        diff = np.where(both_nan, 0.0, np.abs(e - a))
        bad = ~both_nan & ~(diff <= FLOAT_TOLERANCE * np.maximum(1.0, np.abs(e)))
        diff = np.where(np.isnan(diff), np.inf, diff)
    else:
        bad = expected != actual
        if not np.any(bad):
            return None
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        return Difference(key, f"shape {expected.shape}: first mismatch at {first}: expected {expected[first]!r}, "
                               f"got {actual[first]!r}")
    if not np.any(bad):
        return None
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    return Difference(key, f"shape {expected.shape}, {int(bad.sum())} of {bad.size} differ, max |diff| "
                           f"{float(diff.max()):.3g}; first at {first}: expected {expected[first]!r}, got {actual[first]!r}")


def verify_file(path: Path, verbose: bool = False, out=sys.stdout) -> int:
    """Replay every run of the fixture at `path` and print the comparison; returns the exit code."""
    try:
        fixture = load_fixture(path)
    except FixtureError as exc:
        print(f"tracking: cannot use {path}: {exc}", file=out)
        return EXIT_UNUSABLE
    print(f"tracking: {path.name}: {fixture.num_frames} frames, clips at {fixture.clip_starts}, "
          f"runs {[r.prefix for r in fixture.runs]}", file=out)
    if verbose and fixture.unclaimed_keys:
        print(f"  not compared (neither input, ground truth nor run output): {fixture.unclaimed_keys}", file=out)
    compared = matched = 0
    differences: list[Difference] = []
    missing: list[str] = []
    parse_cache: ParseCache = {}
    for run in fixture.runs:
        try:
            settings = settings_for_run(run, fixture.seq_cfgs)
        except ValueError as exc:
            print(f"tracking: cannot build settings for run {run.prefix}: {exc}", file=out)
            return EXIT_UNUSABLE
        produced = {canonical_key(k): v for k, v in replay_run(fixture, settings, parse_cache).items()}
        run_keys = sorted(k for k in fixture.arrays if k.startswith(run.prefix) and RUN_KEY.match(k)
                          and RUN_KEY.match(k)["run"] == run.prefix)
        run_differences = run_missing = 0
        for key in run_keys:
            local = canonical_key(key[len(run.prefix):])
            compared += 1
            if local not in produced:
                run_missing += 1
                missing.append(key)
                print(f"  MISSING {key}: recorded in the file but not produced by the replay", file=out)
                continue
            difference = compare_arrays(key, fixture.arrays[key], produced[local])
            if difference is None:
                matched += 1
                if verbose:
                    print(f"  ok      {key} {fixture.arrays[key].shape}", file=out)
            else:
                run_differences += 1
                differences.append(difference)
                print(f"  DIFFERS {difference.key}: {difference.message}", file=out)
        print(f"run {run.prefix}: subject_num {settings.subject_num}, time2forget {settings.time2forget}: "
              f"{len(run_keys)} keys, {len(run_keys) - run_differences - run_missing} match", file=out)
    status = "PASS" if not differences and not missing else "FAIL"
    print(f"tracking: {status}: {len(fixture.runs)} runs, {compared} keys compared, {matched} match, "
          f"{len(differences)} differ, {len(missing)} missing", file=out)
    return EXIT_OK if status == "PASS" else EXIT_MISMATCH


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------

def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--expected", required=True, type=Path,
                        help="tracking fixture, e.g. ../shared/trace_reference/expected_tracking.npz")
    parser.add_argument("--verbose", action="store_true", help="also list every key that matches")


def register(subparsers: Any) -> None:
    """Add the `tracking` sub-command to the `python -m core.verify` parser."""
    parser = subparsers.add_parser(
        "tracking", help="replay the official tracker fixture (parsing, tracker, memory unit, infilling)",
        description=__doc__.split("\n\n")[0])
    _add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return verify_file(Path(args.expected), verbose=bool(getattr(args, "verbose", False)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.verify.tracking", description=__doc__.split("\n\n")[0])
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
