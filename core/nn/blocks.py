"""Building blocks shared by the HRNet backbone and the TRACE head.

Module and attribute names follow the official checkpoints (``conv1``, ``bn1``, ``downsample`` ...),
so ``state_dict`` keys line up with the manifests in ``core/manifests``.

Normalisation semantics matter for reproducing the official numbers:

* the image backbone and RAFT run in eval mode: their BatchNorm layers use the stored running
  statistics (:class:`FrozenBatchNorm2d`);
* the official program never puts the TRACE head into eval mode, so every BatchNorm of the head
  normalises with the statistics of the current clip batch. :class:`ClipBatchNorm1d/2d/3d` do
  exactly that, independent of ``.train()`` / ``.eval()``, and never touch the stored running stats
  (they are loaded only so that the official file's keys match).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FrozenBatchNorm2d", "ClipBatchNorm1d", "ClipBatchNorm2d", "ClipBatchNorm3d",
    "BasicBlock", "Bottleneck", "BasicBlock1D", "BasicBlock3D",
    "ConvGRUCell", "ConvGRU", "TemporalEncoder",
]


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that always normalises with the stored running statistics (inference only)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False, 0.0, self.eps)


class _ClipStatsMixin:
    """Normalise with the statistics of the batch at hand; running stats are neither used nor updated."""

    eps: float
    weight: torch.Tensor
    bias: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)  # type: ignore[attr-defined]
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class ClipBatchNorm1d(_ClipStatsMixin, nn.BatchNorm1d):
    pass


class ClipBatchNorm2d(_ClipStatsMixin, nn.BatchNorm2d):
    pass


class ClipBatchNorm3d(_ClipStatsMixin, nn.BatchNorm3d):
    """Clip-statistics BatchNorm3d; below float64 the statistics are accumulated in float64.

    The 3D refiners normalise millions of voxels per channel (n x 64 x 128 x 128); float32 batch
    statistics over that many values cost ~1e-3 relative accuracy of the refined camera map, while
    exact statistics keep the float32 network within ~1e-4 of the float64 reference. Float64 inputs use
    the plain kernel (bit-identical to the official float64 run).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float64:
            return super().forward(x)
        self._check_input_dim(x)
        stats = [torch.var_mean(x[:, c].double(), correction=0) for c in range(x.shape[1])]
        var = torch.stack([v for v, _ in stats]).to(torch.float32)
        mean = torch.stack([m for _, m in stats]).to(torch.float32)
        return F.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps)


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) with an optional projection on the shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 norm: type[nn.Module] = FrozenBatchNorm2d):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = norm(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1 -> 3x3 -> 1x1, expansion 4) as used by HRNet's first stage."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 norm: type[nn.Module] = FrozenBatchNorm2d):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = norm(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = norm(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class BasicBlock1D(nn.Module):
    """Two 3-tap 1D convs, each followed by BN and ReLU; no shortcut (the official block has none)."""

    def __init__(self, inplanes: int, planes: int, norm: type[nn.Module] = ClipBatchNorm1d):
        super().__init__()
        self.conv1 = nn.Conv1d(inplanes, planes, kernel_size=3, padding=1, bias=False)
        self.bn1 = norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv1d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = norm(planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)))


class BasicBlock3D(nn.Module):
    """Residual 3x3x3 block used to refine the 3D maps; no activation after the residual sum."""

    def __init__(self, inplanes: int, planes: int, norm: type[nn.Module] = ClipBatchNorm3d):
        super().__init__()
        self.conv1 = nn.Conv3d(inplanes, planes, kernel_size=3, padding=1, bias=False)
        self.bn1 = norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = norm(planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(_conv3d_by_frame(self.conv1, x)))
        return self.bn2(_conv3d_by_frame(self.conv2, out)) + x


