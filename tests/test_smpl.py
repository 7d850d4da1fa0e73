"""Safe unpickling, the SMPL model file reader and the torch body model (all on a synthetic model)."""
from __future__ import annotations

import collections
import hashlib
import importlib
import os
import pickle
import pickletools
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from trace_format.safe_pickle import UnsafePickleError, UnsupportedPickleContentError, read_npz_member, restricted_loads
from trace_format.smpl_file import SmplModelData, SmplModelError, file_sha256, load_smpl_model_file
from core.smpl.body_model import BodyModel, place_at_hip_center
from helpers.synthetic_smpl import (SYNTHETIC_REST_JOINTS, FakeChumpyAdd, FakeChumpyMultiply, FakeChumpyReshape,
                                    FakeChumpySelect, FakeChumpyTranspose, FakeChumpyUnknownOp, chumpy_ch,
                                    dumps_foreign, make_synthetic_smpl_arrays, reference_lbs, scipy_csc, scipy_csr,
                                    write_smpl_like_pickle, write_synthetic_smpl_npz, write_synthetic_smpl_pkl)

REPO_ROOT = Path(__file__).resolve().parents[1]


class _RunsCommand:
    """Unpickling this with plain pickle would run a shell command (creates a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _CallsEval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.fixture(scope="module")
def synthetic_pkl(tmp_path_factory) -> Path:
    return write_synthetic_smpl_pkl(tmp_path_factory.mktemp("smpl") / "SMPL_NEUTRAL.pkl", seed=0)


@pytest.fixture(scope="module")
def model(synthetic_pkl) -> SmplModelData:
    return load_smpl_model_file(synthetic_pkl)


# ------------------------------------------------------------------------------- safe pickle
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, protocol):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"v_template": _RunsCommand(marker)}, protocol=protocol)
    with pytest.raises(UnsafePickleError, match="system"):
        restricted_loads(payload)
    assert not marker.exists()
    with pytest.raises(UnsafePickleError, match="builtin.*eval"):
        restricted_loads(pickle.dumps(_CallsEval(), protocol=protocol))


def test_refuses_arbitrary_classes_and_reconstructor_tricks():
    with pytest.raises(UnsafePickleError, match="subprocess.Popen"):
        restricted_loads(b"csubprocess\nPopen\n(S'ls'\ntR.")
    with pytest.raises(UnsafePickleError, match="collections.Counter"):
        restricted_loads(pickle.dumps(collections.Counter("aab"), protocol=2))
    # copyreg._reconstructor is only allowed to build our stand-ins, not e.g. a builtin set
    with pytest.raises(UnsafePickleError, match="_reconstructor"):
        restricted_loads(b"ccopy_reg\n_reconstructor\n(c__builtin__\nset\nc__builtin__\nobject\nNtR.")


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix
@pytest.mark.parametrize("protocol", [0, 2, 3, 5])
def test_numpy_objects_round_trip(protocol):
    rng = np.random.default_rng(0)
    content = {
        "f64": rng.normal(size=(4, 3)),
        "f32_fortran": np.asfortranarray(rng.normal(size=(3, 5)).astype(np.float32)),
        "u32": np.arange(12, dtype=np.uint32).reshape(3, 4),
        "bool": np.array([True, False]),
        "zero_d": np.array(3.5),
        "scalar": np.float64(2.25),
        "int_scalar": np.int64(-7),
        "text": "lbs",
        "nested": [(1, 2.0), {"a": {1, 2}}, frozenset({3})],
        "ordered": collections.OrderedDict(b=1, a=2),
        "raw": b"\x00\xff",
        "matrix": np.matrix([[1.0, 2.0], [3.0, 4.0]]),
    }
    loaded = restricted_loads(pickle.dumps(content, protocol=protocol))
    for key in ("f64", "f32_fortran", "u32", "bool", "zero_d"):
        assert loaded[key].dtype == content[key].dtype and np.array_equal(loaded[key], content[key])
    assert loaded["f32_fortran"].flags.f_contiguous
    assert loaded["scalar"] == 2.25 and isinstance(loaded["scalar"], np.float64)
    assert loaded["int_scalar"] == -7
    assert loaded["nested"] == [(1, 2.0), {"a": {1, 2}}, frozenset({3})]
    assert list(loaded["ordered"].items()) == [("b", 1), ("a", 2)]
    assert loaded["text"] == "lbs" and loaded["raw"] == b"\x00\xff"
    assert np.array_equal(np.asarray(loaded["matrix"]), [[1.0, 2.0], [3.0, 4.0]])


class _Python2StyleArray:
    """Pickles like a numpy array written by Python 2: the raw data is a (latin-1) str, not bytes."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __reduce__(self):
        reconstruct = np.ndarray(0).__reduce__()[0]
        state = (1, self.array.shape, self.array.dtype, False, self.array.tobytes().decode("latin1"))
        return (reconstruct, (np.ndarray, (0,), "b"), state)


