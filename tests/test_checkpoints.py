"""core.checkpoints: safe loading and validation of the three official TRACE files.

Synthetic state dicts use stride-0 (expanded) tensors: every key has its manifest shape while a
whole file stays a few kilobytes, so each case writes and reads a real checkpoint file quickly.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from core.checkpoints import (SLOTS, CheckpointError, CheckpointKeysError, CheckpointNotFoundError,
                              CheckpointTruncatedError, CheckpointUnreadableError, CheckpointUnsafeError,
                              CheckpointWrongSlotError, load_checkpoint, load_manifest, sha256_file,
                              validate_weights_dir)
from core.errors import ExitCode, WeightsError


def synthetic_state(slot: str) -> dict[str, torch.Tensor]:
    """{file key: tensor} with every manifest key, right shape and dtype, tiny storage."""
    return {e.key: torch.zeros((), dtype=e.dtype).expand(e.shape) for e in load_manifest(slot)}


def save(state: object, path: Path) -> Path:
    torch.save(state, path)
    return path


@pytest.mark.parametrize("slot", sorted(SLOTS))
def test_synthetic_file_with_every_key_loads(tmp_path, slot):
    path = save(synthetic_state(slot), tmp_path / SLOTS[slot].filename)
    loaded = load_checkpoint(path, slot)
    manifest = load_manifest(slot)
    prefix = SLOTS[slot].prefix
    assert list(loaded.state_dict) == [e.key[len(prefix):] for e in manifest]
    assert loaded.ignored_keys == []


def test_generated_seed0_weights_load_and_match_the_manifests(generated_weights):
    loaded = validate_weights_dir(generated_weights, with_sha256=True)
    assert set(loaded) == {"image_backbone", "motion_backbone", "head"}
    assert len(loaded["image_backbone"].state_dict) == 1752
    assert len(loaded["motion_backbone"].state_dict) == 179
    assert len(loaded["head"].state_dict) == 404
    assert "conv1.weight" in loaded["image_backbone"].state_dict          # prefix module.backbone. removed
    assert "fnet.conv1.weight" in loaded["motion_backbone"].state_dict    # prefix module. removed
    assert loaded["head"].state_dict["coordmap_3d"].shape == (1, 64, 128, 128, 3)
    digest = loaded["head"].info[-1].split()[-1]
    assert digest == hashlib.sha256((generated_weights / "trace_head.pkl").read_bytes()).hexdigest()


def test_sha256_file(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc" * 1000)
    assert sha256_file(path, chunk_bytes=7) == hashlib.sha256(b"abc" * 1000).hexdigest()


def test_model_state_dict_wrapper_is_accepted(tmp_path):
    path = save({"model_state_dict": synthetic_state("head"), "epoch": torch.tensor(3)}, tmp_path / "trace_head.pkl")
    assert len(load_checkpoint(path, "head").state_dict) == 404


def test_missing_key_is_listed(tmp_path):
    state = synthetic_state("motion_backbone")
    del state["module.update_block.mask.2.bias"]
    path = save(state, tmp_path / "trace_motion_backbone.pth")
    with pytest.raises(CheckpointKeysError) as info:
        load_checkpoint(path, "motion_backbone")
    message = str(info.value)
    assert str(path) in message and "missing tensors (1)" in message
    assert "module.update_block.mask.2.bias" in message
    assert info.value.missing == ["module.update_block.mask.2.bias"]
    assert info.value.exit_code == ExitCode.WEIGHTS and isinstance(info.value, WeightsError)


@pytest.mark.parametrize("slot,extra", [("head", "extra_layer.weight"), ("motion_backbone", "module.extra.weight"),
                                        ("image_backbone", "backbone.stray.weight")])
def test_extra_keys_are_ignored_and_counted(tmp_path, slot, extra):
    """Like the official non-strict loader: keys the network does not read are ignored (and reported)."""
    state = synthetic_state(slot)
    state[extra] = torch.zeros(2)
    loaded = load_checkpoint(save(state, tmp_path / SLOTS[slot].filename), slot)
    assert loaded.ignored_keys == [extra]
    assert f"ignored 1 tensors" in loaded.info[0] and extra in loaded.info[0]
    assert len(loaded.state_dict) == len(load_manifest(slot))


def test_image_backbone_ignores_and_counts_other_bev_keys(tmp_path):
    state = synthetic_state("image_backbone")
    state["module.head.final_layers.0.weight"] = torch.zeros(3, 3)
    state["module._result_parser.smpl.v_template"] = torch.zeros(4)
    loaded = load_checkpoint(save(state, tmp_path / "trace_image_backbone.pkl"), "image_backbone")
    assert sorted(loaded.ignored_keys) == ["module._result_parser.smpl.v_template", "module.head.final_layers.0.weight"]
    assert "ignored 2 tensors" in loaded.info[0]
    assert len(loaded.state_dict) == 1752


def test_head_ignores_result_parser_smpl_buffers(tmp_path):
    state = synthetic_state("head")
    state["_result_parser.params_map_parser.smpl_model.shapedirs"] = torch.zeros(6890, 3, 10)
    loaded = load_checkpoint(save(state, tmp_path / "trace_head.pkl"), "head")
    assert loaded.ignored_keys == ["_result_parser.params_map_parser.smpl_model.shapedirs"]


def test_missing_coordmap_3d_is_rebuilt_exactly(tmp_path):
    from core.nn.head import make_coordmap_3d

    state = synthetic_state("head")
    del state["coordmap_3d"]
    loaded = load_checkpoint(save(state, tmp_path / "trace_head.pkl"), "head")
    assert loaded.rebuilt_keys == ["coordmap_3d"]
    assert torch.equal(loaded.state_dict["coordmap_3d"], make_coordmap_3d())
    grid = loaded.state_dict["coordmap_3d"]
    assert grid[0, 5, 3, 7].tolist() == [0.0, 3 / 128 * 2 - 1, 7 / 128 * 2 - 1]   # (0, y/128*2-1, x/128*2-1)
    assert "rebuilt 1 deterministic buffers" in " ".join(loaded.info)


@pytest.mark.parametrize("slot", sorted(SLOTS))
def test_missing_num_batches_tracked_is_rebuilt(tmp_path, slot):
    state = synthetic_state(slot)
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    assert counters, "every file has BatchNorm layers"
    for key in counters:
        del state[key]
    loaded = load_checkpoint(save(state, tmp_path / SLOTS[slot].filename), slot)
    assert sorted(loaded.rebuilt_keys) == sorted(counters)
    own = counters[0][len(SLOTS[slot].prefix):]
    assert loaded.state_dict[own].dtype == torch.int64 and int(loaded.state_dict[own]) == 0


def test_nested_model_state_dict_with_missing_buffers_and_extras(tmp_path):
    """The three tolerances together, as a training checkpoint of the official code could look."""
    state = synthetic_state("head")
    del state["coordmap_3d"]
    state["position_embeddings_unused.weight"] = torch.zeros(1)
    wrapped = {"model_state_dict": state, "optimizer_state_dict": {"lr": torch.tensor(1e-4)}}
    loaded = load_checkpoint(save(wrapped, tmp_path / "trace_head.pkl"), "head")
    assert loaded.rebuilt_keys == ["coordmap_3d"] and loaded.ignored_keys == ["position_embeddings_unused.weight"]
    assert len(loaded.state_dict) == 404


@pytest.mark.parametrize("key", ["deform_warper.weight", "temp_model.cell_list.0.convz.bias",
                                 "cnet.norm1.running_mean"])
def test_missing_learned_tensor_stays_an_error(tmp_path, key):
    slot = "motion_backbone" if key.startswith("cnet") else "head"
    key = ("module." + key) if slot == "motion_backbone" else key
    state = synthetic_state(slot)
    del state[key]
    with pytest.raises(CheckpointKeysError) as info:
        load_checkpoint(save(state, tmp_path / SLOTS[slot].filename), slot)
    assert info.value.missing == [key] and key in str(info.value)


def test_other_float_dtypes_are_converted(tmp_path):
    state = synthetic_state("head")
    state["det_head.1.bias"] = torch.zeros(7, dtype=torch.float64)
    state["deform_warper.weight"] = torch.zeros(32, 32, 3, 3, dtype=torch.float16)
    loaded = load_checkpoint(save(state, tmp_path / "trace_head.pkl"), "head")
    assert sorted(loaded.converted_keys) == ["deform_warper.weight", "det_head.1.bias"]
    assert loaded.state_dict["det_head.1.bias"].dtype == torch.float32


def test_wrong_shape_and_dtype_are_listed(tmp_path):
    state = synthetic_state("head")
    state["deform_warper.weight"] = torch.zeros(32, 32, 3, 4)
    state["det_head.1.bias"] = torch.zeros(7, dtype=torch.int32)
    path = save(state, tmp_path / "trace_head.pkl")
    with pytest.raises(CheckpointKeysError) as info:
        load_checkpoint(path, "head")
    message = str(info.value)
    assert "wrong shape or dtype (2)" in message
    assert "deform_warper.weight (32, 32, 3, 4) float32 (expected (32, 32, 3, 3) float32)" in message
    assert "det_head.1.bias (7,) int32 (expected (7,) float32)" in message


def test_mis_shaped_coordmap_is_an_error_not_rebuilt(tmp_path):
    state = synthetic_state("head")
    state["coordmap_3d"] = torch.zeros(1, 32, 128, 128, 3)
    with pytest.raises(CheckpointKeysError, match="coordmap_3d"):
        load_checkpoint(save(state, tmp_path / "trace_head.pkl"), "head")


def test_all_problems_come_in_one_error(tmp_path):
    state = synthetic_state("head")
    del state["temp_model.cell_list.0.convz.bias"]
    state["bogus"] = torch.zeros(1)
    state["param_head.1.0.bn1.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointKeysError) as info:
        load_checkpoint(save(state, tmp_path / "trace_head.pkl"), "head")
    error = info.value
    assert (len(error.missing), len(error.unexpected), len(error.mismatched)) == (1, 1, 1)
    assert "these alone would be ignored" in str(error)


def test_truncated_files(tmp_path):
    good = save(synthetic_state("motion_backbone"), tmp_path / "good.pth")
    data = good.read_bytes()
    for name, cut in (("half.pth", len(data) // 2), ("tail.pth", len(data) - 10), ("empty.pth", 0)):
        path = tmp_path / name
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointTruncatedError) as info:
            load_checkpoint(path, "motion_backbone")
        assert str(path) in str(info.value) and "trace_motion_backbone.pth" in str(info.value)
    legacy = tmp_path / "legacy.pth"
    torch.save({"a": torch.zeros(100)}, legacy, _use_new_zipfile_serialization=False)
    legacy.write_bytes(legacy.read_bytes()[:-40])
    with pytest.raises(CheckpointTruncatedError):
        load_checkpoint(legacy, "motion_backbone")


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickles_are_refused_without_running_code(tmp_path):
    marker = tmp_path / "PWNED"
    raw = tmp_path / "raw_pickle.pkl"
    raw.write_bytes(pickle.dumps({"conv1.weight": _RunsCode(marker)}))
    zipped = tmp_path / "torch_zip.pkl"
    torch.save({"conv1.weight": _RunsCode(marker)}, zipped)
    legacy = tmp_path / "legacy.pkl"
    torch.save({"conv1.weight": _RunsCode(marker)}, legacy, _use_new_zipfile_serialization=False)
    for path in (raw, zipped, legacy):
        with pytest.raises(CheckpointUnsafeError) as info:
            load_checkpoint(path, "image_backbone")
        message = str(info.value)
        assert str(path) in message and "run code" in message and "system" in message
        assert not marker.exists()
    assert not marker.exists()


def test_non_checkpoint_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("these are not weights\n")
    noise = tmp_path / "noise.bin"
    noise.write_bytes(bytes(range(7, 256)) * 4)
    pickled_noise = tmp_path / "pickled_noise.bin"
    pickled_noise.write_bytes(b"\x80\x02" + bytes(range(40, 250)))
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "hello")
    not_a_dict = save([torch.zeros(2)], tmp_path / "list.pt")
    for path in (text, noise, pickled_noise, archive, not_a_dict):
        with pytest.raises(CheckpointUnreadableError) as info:
            load_checkpoint(path, "head")
        assert not isinstance(info.value, CheckpointTruncatedError)
        assert str(path) in str(info.value) and "trace_head.pkl" in str(info.value)


def test_wrong_slot_names_the_file_it_looks_like(tmp_path):
    head_file = save(synthetic_state("head"), tmp_path / "trace_image_backbone.pkl")
    with pytest.raises(CheckpointWrongSlotError) as info:
        load_checkpoint(head_file, "image_backbone")
    assert "looks like trace_head.pkl" in str(info.value)
    assert info.value.looks_like == "head"
    raft_file = save(synthetic_state("motion_backbone"), tmp_path / "trace_head.pkl")
    with pytest.raises(CheckpointWrongSlotError, match="looks like trace_motion_backbone.pth"):
        load_checkpoint(raft_file, "head")


def test_missing_files(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="trace_head.pkl"):
        load_checkpoint(tmp_path / "trace_head.pkl", "head")
    save(synthetic_state("head"), tmp_path / "trace_head.pkl")
    with pytest.raises(CheckpointNotFoundError) as info:
        validate_weights_dir(tmp_path)
    assert "trace_image_backbone.pkl" in str(info.value) and "trace_motion_backbone.pth" in str(info.value)
    assert "trace_head.pkl" not in str(info.value).split("lacks")[1]
    assert isinstance(info.value, CheckpointError) and info.value.exit_code == ExitCode.WEIGHTS
