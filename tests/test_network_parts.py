"""Fast unit tests of the network parts (no checkpoints, tiny tensors).

The end-to-end agreement with the official network is checked by tests/test_verify_maps.py.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core.nn.blocks import ClipBatchNorm2d, ConvGRU, FrozenBatchNorm2d
from core.nn.head import TraceHead, make_coordmap_3d
from core.nn.hrnet import HRNetW32, normalize_images
from core.nn.raft import RAFT, CorrelationPyramid, convex_upsample, flows_for_head, lookup_window
from core.nn.rotations import (angle_between_6d_degrees, rot6d_to_axis_angle, rot6d_to_rotmat,
                               rotation_6d_to_matrix_rows, rotmat_to_axis_angle)
from core.nn.trace_model import TraceModel, decode_params
from core.smoothing import OneEuroFilter
from core.tracking import TrajectoryMemory
from trace_format.rotations import axis_angle_to_matrix

MANIFESTS = Path(__file__).resolve().parents[1] / "core" / "manifests"


def axis_angle_to_rotmat(axis_angle: torch.Tensor) -> torch.Tensor:
    """[..., 3] -> [..., 3, 3]: the reference Rodrigues (trace_format, numpy) for the torch conversions under test."""
    return torch.from_numpy(axis_angle_to_matrix(axis_angle.numpy())).to(axis_angle.dtype)


def manifest(name: str) -> list[dict]:
    return json.loads((MANIFESTS / f"manifest_{name}.json").read_text())["entries"]


@pytest.mark.parametrize("module_factory,name", [(HRNetW32, "image_backbone"), (RAFT, "motion_backbone"),
                                                  (TraceHead, "head")])
def test_state_dict_keys_shapes_and_order_match_the_official_files(module_factory, name):
    entries = manifest(name)
    prefix = {"image_backbone": "module.backbone.", "motion_backbone": "module.", "head": ""}[name]
    ours = module_factory().state_dict()
    assert list(ours) == [e["key"][len(prefix):] for e in entries]
    for e in entries:
        assert tuple(ours[e["key"][len(prefix):]].shape) == tuple(e["shape"]), e["key"]


def test_coordmap_3d_is_the_official_grid():
    grid = make_coordmap_3d()
    assert grid.shape == (1, 64, 128, 128, 3)
    assert torch.all(grid[..., 0] == 0)
    assert grid[0, 5, 3, 7, 1] == 3 / 128 * 2 - 1 and grid[0, 5, 3, 7, 2] == 7 / 128 * 2 - 1


def test_clip_batchnorm_uses_batch_statistics_and_never_touches_running_stats():
    norm = ClipBatchNorm2d(3)
    norm.running_mean.fill_(5.0)
    norm.running_var.fill_(7.0)
    x = torch.randn(4, 3, 5, 5) * 3 + 2
    for mode in (norm.eval, norm.train):
        mode()
        y = norm(x)
        assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
        assert torch.allclose(y.var(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)
    assert torch.all(norm.running_mean == 5.0) and torch.all(norm.running_var == 7.0)
    assert int(norm.num_batches_tracked) == 0


def test_frozen_batchnorm_uses_running_stats_even_in_train_mode():
    norm = FrozenBatchNorm2d(2)
    norm.running_mean.copy_(torch.tensor([1.0, -1.0]))
    norm.running_var.copy_(torch.tensor([4.0, 9.0]))
    norm.train()
    x = torch.randn(3, 2, 4, 4)
    expected = (x - norm.running_mean[:, None, None]) / torch.sqrt(norm.running_var[:, None, None] + norm.eps)
    torch.testing.assert_close(norm(x), expected)


def test_image_normalisation_is_x_over_255_times_2_minus_1():
    images = torch.tensor([[[[0, 255, 51]]]], dtype=torch.uint8)       # [1,1,1,3]
    out = normalize_images(images, torch.float64)
    assert out.shape == (1, 3, 1, 1)
    assert out.flatten().tolist() == [-1.0, 1.0, 51 / 255 * 2 - 1]


def test_convgru_first_clip_convention_and_hidden_carry():
    torch.manual_seed(0)
    gru = ConvGRU(input_dim=3, hidden_dim=4, kernel_size=3, num_layers=2).double()
    seq = torch.randn(1, 5, 3, 6, 6, dtype=torch.float64)
    out, hidden = gru(seq, None)
    assert out.shape == (1, 5, 4, 6, 6) and len(hidden) == 2
    # first clip = zero hidden, first frame fed twice, first output dropped
    zeros = [torch.zeros(1, 4, 6, 6, dtype=torch.float64) for _ in range(2)]
    doubled, _ = gru(torch.cat([seq[:, :1], seq], 1), zeros)
    torch.testing.assert_close(out, doubled[:, 1:])
    # splitting a sequence into clips with the hidden state carried changes nothing
    first, h1 = gru(seq[:, :2], None)
    second, h2 = gru(seq[:, 2:], h1)
    torch.testing.assert_close(torch.cat([first, second], 1), out)
    torch.testing.assert_close(h2[1], hidden[1])
    torch.testing.assert_close(hidden[1], out[:, -1])


def test_correlation_lookup_window_is_transposed_like_the_official_code():
    window = lookup_window(4, torch.device("cpu"), torch.float64)
    assert window.shape == (9, 9, 2)
    assert window[0, 8].tolist() == [-4.0, 4.0] and window[8, 0].tolist() == [4.0, -4.0]
    # a correlation volume whose value encodes the sampled position: v(x, y) = 100 x + y
    height = width = 12
    pyramid = CorrelationPyramid.__new__(CorrelationPyramid)
    pyramid.radius = 4
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    pyramid.pyramid = [(100 * xs + ys).expand(height * width, 1, height, width)]
    coords = torch.zeros(1, 2, height, width, dtype=torch.float64)
    coords[0, 0], coords[0, 1] = xs, ys
    out = pyramid(coords)                                         # [1, 81, H, W]
    x0, y0 = 6, 5
    for a in range(9):
        for b in range(9):
            # channel a*9+b samples x + (a-4), y + (b-4): the first window index moves x
            assert out[0, a * 9 + b, y0, x0] == 100 * (x0 + a - 4) + (y0 + b - 4)


def test_convex_upsampling_and_head_resampling_of_a_constant_flow():
    flow = torch.stack([torch.full((4, 5), 2.0), torch.full((4, 5), -1.0)])[None].double()   # [1,2,4,5]
    mask = torch.randn(1, 576, 4, 5, dtype=torch.float64)
    up = convex_upsample(flow, mask)
    assert up.shape == (1, 2, 32, 40)
    interior = up[..., 8:-8, 8:-8]                # away from the zero-padded border
    torch.testing.assert_close(interior[:, 0], torch.full_like(interior[:, 0], 16.0))
    torch.testing.assert_close(interior[:, 1], torch.full_like(interior[:, 1], -8.0))
    full = torch.full((1, 2, 512, 512), 8.0, dtype=torch.float64)
    head = flows_for_head(full)
    assert head.shape == (1, 2, 128, 128) and torch.all(head == 1.0)


def test_raft_identical_frames_on_a_small_pair():
    """Shapes of both flows; with the same image twice, the flow of a zero-bias update block stays zero."""
    torch.manual_seed(0)
    raft = RAFT().eval()
    torch.nn.init.zeros_(raft.update_block.flow_head.conv2.weight)
    torch.nn.init.zeros_(raft.update_block.flow_head.conv2.bias)
    image = torch.randint(0, 255, (1, 3, 128, 128)).float()   # 1/8 map 16x16: 4 pyramid levels down to 2x2
    with torch.inference_mode():
        low, up = raft(image, image, iters=2)
    assert low.shape == (1, 2, 16, 16) and up.shape == (1, 2, 128, 128)
    assert torch.all(low == 0) and torch.all(up == 0)


def random_rotations(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen, dtype=torch.float64), dim=-1)
    angle = torch.rand(n, 1, generator=gen, dtype=torch.float64) * 3.0
    return axis * angle


def test_rot6d_column_convention_and_axis_angle_round_trip():
    aa = random_rotations(50)
    rotmat = axis_angle_to_rotmat(aa)
    six = rotmat[:, :, :2].reshape(-1, 6)          # the two first columns, row-major 3x2
    torch.testing.assert_close(rot6d_to_rotmat(six), rotmat)
    torch.testing.assert_close(rot6d_to_axis_angle(six), aa)
    torch.testing.assert_close(rotmat_to_axis_angle(rotmat), aa)
    rows = rotmat[:, :2, :].reshape(-1, 6)          # the rows convention reads the first two rows
    torch.testing.assert_close(rotation_6d_to_matrix_rows(rows), rotmat)
    # unnormalised inputs are orthonormalised
    r = rot6d_to_rotmat(torch.randn(10, 6, dtype=torch.float64))
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(10, 3, 3))
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(10, dtype=torch.float64))


def test_axis_angle_edge_cases_identity_and_half_turn():
    assert torch.equal(rotmat_to_axis_angle(torch.eye(3, dtype=torch.float64)[None]), torch.zeros(1, 3, dtype=torch.float64))
    half_turn = axis_angle_to_rotmat(torch.tensor([[0.0, 0.0, math.pi]], dtype=torch.float64))
    aa = rotmat_to_axis_angle(half_turn)
    assert torch.allclose(aa.abs(), torch.tensor([[0.0, 0.0, math.pi]], dtype=torch.float64), atol=1e-3)


def test_angle_between_uses_the_rows_convention():
    a = axis_angle_to_rotmat(torch.tensor([0.0, 0.0, 0.2], dtype=torch.float64))
    b = axis_angle_to_rotmat(torch.tensor([0.0, 0.0, 0.2 + math.radians(30)], dtype=torch.float64))
    degrees = angle_between_6d_degrees(a[:2, :].reshape(6), b[:2, :].reshape(6))
    assert abs(degrees - 30.0) < 1e-4


def test_decode_params_layout():
    n = 4
    aa = random_rotations(n * 22, seed=3).reshape(n, 22, 3)
    six = axis_angle_to_rotmat(aa)[..., :2].reshape(n, 22 * 6)
    params = torch.cat([torch.randn(n, 3, dtype=torch.float64), six,
                        torch.arange(21, dtype=torch.float64).expand(n, 21)], dim=1)
    decoded = decode_params(params)
    assert decoded["global_orient"].shape == (n, 3) and decoded["body_pose"].shape == (n, 23, 3)
    torch.testing.assert_close(decoded["global_orient"], aa[:, 0])
    torch.testing.assert_close(decoded["body_pose"][:, :21], aa[:, 1:])
    assert torch.all(decoded["body_pose"][:, 21:] == 0)
    assert decoded["betas"][0].tolist() == list(range(10))
    with pytest.raises(ValueError, match="156"):
        decode_params(torch.zeros(2, 155))


def test_motion_offsets_of_each_clips_first_frame_are_zero_even_for_negative_frame_ids():
    motion = torch.arange(3 * 3 * 2 * 2 * 2, dtype=torch.float64).reshape(3, 3, 2, 2, 2) + 1
    frame_ids = torch.tensor([0, 1, 2, -1, -3])
    cells = torch.tensor([[1, 1, 1], [0, 1, 0], [1, 0, 1], [0, 0, 0], [0, 0, 0]])
    out = TraceModel._motion_offsets(motion, frame_ids, cells)
    assert torch.all(out[0] == 0) and torch.all(out[4] == 0)          # frame 0 and -3 (== frame 0)
    torch.testing.assert_close(out[1], motion[1, :, 0, 1, 0])
    torch.testing.assert_close(out[3], motion[2, :, 0, 0, 0])          # -1 -> last frame


def six_d_rows(angles_deg: list[float]) -> torch.Tensor:
    """Global rotations about z as 6D vectors (both conventions coincide up to a transpose)."""
    aa = torch.tensor([[0.0, 0.0, math.radians(a)] for a in angles_deg], dtype=torch.float64)
    return axis_angle_to_rotmat(aa)[:, :2, :].reshape(-1, 6)


def test_pose_smoothing_follows_the_official_rules():
    """Jitter guard (>140 deg jumps keep the previous rotation), inherited frames reuse the memory."""
    settings = SimpleNamespace(pose_smooth_coef=1.0)
    length = 5
    grots = six_d_rows([0.0, 10.0, 170.0, 20.0, 30.0])                # frame 2 jumps by 160 deg
    pose_shape = torch.arange(length, dtype=torch.float64)[:, None].repeat(1, 147)
    params = torch.cat([torch.zeros(length, 6, dtype=torch.float64), grots, pose_shape], dim=1)   # [5,159]
    inherent = torch.tensor([[False, False, False, True, False]])
    memory = TrajectoryMemory()
    out = TraceModel._smooth_pose(params, [7], inherent, memory, settings)
    kept = out[:, 6:12]
    torch.testing.assert_close(kept[2], grots[1])                      # jitter: previous accepted rotation
    torch.testing.assert_close(kept[3], grots[1])                      # inherited: anchor rotation
    torch.testing.assert_close(kept[4], grots[4])                      # 20 deg from the anchor: accepted
    extra = memory.track(7).extra
    anchor, jitter_count = extra["grots"]
    torch.testing.assert_close(anchor, grots[4])
    assert jitter_count == 0 and isinstance(extra["pose_rots"], OneEuroFilter)
    # One-Euro over pose+shape with the official feedback of the filtered value
    reference = OneEuroFilter(1.0, 0.7, feed_back_output=True)
    expected = [reference.process(pose_shape[t].clone()) for t in (0, 1, 2)]
    torch.testing.assert_close(out[0, 12:], expected[0])
    torch.testing.assert_close(out[2, 12:], expected[2])
    torch.testing.assert_close(out[3, 12:], expected[2])               # inherited: last filtered value
    torch.testing.assert_close(out[4, 12:], reference.process(pose_shape[4].clone()))
    torch.testing.assert_close(out[:, :6], params[:, :6])              # the dropped 6-vector is untouched


def test_pose_smoothing_jitter_patience_and_unset_anchor():
    """After 11 rejected jumps in a row the rotation passes unchanged; a track first seen without a good
    frame never gets an anchor (official 'grots' = None for good)."""
    settings = SimpleNamespace(pose_smooth_coef=1.0)
    memory = TrajectoryMemory()
    length = 13
    grots = six_d_rows([0.0] + [175.0] * 12)
    params = torch.cat([torch.zeros(length, 6, dtype=torch.float64), grots,
                        torch.zeros(length, 147, dtype=torch.float64)], dim=1)
    out = TraceModel._smooth_pose(params, [1], torch.zeros(1, length, dtype=torch.bool), memory, settings)
    kept = out[:, 6:12]
    for t in range(1, 12):
        torch.testing.assert_close(kept[t], grots[0])                  # jitter count 1..11 (<= 10 before each)
    torch.testing.assert_close(kept[12], grots[12])                    # patience exhausted: passes through
    assert memory.track(1).extra["grots"][1] == 11
    all_inherited = torch.ones(1, 3, dtype=torch.bool)
    few = params[:3]
    out = TraceModel._smooth_pose(few, [2], all_inherited, memory, settings)
    assert memory.track(2).extra["grots"] is None
    torch.testing.assert_close(out, few)                               # nothing to copy from yet


def test_world_anchors_of_absent_tracks_official_vs_product():
    from core.nn.trace_model import carry_world_anchors

    a, b, c, d = (torch.full((1, 3), float(v)) for v in range(4))
    previous, current = {1: a, 2: b}, {2: c, 3: d}
    official = carry_world_anchors(previous, current, keep_absent=False)
    product = carry_world_anchors(previous, current, keep_absent=True)
    assert sorted(official) == [2, 3] and official[2] is c            # track 1 lost its anchor (official)
    assert sorted(product) == [1, 2, 3] and product[1] is a and product[2] is c
    assert carry_world_anchors(None, current, keep_absent=True) == current


def _randomize_frozen_batchnorms(module: torch.nn.Module) -> None:
    for norm in module.modules():
        if isinstance(norm, FrozenBatchNorm2d):
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2)
            norm.weight.data.uniform_(0.5, 1.5)
            norm.bias.data.uniform_(-0.5, 0.5)


@pytest.mark.parametrize("backbone", ["raft_cnet", "hrnet"])
def test_folding_frozen_batchnorm_keeps_the_backbone_outputs(backbone):
    from core.nn.fuse import fold_frozen_batchnorm
    from core.nn.raft import BasicEncoder
    torch.manual_seed(0)
    if backbone == "raft_cnet":   # stem + 8 residual-block norms + ... = all 15 BatchNorms of RAFT's context encoder
        network, expected_folds = BasicEncoder(output_dim=64, norm_fn="batch"), 15
        x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    else:
        network, expected_folds = HRNetW32(), 292
        x = torch.randint(0, 256, (1, 64, 64, 3), dtype=torch.uint8)
    network = network.double().eval()
    _randomize_frozen_batchnorms(network)
    with torch.no_grad():
        expected = network(x)
        assert fold_frozen_batchnorm(network) == expected_folds
        assert not any(isinstance(m, FrozenBatchNorm2d) for m in network.modules())
        torch.testing.assert_close(network(x), expected, rtol=1e-10, atol=1e-10)


def test_folding_refuses_a_frozen_batchnorm_it_cannot_fold():
    from core.nn.fuse import fold_frozen_batchnorm
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), FrozenBatchNorm2d(4))
    with pytest.raises(RuntimeError, match="not preceded by a foldable Conv2d"):
        fold_frozen_batchnorm(network)


def _nearest_forward_interpolation(flow: np.ndarray) -> np.ndarray:
    """Brute-force reference of RAFT's warm start for one [2,h,w] flow (loops, float64)."""
    _, height, width = flow.shape
    moved = [(x + flow[0, y, x], y + flow[1, y, x], flow[:, y, x]) for y in range(height) for x in range(width)]
    moved = [m for m in moved if 0 < m[0] < width and 0 < m[1] < height]
    out = np.zeros_like(flow)
    for y in range(height):
        for x in range(width):
            distances = [(mx - x) ** 2 + (my - y) ** 2 for mx, my, _ in moved]
            out[:, y, x] = moved[int(np.argmin(distances))][2]
    return out


