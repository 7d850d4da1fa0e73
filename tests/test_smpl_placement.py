"""Official placement: the midpoint of joints 35/36 (J_regressor_extra.npy rows 0 and 1) at cam_trans."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from core.smpl.body_model import BodyModel, hips_minus_anchor, place_at_hip_center
from core.smpl.extra_regressor import ExtraRegressorError, load_extra_regressor
from trace_format.smpl_file import load_smpl_model_file
from tests.helpers.synthetic_smpl import write_synthetic_smpl_npz


def write_extra_regressor(path, num_vertices: int, seed: int = 0) -> np.ndarray:
    """A made-up [9, V] regressor: each row a few vertices with weights summing to 1."""
    rng = np.random.default_rng(seed)
    array = np.zeros((9, num_vertices), np.float32)
    for row in range(9):
        picked = rng.choice(num_vertices, 6, replace=False)
        weights = rng.random(6)
        array[row, picked] = weights / weights.sum()
    np.save(path, array)
    return array


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("smpl")
    data = load_smpl_model_file(write_synthetic_smpl_npz(folder / "smpl.npz"))
    return BodyModel(data, dtype=torch.float64), data, folder


def test_official_placement_puts_the_joints35_36_midpoint_at_the_translation(model, tmp_path):
    body, data, _ = model
    array = write_extra_regressor(tmp_path / "J_regressor_extra.npy", data.num_vertices)
    regressor = load_extra_regressor(tmp_path / "J_regressor_extra.npy")
    regressor.check_vertices(body.num_vertices)
    rng = np.random.default_rng(1)
    poses, betas = rng.normal(0, 0.5, (4, 24, 3)), rng.normal(0, 1, (4, 10))
    cam_trans = rng.normal(0, 1, (4, 3)) + [0, 0, 5]
    joints, vertices = body(poses, betas)
    anchor = body.regressed_points(poses, betas, regressor.indices, regressor.weights)          # sparse skinning
    full = np.einsum("v,nvk->nk", 0.5 * (array[0] + array[1]).astype(np.float64), vertices.numpy())
    np.testing.assert_allclose(anchor.numpy(), full, atol=1e-9)
    # the pipeline stores hip_center = cam_trans + (hips - anchor); placing by hips then puts the anchor at cam_trans
    hip_center = cam_trans + hips_minus_anchor(joints.numpy(), anchor.numpy())
    _, placed_vertices = place_at_hip_center(joints.numpy(), vertices.numpy(), hip_center)
    placed_anchor = np.einsum("v,nvk->nk", 0.5 * (array[0] + array[1]).astype(np.float64), placed_vertices)
    np.testing.assert_allclose(placed_anchor, cam_trans, atol=1e-9)
    offset = hips_minus_anchor(joints.numpy(), anchor.numpy())
    assert np.linalg.norm(offset, axis=1).max() > 1e-3          # the two placements really differ


def test_regressor_checks(model, tmp_path):
    _, data, _ = model
    with pytest.raises(ExtraRegressorError, match="not found"):
        load_extra_regressor(tmp_path / "absent.npy")
    np.save(tmp_path / "flat.npy", np.ones(6890, np.float32))
    with pytest.raises(ExtraRegressorError, match=r"shape \(6890,\), expected \[9, 6890\]"):
        load_extra_regressor(tmp_path / "flat.npy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ExtraRegressorError, match="pickled Python objects; refused"):
        load_extra_regressor(tmp_path / "objects.npy")
    (tmp_path / "evil.npy").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(ExtraRegressorError, match="a Python pickle, refused"):
        load_extra_regressor(tmp_path / "evil.npy")
    np.save(tmp_path / "not_regressor.npy", np.full((9, 50), 3.0))
    with pytest.raises(ExtraRegressorError, match="row 0 sums to 150.0000, not 1"):
        load_extra_regressor(tmp_path / "not_regressor.npy")
    write_extra_regressor(tmp_path / "other_model.npy", 6890)
    with pytest.raises(ExtraRegressorError, match="6890 vertices but the SMPL model has"):
        load_extra_regressor(tmp_path / "other_model.npy").check_vertices(data.num_vertices)
    (tmp_path / "text.npy").write_text("hello")
    with pytest.raises(ExtraRegressorError, match="not a readable .npy"):
        load_extra_regressor(tmp_path / "text.npy")


def _run(tmp_path, monkeypatch, video, smpl, *flags):
    import io
    import json

    import core.pipeline
    from core.cli import main
    from helpers.stand_in_network import StandInNetwork, loader
    from trace_format.npz import read_result

    monkeypatch.setattr(core.pipeline, "load_network", loader(StandInNetwork(2)))
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", str(video), "-o", str(tmp_path / ("out" + str(len(flags)))), "--smpl-model", str(smpl),
                 "--save-vertices", "--progress-json", "--threads", "1", "--no-denoise", *flags], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    return read_result(json.loads(out.getvalue().splitlines()[-1])["result"])


def test_run_with_the_official_regressor_places_joints35_36_at_the_translation(tmp_path, monkeypatch):
    from helpers.preview_scene import write_plain_video
    from tests.helpers.synthetic_smpl import write_synthetic_smpl_pkl

    video = write_plain_video(tmp_path / "clip.mp4", 160, 120, 8)
    smpl = write_synthetic_smpl_pkl(tmp_path / "SMPL_NEUTRAL.pkl")
    array = write_extra_regressor(tmp_path / "J_regressor_extra.npy", load_smpl_model_file(smpl).num_vertices)
    plain = _run(tmp_path, monkeypatch, video, smpl)
    official = _run(tmp_path, monkeypatch, video, smpl, "--smpl-extra-regressor", str(tmp_path / "J_regressor_extra.npy"))
    assert plain.settings["placement"] == "smpl_hips" and plain.settings["smpl_extra_regressor"] is None
    assert official.settings["placement"] == "official_joints35_36"
    anchor_row = 0.5 * (array[0] + array[1]).astype(np.float64)
    for before, after in zip(plain.tracks, official.tracks):
        anchor = np.einsum("v,nvk->nk", anchor_row, after.vertices_cam.astype(np.float64))
        np.testing.assert_allclose(anchor, before.hip_center_cam, atol=2e-4)     # the network's translation
        anchor_world = np.einsum("v,nvk->nk", anchor_row, after.vertices_world.astype(np.float64))
        np.testing.assert_allclose(anchor_world, before.hip_center_world, atol=2e-4)
        assert np.abs(after.hip_center_cam - before.hip_center_cam).max() > 1e-4


def test_regressor_without_smpl_model_or_for_another_model_fails_before_the_network(tmp_path):
    import io

    from core.cli import main
    from helpers.preview_scene import write_plain_video
    from tests.helpers.synthetic_smpl import write_synthetic_smpl_pkl

    video = write_plain_video(tmp_path / "clip.mp4", 64, 48, 4)
    write_extra_regressor(tmp_path / "J.npy", 6890)
    err = io.StringIO()
    assert main(["run", str(video), "-o", str(tmp_path / "o"), "--smpl-extra-regressor", str(tmp_path / "J.npy")],
                stdout=io.StringIO(), stderr=err) == 2
    assert "needs --smpl-model" in err.getvalue()
    smpl = write_synthetic_smpl_pkl(tmp_path / "SMPL_NEUTRAL.pkl")
    err = io.StringIO()
    assert main(["run", str(video), "-o", str(tmp_path / "o"), "--smpl-model", str(smpl), "--offline",
                 "--smpl-extra-regressor", str(tmp_path / "J.npy")], stdout=io.StringIO(), stderr=err) == 5
    assert "J.npy" in err.getvalue() and "6890 vertices" in err.getvalue()
