"""Deformable convolution v1 (Dai et al. 2017) in plain, vectorised PyTorch.

Semantics follow the CUDA kernel the official TRACE build compiles (the mmdetection-v1 "DeformConv"):

* offsets ``[N, G*2*kh*kw, Ho, Wo]``; for deformable group g and tap k = i*kw + j (i = kernel row,
  j = kernel column) channel ``g*2*K + 2k`` is the row offset dy and ``g*2*K + 2k + 1`` the column
  offset dx;
* the tap samples (ho*stride - pad + i*dilation + dy, wo*stride - pad + j*dilation + dx) bilinearly;
* a sample is 0 unless -1 < y < H and -1 < x < W; inside that band each of the four bilinear corners
  that falls outside the map contributes 0.

All taps and groups are gathered at once (one ``torch.gather`` per bilinear corner); frames are
processed in chunks to bound the size of the column buffer. No CUDA extension, any float dtype.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["deform_conv2d", "DeformConv2d"]

# upper bound on elements of the sampled column buffer [chunk, C, K, Ho*Wo] per chunk
_COLUMN_BUDGET = 16 * 1024 * 1024


def _sample_columns(x: torch.Tensor, offset: torch.Tensor, kernel: tuple[int, int], stride: int, padding: int,
                    dilation: int, groups: int, out_hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear samples for every (channel, tap, output pixel): x [N,C,H,W] -> [N, C*K, Ho*Wo]."""
    n, c, h, w = x.shape
    kh, kw = kernel
    k = kh * kw
    ho, wo = out_hw
    dtype, device = x.dtype, x.device

    off = offset.reshape(n, groups, k, 2, ho, wo).to(dtype)
    tap_row = (torch.arange(kh, device=device, dtype=dtype) * dilation).repeat_interleave(kw)      # [K]
    tap_col = (torch.arange(kw, device=device, dtype=dtype) * dilation).repeat(kh)                 # [K]
    out_row = torch.arange(ho, device=device, dtype=dtype) * stride - padding                       # [Ho]
    out_col = torch.arange(wo, device=device, dtype=dtype) * stride - padding                       # [Wo]
    base_y = tap_row[:, None, None] + out_row[None, :, None]                                        # [K,Ho,1]
    base_x = tap_col[:, None, None] + out_col[None, None, :]                                        # [K,1,Wo]
    y = base_y + off[:, :, :, 0]                                                                    # [N,G,K,Ho,Wo]
    xx = base_x + off[:, :, :, 1]
    inside = (y > -1) & (y < h) & (xx > -1) & (xx < w)

    y0 = torch.floor(y)
    x0 = torch.floor(xx)
    ly = y - y0
    lx = xx - x0
    hy = 1 - ly
    hx = 1 - lx
    y0 = y0.to(torch.long)
    x0 = x0.to(torch.long)

    cg = c // groups
    source = x.reshape(n, groups, cg, h * w)
    columns = None
    corners = ((0, 0, hy * hx), (0, 1, hy * lx), (1, 0, ly * hx), (1, 1, ly * lx))
    for dy, dx, weight in corners:
        yc = y0 + dy
        xc = x0 + dx
        valid = inside & (yc >= 0) & (yc <= h - 1) & (xc >= 0) & (xc <= w - 1)
        index = (yc.clamp(0, h - 1) * w + xc.clamp(0, w - 1)).reshape(n, groups, 1, k * ho * wo)
        values = torch.gather(source, 3, index.expand(n, groups, cg, k * ho * wo))                  # [N,G,Cg,K*Ho*Wo]
        weight = torch.where(valid, weight, torch.zeros((), dtype=dtype, device=device)).reshape(n, groups, 1, k * ho * wo)
        term = weight * values
        columns = term if columns is None else columns + term
    return columns.reshape(n, c * k, ho * wo)


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  stride: int = 1, padding: int = 0, dilation: int = 1, deformable_groups: int = 1) -> torch.Tensor:
    """DCNv1: x [N,C,H,W], offset [N, G*2*kh*kw, Ho, Wo], weight [Cout,C,kh,kw] -> [N,Cout,Ho,Wo]."""
    n, c, h, w = x.shape
    cout, cin, kh, kw = weight.shape
    if cin != c:
        raise ValueError(f"weight expects {cin} input channels, input has {c}")
    if c % deformable_groups:
        raise ValueError(f"{c} channels cannot be split into {deformable_groups} deformable groups")
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    expected = (n, deformable_groups * 2 * kh * kw, ho, wo)
    if tuple(offset.shape) != expected:
        raise ValueError(f"offset shape {tuple(offset.shape)} != expected {expected}")

    flat_weight = weight.reshape(cout, cin * kh * kw).to(x.dtype)
    per_frame = c * kh * kw * ho * wo
    chunk = max(1, min(n, _COLUMN_BUDGET // max(per_frame, 1)))
    outputs = []
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        columns = _sample_columns(x[start:stop], offset[start:stop], (kh, kw), stride, padding, dilation,
                                  deformable_groups, (ho, wo))
        outputs.append(torch.matmul(flat_weight, columns))                                          # [n',Cout,Ho*Wo]
    out = torch.cat(outputs, dim=0).reshape(n, cout, ho, wo)
    if bias is not None:
        out = out + bias.to(out.dtype).reshape(1, cout, 1, 1)
    return out


class DeformConv2d(nn.Module):
    """Deformable conv layer holding only ``weight`` (and an optional bias), like the official DeformConv."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int = 0, dilation: int = 1, deformable_groups: int = 1, bias: bool = False):
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.deformable_groups = deformable_groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kh, kw))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.uniform_(self.weight, -1 / math.sqrt(in_channels * kh * kw), 1 / math.sqrt(in_channels * kh * kw))

    def forward(self, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation,
                             self.deformable_groups)
