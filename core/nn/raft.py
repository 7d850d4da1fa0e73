"""RAFT optical flow (standard "things" configuration) as TRACE's motion backbone.

Layout and parameter names follow the official RAFT so the checkpoint (``module.`` + our keys) loads
unchanged: feature encoder ``fnet`` (InstanceNorm without affine), context encoder ``cnet``
(BatchNorm, frozen), update block with a separable ConvGRU, flow head and convex-upsampling mask.

Reproduced quirks of the official code:

* correlation lookup window: the official code builds its (2r+1)^2 delta grid with
  ``meshgrid(dy, dx)`` and adds the pair to the (x, y) coordinates, so window entry (a, b) samples
  x + (a - r), y + (b - r) -- a transposed window compared with the naive reading. Weights were
  trained with it, so we keep it (see :func:`lookup_window`).
* test mode: 20 iterations, the low-resolution flow ``coords1 - coords0`` and the convex-upsampled
  flow of the last iteration are returned.

The official GPU path runs the encoders and the update block under fp16 autocast; ``autocast_dtype``
reproduces that on CUDA when asked (the reference numbers are pure float64).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import FrozenBatchNorm2d

__all__ = ["RAFT", "lookup_window", "flows_for_head", "forward_interpolate"]

CORR_LEVELS = 4
CORR_RADIUS = 4
HIDDEN_DIM = 128
CONTEXT_DIM = 128


class ResidualBlock(nn.Module):
    """Two 3x3 convs with norm + ReLU; strided blocks project the shortcut (conv + norm3)."""

    def __init__(self, in_planes: int, planes: int, norm_fn: str, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.norm1 = _make_norm(norm_fn, planes)
        self.norm2 = _make_norm(norm_fn, planes)
        if stride != 1:
            self.norm3 = _make_norm(norm_fn, planes)
            # the same norm module is registered twice (norm3 and downsample.1), as in the official file
            self.downsample: nn.Module | None = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride), self.norm3)
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu(x + y)


def _make_norm(norm_fn: str, channels: int) -> nn.Module:
    if norm_fn == "instance":
        return nn.InstanceNorm2d(channels)          # affine=False, no running stats: no checkpoint keys
    if norm_fn == "batch":
        return FrozenBatchNorm2d(channels)
    raise ValueError(f"unsupported norm {norm_fn!r}")


class BasicEncoder(nn.Module):
    """RAFT feature / context encoder: 7x7 stride-2 stem, three residual stages, 1x1 output conv (1/8 res)."""

    def __init__(self, output_dim: int, norm_fn: str):
        super().__init__()
        self.norm1 = _make_norm(norm_fn, 64)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.relu1 = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(ResidualBlock(64, 64, norm_fn, 1), ResidualBlock(64, 64, norm_fn, 1))
        self.layer2 = nn.Sequential(ResidualBlock(64, 96, norm_fn, 2), ResidualBlock(96, 96, norm_fn, 1))
        self.layer3 = nn.Sequential(ResidualBlock(96, 128, norm_fn, 2), ResidualBlock(128, 128, norm_fn, 1))
        self.conv2 = nn.Conv2d(128, output_dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.norm1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.conv2(x)


class FlowHead(nn.Module):
    def __init__(self, input_dim: int = 128, hidden_dim: int = 256):
        super().__init__()
        self.conv1 = nn.Conv2d(input_dim, hidden_dim, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_dim, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(x)))


class SepConvGRU(nn.Module):
    """GRU with a horizontal (1x5) then a vertical (5x1) pass."""

    def __init__(self, hidden_dim: int = 128, input_dim: int = 256):
        super().__init__()
        cin = hidden_dim + input_dim
        self.convz1 = nn.Conv2d(cin, hidden_dim, (1, 5), padding=(0, 2))
        self.convr1 = nn.Conv2d(cin, hidden_dim, (1, 5), padding=(0, 2))
        self.convq1 = nn.Conv2d(cin, hidden_dim, (1, 5), padding=(0, 2))
        self.convz2 = nn.Conv2d(cin, hidden_dim, (5, 1), padding=(2, 0))
        self.convr2 = nn.Conv2d(cin, hidden_dim, (5, 1), padding=(2, 0))
        self.convq2 = nn.Conv2d(cin, hidden_dim, (5, 1), padding=(2, 0))

    @staticmethod
    def _step(h: torch.Tensor, x: torch.Tensor, convz: nn.Conv2d, convr: nn.Conv2d, convq: nn.Conv2d) -> torch.Tensor:
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(convz(hx))
        r = torch.sigmoid(convr(hx))
        q = torch.tanh(convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = self._step(h, x, self.convz1, self.convr1, self.convq1)
        return self._step(h, x, self.convz2, self.convr2, self.convq2)


class BasicMotionEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        cor_planes = CORR_LEVELS * (2 * CORR_RADIUS + 1) ** 2
        self.convc1 = nn.Conv2d(cor_planes, 256, 1, padding=0)
        self.convc2 = nn.Conv2d(256, 192, 3, padding=1)
        self.convf1 = nn.Conv2d(2, 128, 7, padding=3)
        self.convf2 = nn.Conv2d(128, 64, 3, padding=1)
        self.conv = nn.Conv2d(64 + 192, 128 - 2, 3, padding=1)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        cor = F.relu(self.convc2(F.relu(self.convc1(corr))))
        flo = F.relu(self.convf2(F.relu(self.convf1(flow))))
        out = F.relu(self.conv(torch.cat([cor, flo], dim=1)))
        return torch.cat([out, flow], dim=1)


class BasicUpdateBlock(nn.Module):
    def __init__(self, hidden_dim: int = HIDDEN_DIM):
        super().__init__()
        self.encoder = BasicMotionEncoder()
        self.gru = SepConvGRU(hidden_dim=hidden_dim, input_dim=128 + hidden_dim)
        self.flow_head = FlowHead(hidden_dim, hidden_dim=256)
        self.mask = nn.Sequential(
            nn.Conv2d(128, 256, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(256, 64 * 9, 1, padding=0))

    def forward(self, net: torch.Tensor, inp: torch.Tensor, corr: torch.Tensor, flow: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (new hidden state, flow update). The upsampling mask is computed separately."""
        motion_features = self.encoder(flow, corr)
        net = self.gru(net, torch.cat([inp, motion_features], dim=1))
        return net, self.flow_head(net)

    def upsampling_mask(self, net: torch.Tensor) -> torch.Tensor:
        """[B,128,h,w] -> [B,576,h,w]; scaled by 0.25 as in the official code."""
        return 0.25 * self.mask(net)