def test_forward_interpolate_carries_each_flow_to_where_it_points():
    from core.nn.raft import forward_interpolate
    torch.manual_seed(0)
    flow = torch.randn(2, 2, 6, 7, dtype=torch.float64) * 2.5
    warm = forward_interpolate(flow)
    for b in range(2):
        np.testing.assert_array_equal(warm[b].numpy(), _nearest_forward_interpolation(flow[b].numpy()))
    uniform = torch.tensor([1.5, -0.5]).reshape(1, 2, 1, 1).expand(1, 2, 5, 5).clone()
    torch.testing.assert_close(forward_interpolate(uniform), uniform)       # a pan stays the same pan
    gone = torch.full((1, 2, 4, 4), 50.0)                                    # everything leaves the image
    assert torch.equal(forward_interpolate(gone), torch.zeros_like(gone))


class _RecordingRaft:
    """Stand-in motion backbone: records flow_init; call k returns the uniform low-res flow (k/4, 1/4)."""

    def __init__(self):
        self.calls = []

    def __call__(self, a, b, iters, autocast_dtype=None, flow_init=None):
        self.calls.append((len(a), iters, None if flow_init is None else flow_init.clone()))
        low = torch.full((len(a), 2, 2, 2), 0.25)
        low[:, 0] = 0.25 * len(self.calls)
        return low, torch.zeros(len(a), 2, 16, 16)