def _conv3d_by_frame(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """Conv3d one batch element at a time where PyTorch falls back to its unfold-based kernel.

    Float64 on CPU has no oneDNN kernel: the fallback unfolds the whole batch at once (27 x C x D x H x W
    values per element: ~5 GiB for a clip of 8 frames of 64x128x128). Per element it is the same
    computation, so results do not change; other dtypes / devices run the batch in one call.
    """
    if x.dtype != torch.float64 or x.device.type != "cpu" or x.shape[0] == 1:
        return conv(x)
    return torch.cat([conv(x[i:i + 1]) for i in range(x.shape[0])])


class ConvGRUCell(nn.Module):
    """Convolutional GRU cell: gates z, r and candidate q from 3x3 convs over [h, x]."""

    def __init__(self, input_dim: int, hidden_dim: int, kernel_size: int = 3):
        super().__init__()
        pad = kernel_size // 2
        self.convz = nn.Conv2d(hidden_dim + input_dim, hidden_dim, kernel_size, padding=pad)
        self.convr = nn.Conv2d(hidden_dim + input_dim, hidden_dim, kernel_size, padding=pad)
        self.convq = nn.Conv2d(hidden_dim + input_dim, hidden_dim, kernel_size, padding=pad)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """h: [B,Ch,H,W], x: [B,Cin,H,W] -> new h [B,Ch,H,W]."""
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(self.convz(hx))
        r = torch.sigmoid(self.convr(hx))
        q = torch.tanh(self.convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q


class ConvGRU(nn.Module):
    """Stacked ConvGRU whose hidden state is carried from one clip to the next.

    Official start-of-stream convention: with no hidden state, the hidden state is zero and the first
    frame is fed twice; the output of that extra step is dropped.
    """

    def __init__(self, input_dim: int, hidden_dim: int, kernel_size: int = 3, num_layers: int = 2):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.cell_list = nn.ModuleList(
            ConvGRUCell(input_dim if i == 0 else hidden_dim, hidden_dim, kernel_size) for i in range(num_layers))

    def forward(self, sequence: torch.Tensor, hidden: list[torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """sequence: [B,T,C,H,W]; hidden: per-layer [B,Ch,H,W] or None.

        Returns (last-layer outputs [B,T,Ch,H,W], new per-layer hidden states).
        """
        drop_first = hidden is None
        if drop_first:
            b, _, _, h, w = sequence.shape
            hidden = [sequence.new_zeros(b, self.hidden_dim, h, w) for _ in self.cell_list]
            sequence = torch.cat([sequence[:, :1], sequence], dim=1)
        new_hidden = []
        layer_input = sequence
        for cell, h in zip(self.cell_list, hidden):
            outputs = []
            for t in range(layer_input.shape[1]):
                h = cell(h, layer_input[:, t])
                outputs.append(h)
            new_hidden.append(h)
            layer_input = torch.stack(outputs, dim=1)
        if drop_first:
            layer_input = layer_input[:, 1:]
        return layer_input, new_hidden


class TemporalEncoder(nn.Module):
    """Per-row MLP regressor (the official 'TemporalEncoder' without its optional GRU).

    ``regressor`` = Linear-ReLU-Linear-ReLU, followed by one Linear per output group; the groups'
    outputs are concatenated.
    """

    def __init__(self, input_size: int, out_sizes: list[int], hidden_size: int = 256):
        super().__init__()
        self.regressor = nn.Sequential(
            nn.Linear(input_size, hidden_size), nn.ReLU(inplace=True),
            nn.Linear(hidden_size, hidden_size), nn.ReLU(inplace=True))
        self.out_layers = nn.ModuleList(nn.Linear(hidden_size, size) for size in out_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., F] -> [..., sum(out_sizes)]."""
        lead = x.shape[:-1]
        y = self.regressor(x.reshape(-1, x.shape[-1]))
        y = torch.cat([layer(y) for layer in self.out_layers], dim=-1)
        return y.reshape(*lead, -1)