def test_python2_style_array_payload():
    array = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
    loaded = restricted_loads(pickle.dumps({"posedirs": _Python2StyleArray(array)}, protocol=0))
    assert np.array_equal(loaded["posedirs"], array)


@pytest.mark.parametrize("protocol", [0, 2])
def test_chumpy_objects_become_numpy(protocol):
    base = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    ch = chumpy_ch(base)
    content = {
        "plain": ch,
        "shared": ch,  # the same object referenced twice stays one value
        "reshaped": FakeChumpyReshape(a=ch, newshape=(6, 4), _dirty_vars=set()),
        "selected": FakeChumpySelect(a=ch, idxs=np.array([3, 1, 20]), preferred_shape=(3,)),
        "transposed": FakeChumpyTranspose(a=ch, axes=(2, 0, 1)),
        "sum": FakeChumpyAdd(a=ch, b=chumpy_ch(np.ones((2, 3, 4)))),
        "scaled": FakeChumpyMultiply(a=ch, b=chumpy_ch(np.array(2.0))),
        "scalar_ch": chumpy_ch(np.array(5.0)),
    }
    loaded = restricted_loads(dumps_foreign(content, protocol=protocol))
    assert isinstance(loaded["plain"], np.ndarray) and np.array_equal(loaded["plain"], base)
    assert loaded["shared"] is loaded["plain"]
    assert np.array_equal(loaded["reshaped"], base.reshape(6, 4))
    assert np.array_equal(loaded["selected"], base.ravel()[[3, 1, 20]])
    assert np.array_equal(loaded["transposed"], np.transpose(base, (2, 0, 1)))
    assert np.array_equal(loaded["sum"], base + 1.0)
    assert np.array_equal(loaded["scaled"], base * 2.0)
    assert loaded["scalar_ch"].shape == (1,) and loaded["scalar_ch"][0] == 5.0  # chumpy's .r is at least 1-D


def test_unsupported_chumpy_op_gives_clear_error():
    payload = dumps_foreign({"J": FakeChumpyUnknownOp(a=chumpy_ch(np.eye(3)))})
    with pytest.raises(UnsupportedPickleContentError, match="chumpy.linalg.Inv.*numpy.array"):
        restricted_loads(payload)


@pytest.mark.parametrize("protocol", [0, 2])
def test_sparse_matrices_become_dense(protocol):
    rng = np.random.default_rng(1)
    dense = rng.normal(size=(6, 9))
    dense[rng.random((6, 9)) < 0.7] = 0.0
    loaded = restricted_loads(dumps_foreign({"csc": scipy_csc(dense), "csr": scipy_csr(dense)}, protocol=protocol))
    assert np.array_equal(loaded["csc"], dense) and np.array_equal(loaded["csr"], dense)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fake_sparse_state_matches_real_scipy():
    """Where scipy happens to be installed, it reads our fake csc/csr pickles to the same matrix and
    the restricted reader reads scipy's own pickles."""
    sparse = pytest.importorskip("scipy.sparse")
    dense = np.array([[0.0, 1.5, 0.0, 2.0], [3.0, 0.0, 0.0, 0.0], [0.0, 0.0, 4.0, 0.5]])
    for fake in (scipy_csc(dense), scipy_csr(dense)):
        # What unpickling would do, done explicitly (no plain unpickler): the class the pickle names, from
        # scipy itself, given the pickled state as its __dict__.
        (module, name), = [arg.split(" ") for op, arg, _ in pickletools.genops(dumps_foreign(fake))
                           if op.name == "GLOBAL" and arg.startswith("scipy.")]
        scipy_class = getattr(importlib.import_module(module), name)
        matrix = scipy_class.__new__(scipy_class)
        matrix.__dict__.update(vars(fake))
        assert np.array_equal(matrix.toarray(), dense)
    for matrix in (sparse.csc_matrix(dense), sparse.csr_matrix(dense), sparse.coo_matrix(dense)):
        for protocol in (2, 4):
            assert np.array_equal(restricted_loads(pickle.dumps(matrix, protocol=protocol)), dense)


