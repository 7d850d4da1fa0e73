"""`python -m core.verify maps` against the official reference (expected_seed0.npz), through the real command.

The full float64 run reproduces every array of the official network on the 16-frame reference clip
(about 5 minutes on 2 CPU cores; one run serves all its assertions). The other tests build small
expected files from the real one to show that a wrong value makes the command fail.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.verify.maps import parse_key, reduce_map

REPO = Path(__file__).resolve().parents[1]


def verify(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.verify", "maps", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_every_reference_key_is_understood(reference_dir):
    keys = np.load(reference_dir / "expected_seed0.npz").files
    kinds = {key: parse_key(key).kind for key in keys}
    assert not [k for k, kind in kinds.items() if kind == "unknown"]
    assert parse_key("cam_maps_3d_s8").base == "cam_maps_3d" and parse_key("cam_maps_3d_s8").step == 8
    assert parse_key("mesh_feature_maps_chan_mean").reduction == "chan_mean"
    assert parse_key("cam_motion_maps_s2").base == "cam_motion_maps"
    assert parse_key("final_clip12_world_cams").clip == 12


def test_crop_and_subsampling_rules():
    import torch
    maps_3d = torch.arange(2 * 3 * 64 * 128 * 128, dtype=torch.float64).reshape(2, 3, 64, 128, 128)
    sub = reduce_map(parse_key("cam_maps_3d_s8"), maps_3d, None, None)
    assert sub.shape == (2, 3, 8, 16, 16) and sub[1, 2, 1, 1, 1] == maps_3d[1, 2, 8, 8, 8]
    crop = reduce_map(parse_key("cam_maps_3d_crop"), maps_3d, [1], 16)
    assert crop.shape == (1, 3, 64, 16, 16) and crop[0, 0, 0, 0, 0] == maps_3d[1, 0, 0, 56, 56]
    maps_2d = maps_3d[:, :, 0]
    crop32 = reduce_map(parse_key("gru_out_crop"), maps_2d, [0, 1], 32)
    assert crop32.shape == (2, 3, 32, 32) and crop32[0, 0, 0, 0] == maps_2d[0, 0, 48, 48]
    std = reduce_map(parse_key("gru_out_std"), maps_2d, None, None)
    assert np.allclose(std.numpy(), maps_2d.reshape(2, -1).numpy().std(1))


def test_a_wrong_input_check_fails_without_running_the_network(tmp_path, reference_dir):
    expected = np.load(reference_dir / "expected_seed0.npz")
    images = np.load(reference_dir / "input512_seed0.npz")["input512"][:2]
    sums = expected["input512_sum"][:2].copy()
    sums[1] += 1
    small = write_npz(tmp_path / "expected.npz", T=np.int64(2), full_frames=np.array([0]), clip_starts=np.array([0]),
                      input512_sum=sums, input512_crop=expected["input512_crop"][:2], offsets=expected["offsets"][:2])
    result = verify("--weights", str(tmp_path / "no_weights_needed"), "--input",
                    str(write_npz(tmp_path / "input.npz", input512=images)), "--expected", str(small), timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()
             if line and line.split()[0] in ("input512_sum", "input512_crop", "offsets")}
    assert lines == {"input512_sum": "FAIL", "input512_crop": "ok", "offsets": "skipped"}
    assert "SUMMARY compared=2 ok=1 failed=1 missing=0" in result.stdout


def test_an_unknown_key_counts_as_not_produced(tmp_path, reference_dir):
    images = np.load(reference_dir / "input512_seed0.npz")["input512"][:1]
    small = write_npz(tmp_path / "expected.npz", T=np.int64(1), mystery_map=np.zeros(3))
    result = verify("--weights", str(tmp_path), "--input", str(write_npz(tmp_path / "input.npz", input512=images)),
                    "--expected", str(small), timeout=120)
    assert result.returncode == 1 and "mystery_map" in result.stdout and "missing=1" in result.stdout


def test_a_perturbed_map_fails_while_the_true_ones_pass(tmp_path, reference_dir, generated_weights):
    """One frame in float32: frame 0's image features and flow RAFT(img0, img0) do not depend on the clip."""
    expected = np.load(reference_dir / "expected_seed0.npz")
    images = np.load(reference_dir / "input512_seed0.npz")["input512"][:1]
    wrong_std = expected["img_feat_std"][:1] * 1.01
    small = write_npz(tmp_path / "expected.npz", T=np.int64(1), full_frames=np.array([0]), clip_starts=np.array([0]),
                      img_feat_full=expected["img_feat_full"][:1], img_feat_mean=expected["img_feat_mean"][:1],
                      img_feat_std=wrong_std, flows_128=expected["flows_128"][:1])
    report = tmp_path / "report.json"
    result = verify("--weights", str(generated_weights), "--input",
                    str(write_npz(tmp_path / "input.npz", input512=images)), "--expected", str(small),
                    "--dtype", "float32", "--threads", "2", "--report", str(report), timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    status = {r["key"]: r["status"] for r in json.loads(report.read_text())["results"]}
    assert status == {"T": "meta", "full_frames": "meta", "clip_starts": "meta", "img_feat_full": "ok",
                      "img_feat_mean": "ok", "img_feat_std": "FAIL", "flows_128": "ok"}
    assert "relative tolerance 0.001" in result.stdout


@pytest.mark.slow
def test_float64_cpu_run_reproduces_every_reference_array(tmp_path, reference_dir, generated_weights):
    report = tmp_path / "report.json"
    result = verify("--weights", str(generated_weights), "--input", str(reference_dir / "input512_seed0.npz"),
                    "--expected", str(reference_dir / "expected_seed0.npz"), "--dtype", "float64", "--device", "cpu",
                    "--threads", "2", "--report", str(report))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    print("\n".join(line for line in result.stdout.splitlines()
                    if line.startswith(("clip ", "SUMMARY", "peak memory"))))
    data = json.loads(report.read_text())
    expected_keys = np.load(reference_dir / "expected_seed0.npz").files
    results = {r["key"]: r for r in data["results"]}
    assert sorted(results) == sorted(expected_keys)
    not_compared = {k for k, r in results.items() if r["status"] in ("meta", "skipped")}
    assert not_compared == {"T", "full_frames", "clip_starts", "seq_cfgs_json", "cpu_seconds_per_component", "offsets"}
    compared = [r for r in results.values() if r["status"] not in ("meta", "skipped")]
    assert len(compared) == len(expected_keys) - len(not_compared) == data["summary"]["compared"]
    assert all(r["status"] == "ok" and r["max_rel"] <= 1e-6 for r in compared)
    # the network itself reproduces the reference to float64 rounding (most arrays bit for bit)
    assert max(r["max_rel"] for r in compared) < 1e-10
    assert results["final_clip0_none"]["status"] == "ok"
    assert results["final_clip1_params_pred"]["max_abs"] < 1e-12


def test_dispatcher_offers_both_subcommands(capsys):
    import core.verify as dispatcher
    for name in ("maps", "tracking"):
        with pytest.raises(SystemExit) as info:
            dispatcher.main([name, "--help"])
        assert info.value.code == 0 and "--expected" in capsys.readouterr().out