def lookup_window(radius: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Offsets added to (x, y) for the (2r+1)^2 correlation taps, official ordering.

    Returns [2r+1, 2r+1, 2]: entry (a, b) = (a - r, b - r), i.e. the first index moves x.
    """
    steps = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    first, second = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([first, second], dim=-1)


def _pixel_grid(batch: int, height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[B,2,H,W] with channel 0 = x (column), channel 1 = y (row)."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                            torch.arange(width, device=device, dtype=dtype), indexing="ij")
    return torch.stack([xs, ys], dim=0)[None].expand(batch, 2, height, width).contiguous()


class CorrelationPyramid:
    """All-pairs correlation at 1/8 resolution with 3 average-pooled coarser levels."""

    def __init__(self, fmap1: torch.Tensor, fmap2: torch.Tensor, levels: int = CORR_LEVELS, radius: int = CORR_RADIUS):
        batch, dim, height, width = fmap1.shape
        self.radius = radius
        corr = torch.matmul(fmap1.reshape(batch, dim, height * width).transpose(1, 2),
                            fmap2.reshape(batch, dim, height * width))
        corr = corr / torch.sqrt(torch.tensor(float(dim), dtype=corr.dtype))
        corr = corr.reshape(batch * height * width, 1, height, width)   # [B*H*W,1,H,W]
        self.pyramid = [corr]
        for _ in range(levels - 1):
            corr = F.avg_pool2d(corr, 2, stride=2)
            self.pyramid.append(corr)

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        """coords [B,2,H,W] (x, y) -> sampled correlations [B, levels*(2r+1)^2, H, W]."""
        batch, _, height, width = coords.shape
        centroids = coords.permute(0, 2, 3, 1).reshape(batch * height * width, 1, 1, 2)
        window = lookup_window(self.radius, coords.device, coords.dtype)[None]   # [1,2r+1,2r+1,2]
        sampled = []
        for level, corr in enumerate(self.pyramid):
            points = centroids / 2 ** level + window                             # [BHW,2r+1,2r+1,2]
            h2, w2 = corr.shape[-2:]
            grid = torch.cat([2 * points[..., :1] / (w2 - 1) - 1, 2 * points[..., 1:] / (h2 - 1) - 1], dim=-1)
            values = F.grid_sample(corr, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
            sampled.append(values.reshape(batch, height, width, -1))
        return torch.cat(sampled, dim=-1).permute(0, 3, 1, 2).contiguous()


def convex_upsample(flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """flow [B,2,h,w] (1/8-res pixels), mask [B,576,h,w] -> [B,2,8h,8w] full-res flow."""
    batch, _, height, width = flow.shape
    mask = torch.softmax(mask.view(batch, 1, 9, 8, 8, height, width), dim=2)
    neighbours = F.unfold(8 * flow, [3, 3], padding=1).view(batch, 2, 9, 1, 1, height, width)
    up = torch.sum(mask * neighbours, dim=2)                                   # [B,2,8,8,h,w]
    return up.permute(0, 1, 4, 2, 5, 3).reshape(batch, 2, 8 * height, 8 * width)


class RAFT(nn.Module):
    """forward(image1, image2 [B,3,H,W] float in 0..255) -> (flow_lowres [B,2,H/8,W/8], flow_up [B,2,H,W])."""

    def __init__(self):
        super().__init__()
        self.fnet = BasicEncoder(output_dim=256, norm_fn="instance")
        self.cnet = BasicEncoder(output_dim=HIDDEN_DIM + CONTEXT_DIM, norm_fn="batch")
        self.update_block = BasicUpdateBlock(hidden_dim=HIDDEN_DIM)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, iters: int = 20,
                autocast_dtype: torch.dtype | None = None, flow_init: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """flow_init [B,2,H/8,W/8] (optional): start the iterations from this low-resolution flow
        (RAFT's warm start, see :func:`forward_interpolate`) instead of zero."""
        dtype = self.fnet.conv1.weight.dtype
        image1 = (2 * (image1.to(dtype) / 255.0) - 1.0).contiguous()
        image2 = (2 * (image2.to(dtype) / 255.0) - 1.0).contiguous()
        batch = image1.shape[0]

        def mixed():
            if autocast_dtype is None:
                return contextlib.nullcontext()
            return torch.autocast(device_type=image1.device.type, dtype=autocast_dtype)

        with mixed():
            fmaps = self.fnet(torch.cat([image1, image2], dim=0))
        fmap1, fmap2 = fmaps[:batch].to(dtype), fmaps[batch:].to(dtype)
        corr_fn = CorrelationPyramid(fmap1, fmap2)

        with mixed():
            context = self.cnet(image1)
            net, inp = torch.split(context, [HIDDEN_DIM, CONTEXT_DIM], dim=1)
            net = torch.tanh(net)
            inp = torch.relu(inp)

        _, _, h8, w8 = fmap1.shape
        coords0 = _pixel_grid(batch, h8, w8, image1.device, dtype)
        coords1 = coords0.clone() if flow_init is None else coords0 + flow_init.to(dtype)
        for _ in range(iters):
            corr = corr_fn(coords1)
            flow = coords1 - coords0
            with mixed():
                net, delta_flow = self.update_block(net, inp, corr, flow)
            coords1 = coords1 + delta_flow.to(dtype)
        with mixed():
            up_mask = self.update_block.upsampling_mask(net)
        flow_lowres = coords1 - coords0
        flow_up = convex_upsample(flow_lowres, up_mask.to(dtype))
        return flow_lowres, flow_up


def forward_interpolate(flow: torch.Tensor) -> torch.Tensor:
    """RAFT's warm start for the next frame pair: [B,2,h,w] low-resolution flow -> [B,2,h,w].

    Every pixel is moved along its flow; pixels that land outside the image (or on its first row /
    column, as in RAFT's own rule) are dropped, and each grid pixel takes the flow of the nearest moved
    pixel (nearest-neighbour scattered interpolation, like RAFT's ``scipy.interpolate.griddata(...,
    'nearest')``; ties may resolve differently). No moved pixel left: zero flow.
    """
    batch, _, height, width = flow.shape
    grid = _pixel_grid(1, height, width, flow.device, flow.dtype)[0].reshape(2, -1).T   # [hw,2] (x, y)
    result = torch.zeros_like(flow)
    for b in range(batch):
        vectors = flow[b].reshape(2, -1).T                                              # [hw,2]
        moved = grid + vectors
        valid = (moved[:, 0] > 0) & (moved[:, 0] < width) & (moved[:, 1] > 0) & (moved[:, 1] < height)
        if not bool(valid.any()):
            continue
        nearest = torch.cdist(grid, moved[valid], compute_mode="donot_use_mm_for_euclid_dist").argmin(dim=1)
        result[b] = vectors[valid][nearest].T.reshape(2, height, width)
    return result


def flows_for_head(flow_up: torch.Tensor, size: int = 128) -> torch.Tensor:
    """Official resampling of the 512x512 flow to the head's 128 grid: bilinear (align_corners) / 8.

    [B,2,512,512] in input pixels -> [B,2,128,128] in 128-map pixels (dx, dy).
    """
    return F.interpolate(flow_up, size=(size, size), mode="bilinear", align_corners=True) / 8