def test_corrupt_sparse_state_is_rejected():
    bad = scipy_csc(np.eye(3))
    bad.indptr = np.array([0, 1, 5, 3], dtype=np.int32)
    with pytest.raises(UnsupportedPickleContentError, match="indptr"):
        restricted_loads(dumps_foreign({"J_regressor": bad}))
    huge = scipy_csc(np.eye(2))
    huge._shape = (10**6, 10**6)
    with pytest.raises(UnsupportedPickleContentError, match="implausible shape"):
        restricted_loads(dumps_foreign(huge))


def test_damaged_pickles_raise_content_errors():
    payload = pickle.dumps({"a": np.arange(5.0)}, protocol=2)
    for damaged in (payload[: len(payload) // 2], b"\x80\x02}q\x00X\x01", b"not a pickle at all"):
        with pytest.raises(UnsupportedPickleContentError, match="damaged"):
            restricted_loads(damaged)


def test_read_npz_member_object_array_without_code(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, outputs={"a": np.arange(3.0)}, plain=np.arange(4, dtype=np.int16).reshape(2, 2))
    outputs = read_npz_member(path, "outputs")
    assert outputs.shape == () and np.array_equal(outputs[()]["a"], np.arange(3.0))
    assert np.array_equal(read_npz_member(path, "plain"), np.arange(4, dtype=np.int16).reshape(2, 2))
    with pytest.raises(KeyError):
        read_npz_member(path, "missing")
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.npz"
    np.savez(evil, outputs=np.array([_RunsCommand(marker)], dtype=object))
    with pytest.raises(UnsafePickleError):
        read_npz_member(evil, "outputs")
    assert not marker.exists()


# ------------------------------------------------------------------------------- model file
def test_synthetic_file_has_the_official_layout(synthetic_pkl):
    raw = synthetic_pkl.read_bytes()
    assert raw[:2] == b"\x80\x02"  # protocol 2, like the Python 2.7 SMPL files
    assert b"chumpy.ch\nCh\n" in raw and b"scipy.sparse.csc\ncsc_matrix\n" in raw
    content = restricted_loads(raw)
    assert set(content) == {"J_regressor_prior", "f", "J_regressor", "kintree_table", "J", "weights_prior",
                            "weights", "vert_sym_idxs", "posedirs", "pose_training_info", "bs_style",
                            "v_template", "shapedirs", "bs_type"}
    assert content["kintree_table"][0, 0] == 4294967295
    assert content["posedirs"].shape == (432, 3, 207)


def test_loader_needs_neither_chumpy_scipy_nor_torch(synthetic_pkl):
    """In a fresh interpreter where importing chumpy, scipy or torch fails, the numpy-only modules
    still load the SMPL pickle (so the Blender extension can ship them)."""
    script = textwrap.dedent(f"""
        import sys
        for blocked in ("chumpy", "scipy", "torch", "smplx"):
            sys.modules[blocked] = None  # any import of these now raises ImportError
        import trace_format.smpl_file, trace_format.npz, trace_format.trace2, trace_format.safe_pickle
        model = trace_format.smpl_file.load_smpl_model_file({str(synthetic_pkl)!r})
        print(model.v_template.shape, model.posedirs.shape, model.j_regressor.shape)
    """)
    completed = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "(432, 3) (207, 1296) (24, 432)"


def test_model_arrays_and_conventions(model, synthetic_pkl):
    arrays = make_synthetic_smpl_arrays(seed=0)
    vertex_count = arrays["v_template"].shape[0]
    assert model.v_template.dtype == np.float64 and np.array_equal(model.v_template, arrays["v_template"])
    assert model.shapedirs.shape == (vertex_count, 3, 10) and np.array_equal(model.shapedirs, arrays["shapedirs"])
    # smplx layout: the file's (V,3,207) reshaped to (V*3,207) and transposed
    assert np.array_equal(model.posedirs, arrays["posedirs"].reshape(-1, 207).T)
    assert np.array_equal(model.j_regressor, arrays["J_regressor"])
    assert np.array_equal(model.weights, arrays["weights"])
    assert model.faces.dtype == np.int64 and np.array_equal(model.faces, arrays["f"].astype(np.int64))
    assert model.parents.tolist() == [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
    assert model.sha256 == hashlib.sha256(synthetic_pkl.read_bytes()).hexdigest() == file_sha256(synthetic_pkl)
    assert model.source_path == str(synthetic_pkl)


def test_joints_and_vertices_for_betas(model):
    zero = np.zeros(10)
    assert np.allclose(model.joints_for_betas(zero), model.j_regressor @ model.v_template, atol=1e-12)
    # the made-up mesh regresses joints onto its made-up skeleton (ring centres + small jitter)
    assert np.max(np.abs(model.joints_for_betas(zero) - SYNTHETIC_REST_JOINTS)) < 0.02
    betas = np.array([1.0, -0.5, 0.3, 0, 0, 0, 0, 0, 0, 0.2])
    expected_vertices = model.v_template + model.shapedirs @ betas
    assert np.allclose(model.vertices_for_betas(betas), expected_vertices, atol=1e-12)
    assert np.allclose(model.joints_for_betas(betas), model.j_regressor @ expected_vertices, atol=1e-12)
    batch = np.stack([zero, betas])
    assert model.joints_for_betas(batch).shape == (2, 24, 3)
    # beta 0 changes stature: the head moves relative to the ankles
    tall = model.joints_for_betas(np.eye(10)[0] * 2.0)
    assert (tall[15, 1] - tall[7, 1]) > (model.joints_for_betas(zero)[15, 1] - model.joints_for_betas(zero)[7, 1])
    with pytest.raises(ValueError, match="10 values"):
        model.joints_for_betas(np.zeros(11))


def test_npz_and_protocol0_forms_load_the_same(tmp_path, model):
    from_npz = load_smpl_model_file(write_synthetic_smpl_npz(tmp_path / "model.npz", seed=0))
    from_p0 = load_smpl_model_file(write_synthetic_smpl_pkl(tmp_path / "p0.pkl", seed=0, protocol=0))
    assert b"ccopy_reg\n_reconstructor" in (tmp_path / "p0.pkl").read_bytes()
    for loaded in (from_npz, from_p0):
        for name in ("v_template", "shapedirs", "posedirs", "j_regressor", "weights", "faces", "parents"):
            assert np.array_equal(getattr(loaded, name), getattr(model, name)), name


def test_extra_shape_components_are_trimmed(tmp_path):
    loaded = load_smpl_model_file(write_synthetic_smpl_pkl(tmp_path / "m300.pkl", num_betas=16))
    assert loaded.shapedirs.shape[2] == 10
    assert any("16 components" in note for note in loaded.notes)


def _write_pickle(path: Path, content) -> Path:
    path.write_bytes(pickle.dumps(content, protocol=2))
    return path


def test_wrong_files_give_actionable_errors(tmp_path):
    with pytest.raises(SmplModelError, match="not found.*smpl.is.tue.mpg.de"):
        load_smpl_model_file(tmp_path / "nope.pkl")
    with pytest.raises(SmplModelError, match="missing keys v_template.*smpl.is.tue.mpg.de"):
        load_smpl_model_file(_write_pickle(tmp_path / "dict.pkl", {"foo": 1}))
    text = tmp_path / "readme.pkl"
    text.write_text("this is a text file, not a model\n")
    with pytest.raises(SmplModelError, match="not an SMPL model file"):
        load_smpl_model_file(text)
    with pytest.raises(SmplModelError, match="holds a list"):
        load_smpl_model_file(_write_pickle(tmp_path / "list.pkl", [1, 2]))
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(write_synthetic_smpl_pkl(tmp_path / "full.pkl").read_bytes()[:100_000])
    with pytest.raises(SmplModelError, match="damaged"):
        load_smpl_model_file(truncated)


def test_smplx_like_file_is_named(tmp_path):
    arrays = make_synthetic_smpl_arrays(seed=0)
    vertex_count = arrays["v_template"].shape[0]
    parents = np.concatenate([[4294967295], np.arange(54) // 2])
    arrays.update(kintree_table=np.stack([parents, np.arange(55)]), J_regressor=np.full((55, vertex_count), 1.0 / vertex_count),
                  weights=np.full((vertex_count, 55), 1.0 / 55), hands_componentsl=np.zeros((45, 45)))
    with pytest.raises(SmplModelError, match="SMPL-X model \\(55 joints\\).*24 joints"):
        load_smpl_model_file(write_smpl_like_pickle(tmp_path / "SMPLX_NEUTRAL.pkl", arrays))


def test_unsafe_model_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = _write_pickle(tmp_path / "evil.pkl", {"v_template": _RunsCommand(marker)})
    with pytest.raises(SmplModelError, match="unsafe.*system"):
        load_smpl_model_file(path)
    assert not marker.exists()


def test_damaged_arrays_are_reported(tmp_path):
    arrays = make_synthetic_smpl_arrays(seed=0)
    arrays["v_template"] = arrays["v_template"].copy()
    arrays["v_template"][5, 1] = np.nan
    with pytest.raises(SmplModelError, match="v_template.*NaN"):
        load_smpl_model_file(write_smpl_like_pickle(tmp_path / "nan.pkl", arrays))
    arrays = make_synthetic_smpl_arrays(seed=0)
    arrays["posedirs"] = arrays["posedirs"][:, :, :200]
    with pytest.raises(SmplModelError, match="posedirs"):
        load_smpl_model_file(write_smpl_like_pickle(tmp_path / "pose.pkl", arrays))
    pickled_npz = tmp_path / "objects.npz"
    np.savez(pickled_npz, v_template=np.array([{"a": 1}], dtype=object))
    with pytest.raises(SmplModelError, match="pickled objects"):
        load_smpl_model_file(pickled_npz)


# ------------------------------------------------------------------------------- body model
def _random_inputs(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    poses = rng.normal(scale=0.5, size=(count, 24, 3))
    poses[0] = 0.0  # include the rest pose
    poses[1, 5] = [np.pi * 0.999, 0.0, 0.0]  # and a near-180-degree joint
    return poses, rng.normal(scale=1.0, size=(count, 10))


def test_body_model_matches_numpy_reference(model):
    poses, betas = _random_inputs(6, seed=3)
    body = BodyModel(model, dtype=torch.float64)
    joints, vertices = body(poses, betas)
    ref_joints, ref_vertices = reference_lbs(model, poses, betas)
    assert joints.dtype == torch.float64 and joints.shape == (6, 24, 3) and vertices.shape == (6, 432, 3)
    assert np.max(np.abs(joints.numpy() - ref_joints)) < 1e-5
    assert np.max(np.abs(vertices.numpy() - ref_vertices)) < 1e-5
    # the root stays at the shaped rest root (no translation in the model frame)
    assert np.allclose(joints[:, 0].numpy(), model.joints_for_betas(betas)[:, 0], atol=1e-9)


def test_body_model_joint_only_path_and_chunking(model):
    poses, betas = _random_inputs(9, seed=4)
    body = BodyModel(model, dtype=torch.float64)
    joints, vertices = body(poses, betas)
    joints_only, none = body(poses, betas, with_vertices=False)
    assert none is None
    assert torch.allclose(joints_only, joints, atol=1e-12)
    chunked_joints, chunked_vertices = body(poses, betas, chunk_size=2)
    assert torch.allclose(chunked_joints, joints, atol=1e-12) and torch.allclose(chunked_vertices, vertices, atol=1e-12)
    # one shape for all frames, and [N,72] poses
    shared_joints, _ = body(poses.reshape(9, 72), betas[0], with_vertices=False)
    assert torch.allclose(shared_joints, body.joints(poses, np.repeat(betas[:1], 9, axis=0)), atol=1e-12)
    assert torch.allclose(body.rest_joints(betas[2])[0], torch.from_numpy(model.joints_for_betas(betas[2])), atol=1e-12)
    # float32 stays close to float64
    joints32, _ = BodyModel(model)(poses, betas, with_vertices=False)
    assert joints32.dtype == torch.float32 and np.max(np.abs(joints32.numpy() - joints.numpy())) < 1e-5
    with pytest.raises(ValueError, match="poses"):
        body(np.zeros((2, 23, 3)), betas[:2])
    with pytest.raises(ValueError, match="betas"):
        body(poses[:2], np.zeros((3, 10)))


def test_place_at_hip_center_torch_and_numpy(model):
    poses, betas = _random_inputs(4, seed=5)
    body = BodyModel(model, dtype=torch.float64)
    joints, vertices = body(poses, betas)
    target = torch.tensor([[0.0, 0.0, 3.0], [1.0, -0.5, 4.0], [-2.0, 0.3, 6.0], [0.1, 0.2, 0.3]], dtype=torch.float64)
    placed_joints, placed_vertices = place_at_hip_center(joints, vertices, target)
    assert torch.allclose(0.5 * (placed_joints[:, 1] + placed_joints[:, 2]), target, atol=1e-12)
    # a pure translation: shapes of bodies unchanged
    assert torch.allclose(placed_vertices - placed_joints[:, :1], vertices - joints[:, :1], atol=1e-12)
    numpy_joints, numpy_vertices = place_at_hip_center(joints.numpy(), None, target.numpy())
    assert numpy_vertices is None and np.allclose(numpy_joints, placed_joints.numpy(), atol=1e-12)
