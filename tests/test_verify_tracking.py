"""`python -m core.verify tracking`: bit-exact replay of the official tracking fixture, and its failure modes."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np

from core.verify.tracking import (EXIT_MISMATCH, EXIT_OK, EXIT_UNUSABLE, RunSpec, load_fixture, replay_run,
                                  settings_for_run, verify_file)

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_verify(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.verify", "tracking", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)


def test_official_fixture_replays_exactly(reference_dir):
    result = run_verify("--expected", str(reference_dir / "expected_tracking.npz"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tracking: PASS: 3 runs, 408 keys compared, 408 match, 0 differ, 0 missing" in result.stdout


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    np.savez(path, **arrays)
    return path


def test_a_changed_track_id_or_perturbed_cam_fails_and_names_the_key(reference_dir, tmp_path):
    with np.load(reference_dir / "expected_tracking.npz") as data:
        arrays = {k: data[k] for k in data.files if not k.startswith("subj3")}   # one run keeps it quick
    arrays["subj1_clip1_track_ids_in_clip"] = arrays["subj1_clip1_track_ids_in_clip"] + 1
    arrays["subj1_clip0_cams_after_infill"] = arrays["subj1_clip0_cams_after_infill"].copy()
    arrays["subj1_clip0_cams_after_infill"][0, 3, 1] += 1e-7
    result = run_verify("--expected", str(_write_npz(tmp_path / "modified.npz", arrays)))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "DIFFERS subj1_clip1_track_ids_in_clip" in result.stdout
    assert "DIFFERS subj1_clip0_cams_after_infill" in result.stdout
    assert "first at (0, 3, 1)" in result.stdout
    assert "2 differ" in result.stdout and "FAIL" in result.stdout


def test_a_recorded_key_that_cannot_be_produced_fails(reference_dir, tmp_path):
    with np.load(reference_dir / "expected_tracking.npz") as data:
        arrays = {k: data[k] for k in data.files if not k.startswith("subj3")}
    arrays["subj1_clip0_unknown_quantity"] = np.zeros(3)
    out = io.StringIO()
    assert verify_file(_write_npz(tmp_path / "extra.npz", arrays), out=out) == EXIT_MISMATCH
    assert "MISSING subj1_clip0_unknown_quantity" in out.getvalue()


def test_unusable_files_exit_2(tmp_path):
    out = io.StringIO()
    assert verify_file(tmp_path / "absent.npz", out=out) == EXIT_UNUSABLE
    assert verify_file(_write_npz(tmp_path / "other.npz", {"a": np.zeros(2)}), out=out) == EXIT_UNUSABLE
    assert "missing input arrays" in out.getvalue()


def test_other_frame_counts_subject_numbers_and_forget_times(reference_dir, tmp_path):
    """A 12-frame file (clips of 8 + 4) with runs subj2_ and subj2_t2f5_: discovered and replayed."""
    with np.load(reference_dir / "expected_tracking.npz") as data:
        inputs = {k: data[k] for k in ("center_sparse_idx", "center_sparse_val", "motion_sparse_idx",
                                        "motion_sparse_val", "seq_cfgs_json")}
    keep = inputs["center_sparse_idx"][:, 0] < 12
    inputs["center_sparse_idx"], inputs["center_sparse_val"] = inputs["center_sparse_idx"][keep], inputs["center_sparse_val"][keep]
    keep = inputs["motion_sparse_idx"][:, 0] < 12
    inputs["motion_sparse_idx"], inputs["motion_sparse_val"] = inputs["motion_sparse_idx"][keep], inputs["motion_sparse_val"][keep]
    inputs["subj2_clip0_clip_start"], inputs["subj2_clip1_clip_start"] = np.int64(0), np.int64(8)
    fixture = load_fixture(_write_npz(tmp_path / "inputs.npz", inputs))
    assert fixture.num_frames == 12 and fixture.clip_starts == [0, 8]

    arrays = dict(inputs)
    for prefix, forget in (("subj2_", 0), ("subj2_t2f5_", 5)):
        produced = replay_run(fixture, settings_for_run(RunSpec(prefix, 2, forget), fixture.seq_cfgs))
        arrays.update({prefix + k: v for k, v in produced.items()})
    assert arrays["subj2_clip1_cams_after_infill"].shape[1] == 4        # the short last clip
    assert arrays["subj2_clip1_track_ids_in_clip"].tolist() == [1]      # B lost at frame 10, forgotten
    assert arrays["subj2_t2f5_clip1_track_ids_in_clip"].tolist() == [1, 2]
    path = _write_npz(tmp_path / "twelve.npz", arrays)
    out = io.StringIO()
    assert verify_file(path, out=out) == EXIT_OK, out.getvalue()
    assert "2 runs" in out.getvalue()

    arrays["subj2_t2f5_tracker_call09_out"] = arrays["subj2_t2f5_tracker_call09_out"].copy()
    arrays["subj2_t2f5_tracker_call09_out"][1, 3] = 7
    out = io.StringIO()
    assert verify_file(_write_npz(path, arrays), out=out) == EXIT_MISMATCH
    assert "DIFFERS subj2_t2f5_tracker_call09_out" in out.getvalue()
