"""Deformable convolution v1 (core.nn.deform_conv) against a naive per-sample Python loop.

The loop follows the CUDA kernel the official TRACE build uses: offset channel g*2K + 2k is dy and
g*2K + 2k + 1 is dx for tap k = i*kw + j; a sample is 0 unless -1 < y < H and -1 < x < W; each of the
four bilinear corners outside the map counts 0.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from core.nn.deform_conv import DeformConv2d, deform_conv2d


def naive_bilinear(plane: list[list[float]], y: float, x: float) -> float:
    height, width = len(plane), len(plane[0])
    if not (-1 < y < height and -1 < x < width):
        return 0.0
    y0, x0 = math.floor(y), math.floor(x)
    y1, x1 = y0 + 1, x0 + 1
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx

    def at(yy: int, xx: int) -> float:
        return plane[yy][xx] if 0 <= yy <= height - 1 and 0 <= xx <= width - 1 else 0.0

    return hy * hx * at(y0, x0) + hy * lx * at(y0, x1) + ly * hx * at(y1, x0) + ly * lx * at(y1, x1)


def naive_deform_conv(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, stride: int, padding: int,
                      dilation: int, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    cout, _, kh, kw = weight.shape
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    xs, offs, ws = x.tolist(), offset.tolist(), weight.tolist()
    out = [[[[0.0] * wo for _ in range(ho)] for _ in range(cout)] for _ in range(n)]
    per_group = c // groups
    for b in range(n):
        for ci in range(c):
            g = ci // per_group
            for oy in range(ho):
                for ox in range(wo):
                    for i in range(kh):
                        for j in range(kw):
                            k = i * kw + j
                            dy = offs[b][g * 2 * kh * kw + 2 * k][oy][ox]
                            dx = offs[b][g * 2 * kh * kw + 2 * k + 1][oy][ox]
                            y = oy * stride - padding + i * dilation + dy
                            xx = ox * stride - padding + j * dilation + dx
                            value = naive_bilinear(xs[b][ci], y, xx)
                            for co in range(cout):
                                out[b][co][oy][ox] += ws[co][ci][i][j] * value
    return torch.tensor(out, dtype=x.dtype)


SETTINGS = [
    # (N, C, H, W, Cout, kernel, stride, padding, dilation, groups)
    (1, 4, 5, 6, 3, (3, 3), 1, 1, 1, 1),
    (2, 4, 5, 5, 2, (3, 3), 1, 1, 1, 2),
    (1, 6, 7, 6, 2, (3, 3), 2, 1, 1, 3),
    (1, 4, 7, 7, 2, (3, 3), 1, 2, 2, 4),
    (1, 2, 4, 5, 3, (2, 3), 1, 0, 1, 1),
    (1, 8, 6, 6, 2, (3, 3), 1, 1, 1, 8),   # TRACE's layout: one channel group per 4 channels (here 1)
]


@pytest.mark.parametrize("setting", SETTINGS)
def test_matches_naive_loop_including_samples_outside_the_map(setting):
    n, c, h, w, cout, (kh, kw), stride, padding, dilation, groups = setting
    gen = torch.Generator().manual_seed(sum(setting[:5]) * 7 + groups)
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    weight = torch.randn(cout, c, kh, kw, generator=gen, dtype=torch.float64)
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    # large offsets: many samples land outside the map or straddle its border
    offset = 3.0 * torch.randn(n, groups * 2 * kh * kw, ho, wo, generator=gen, dtype=torch.float64)
    ours = deform_conv2d(x, offset, weight, stride=stride, padding=padding, dilation=dilation,
                         deformable_groups=groups)
    expected = naive_deform_conv(x, offset, weight, stride, padding, dilation, groups)
    assert ours.shape == expected.shape == (n, cout, ho, wo)
    # sanity: the draw really exercises the out-of-map rules (rows and columns)
    tap_rows = (torch.arange(kh) * dilation).repeat_interleave(kw).repeat(groups).to(torch.float64)
    tap_cols = (torch.arange(kw) * dilation).repeat(kh).repeat(groups).to(torch.float64)
    ys = offset[:, 0::2] + tap_rows[:, None, None] + (torch.arange(ho) * stride - padding)[:, None]
    xs = offset[:, 1::2] + tap_cols[:, None, None] + (torch.arange(wo) * stride - padding)[None, :]
    outside = (ys <= -1) | (ys >= h) | (xs <= -1) | (xs >= w)
    assert 0 < int(outside.sum()) < outside.numel()
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)


def test_border_band_rules_exactly():
    """Samples at y = -1 or y = H exactly give 0; just inside, the one corner inside the map counts."""
    x = torch.arange(1.0, 13.0, dtype=torch.float64).reshape(1, 1, 3, 4)
    weight = torch.zeros(1, 1, 1, 1, dtype=torch.float64)
    weight[0, 0, 0, 0] = 1.0
    cases = [(-1.0, 0.0, 0.0), (3.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 4.0, 0.0),
             (-0.5, 0.0, 0.5 * 1.0), (2.5, 3.0, 0.5 * 12.0), (-0.25, -0.25, 0.75 * 0.75 * 1.0)]
    for dy, dx, want in cases:
        offset = torch.zeros(1, 2, 3, 4, dtype=torch.float64)
        offset[0, 0] = dy - torch.arange(3.0, dtype=torch.float64)[:, None]          # absolute target row dy
        offset[0, 1] = dx - torch.arange(4.0, dtype=torch.float64)[None, :]          # absolute target col dx
        out = deform_conv2d(x, offset, weight)
        assert torch.allclose(out, torch.full_like(out, want)), (dy, dx, out)


def test_offset_channel_order_is_dy_then_dx():
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64)
    weight = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    shift_down = torch.zeros(1, 18, 6, 7, dtype=torch.float64)
    shift_down[:, 0::2] = 1.0                                  # every tap: dy = +1
    # tap i of output row r reads row r + i (no zero row above any more, two below)
    expected = F.conv2d(F.pad(x, (1, 1, 0, 2)), weight)
    torch.testing.assert_close(deform_conv2d(x, shift_down, weight, padding=1), expected)
    shift_right = torch.zeros(1, 18, 6, 7, dtype=torch.float64)
    shift_right[:, 1::2] = 1.0                                 # every tap: dx = +1
    expected = F.conv2d(F.pad(x, (0, 2, 1, 1)), weight)
    torch.testing.assert_close(deform_conv2d(x, shift_right, weight, padding=1), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_offsets_equal_plain_convolution(dtype):
    x = torch.randn(2, 8, 9, 10, dtype=dtype)
    layer = DeformConv2d(8, 5, 3, stride=1, padding=1, deformable_groups=4).to(dtype)
    offset = torch.zeros(2, 4 * 18, 9, 10, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(layer(x, offset), F.conv2d(x, layer.weight, padding=1), rtol=tol, atol=tol)
    assert set(layer.state_dict()) == {"weight"}


def test_chunked_frames_match_single_pass(monkeypatch):
    import core.nn.deform_conv as module
    x = torch.randn(5, 4, 6, 6, dtype=torch.float64)
    weight = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    offset = 2 * torch.randn(5, 2 * 18, 6, 6, dtype=torch.float64)
    whole = deform_conv2d(x, offset, weight, padding=1, deformable_groups=2)
    monkeypatch.setattr(module, "_COLUMN_BUDGET", 4 * 9 * 36 * 2)   # two frames per chunk
    chunked = deform_conv2d(x, offset, weight, padding=1, deformable_groups=2)
    assert torch.equal(whole, chunked)


def test_bad_shapes_are_reported():
    x = torch.randn(1, 4, 5, 5)
    with pytest.raises(ValueError, match="offset shape"):
        deform_conv2d(x, torch.zeros(1, 17, 5, 5), torch.randn(2, 4, 3, 3), padding=1)
    with pytest.raises(ValueError, match="deformable groups"):
        deform_conv2d(x, torch.zeros(1, 3 * 18, 5, 5), torch.randn(2, 4, 3, 3), padding=1, deformable_groups=3)