@pytest.mark.parametrize("warm_start", [False, True])
def test_raft_schedule_reaches_every_frame_pair(warm_start):
    from core.nn import RaftSchedule
    raft = _RecordingRaft()
    fake = SimpleNamespace(raft=RaftSchedule(iterations=7, warm_start=warm_start), motion_backbone=raft,
                           autocast_dtype=None, _batch_sizes=lambda: (4, 2))
    images = torch.zeros(3, 16, 16, 3, dtype=torch.uint8)
    previous = torch.full((2, 2, 2), 0.5)                  # the previous clip's last pair
    _, lowres = TraceModel.optical_flows(fake, images, images, previous)
    assert lowres.shape == (3, 2, 2, 2)
    if not warm_start:                                      # official: batched pairs, all from zero flow
        assert [(n, it, init) for n, it, init in raft.calls] == [(2, 7, None), (1, 7, None)]
        return
    assert [(n, it) for n, it, _ in raft.calls] == [(1, 7)] * 3   # one pair at a time
    inits = [init for _, _, init in raft.calls]
    assert torch.equal(inits[0], previous[None]) and torch.equal(inits[1], lowres[:1]) \
        and torch.equal(inits[2], lowres[1:2])            # uniform flows forward-interpolate to themselves


def test_raft_schedule_rejects_no_iterations():
    from core.nn import RaftSchedule
    assert RaftSchedule().official and not RaftSchedule(iterations=10).official
    assert RaftSchedule(warm_start=True).as_dict() == {"iterations": 20, "warm_start": True}
    with pytest.raises(ValueError, match="RAFT iterations"):
        RaftSchedule(iterations=0)


def test_raft_starts_from_the_given_flow():
    torch.manual_seed(0)
    raft = RAFT().eval()
    a, b = (torch.rand(1, 3, 128, 128) * 255 for _ in range(2))   # 16x16 at 1/8: 4 correlation levels
    with torch.no_grad():
        cold = raft(a, b, iters=2)
        from_zero = raft(a, b, iters=2, flow_init=torch.zeros(1, 2, 16, 16))
        warm = raft(a, b, iters=2, flow_init=torch.full((1, 2, 16, 16), 0.5))
    assert all(torch.isfinite(x).all() for x in cold + warm)
    assert all(torch.equal(x, y) for x, y in zip(cold, from_zero))
    assert warm[0].shape == (1, 2, 16, 16) and warm[1].shape == (1, 2, 128, 128)
    assert not torch.allclose(warm[0], cold[0])
