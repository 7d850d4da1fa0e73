"""HRNet-W32 image backbone as used by BEV / TRACE: uint8 512x512 RGB -> 32x128x128 features.

The layout (stem, Bottleneck stage 1, three multi-branch stages, transitions, fuse layers) mirrors the
official ``HigherResolutionNet`` so that the checkpoint keys (``module.backbone.`` + our keys) match.
Stage 4 keeps only the highest-resolution (1/4, 32-channel) output.
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import BasicBlock, Bottleneck, FrozenBatchNorm2d

__all__ = ["HRNetW32", "normalize_images"]

# (modules, branch channels) per stage; every branch holds 4 BasicBlocks.
_STAGES = ((1, (32, 64)), (4, (32, 64, 128)), (3, (32, 64, 128, 256)))
_BLOCKS_PER_BRANCH = 4


def normalize_images(images_u8: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[N,H,W,3] uint8 RGB (channels last) -> [N,3,H,W] in [-1, 1] as the official x/255*2-1."""
    x = images_u8.permute(0, 3, 1, 2).to(dtype)
    return (x / 255 * 2.0 - 1.0).contiguous()


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), FrozenBatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks followed by all-to-all fusion (sum, then ReLU)."""

    def __init__(self, channels: tuple[int, ...], multi_scale_output: bool = True):
        super().__init__()
        self.num_branches = len(channels)
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c, c) for _ in range(_BLOCKS_PER_BRANCH)]) for c in channels)
        self.fuse_layers = self._make_fuse_layers(channels, multi_scale_output)
        self.relu = nn.ReLU(inplace=False)

    @staticmethod
    def _make_fuse_layers(channels: tuple[int, ...], multi_scale_output: bool) -> nn.ModuleList:
        fuse = []
        for i in range(len(channels) if multi_scale_output else 1):
            row: list[nn.Module | None] = []
            for j in range(len(channels)):
                if j > i:   # lower resolution -> 1x1 conv, BN, nearest upsampling
                    row.append(nn.Sequential(
                        nn.Conv2d(channels[j], channels[i], 1, 1, 0, bias=False), FrozenBatchNorm2d(channels[i]),
                        nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                elif j == i:
                    row.append(None)
                else:       # higher resolution -> (i-j) stride-2 3x3 convs
                    steps = [_conv_bn(channels[j], channels[j], 3, 2, relu=True) for _ in range(i - j - 1)]
                    steps.append(_conv_bn(channels[j], channels[i], 3, 2, relu=False))
                    row.append(nn.Sequential(*steps))
            fuse.append(nn.ModuleList(row))
        return nn.ModuleList(fuse)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        fused = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[0] if i == 0 else row[0](xs[0])
            for j in range(1, self.num_branches):
                y = y + (xs[j] if i == j else row[j](xs[j]))
            fused.append(self.relu(y))
        return fused


class HRNetW32(nn.Module):
    """HRNet-W32 trunk returning the 32-channel 1/4-resolution branch of stage 4.

    forward(images_u8 [N,512,512,3] uint8 RGB) -> [N,32,128,128] in the module's dtype.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = FrozenBatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = FrozenBatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        down = nn.Sequential(nn.Conv2d(64, 256, 1, bias=False), FrozenBatchNorm2d(256))
        self.layer1 = nn.Sequential(Bottleneck(64, 64, downsample=down), *[Bottleneck(256, 64) for _ in range(3)])

        previous: tuple[int, ...] = (256,)
        for index, (num_modules, channels) in enumerate(_STAGES, start=1):
            setattr(self, f"transition{index}", self._make_transition(previous, channels))
            last_stage = index == len(_STAGES)
            modules = [HighResolutionModule(channels, multi_scale_output=not (last_stage and m == num_modules - 1))
                       for m in range(num_modules)]
            setattr(self, f"stage{index + 1}", nn.Sequential(*modules))
            previous = channels

    @staticmethod
    def _make_transition(previous: tuple[int, ...], current: tuple[int, ...]) -> nn.ModuleList:
        layers: list[nn.Module | None] = []
        for i, cout in enumerate(current):
            if i < len(previous):
                layers.append(None if previous[i] == cout else _conv_bn(previous[i], cout, 3, 1, relu=True))
            else:
                steps = []
                for j in range(i + 1 - len(previous)):
                    cin = previous[-1]
                    steps.append(_conv_bn(cin, cout if j == i - len(previous) else cin, 3, 2, relu=True))
                layers.append(nn.Sequential(*steps))
        return nn.ModuleList(layers)

    def forward(self, images_u8: torch.Tensor) -> torch.Tensor:
        x = normalize_images(images_u8, self.conv1.weight.dtype)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        branches = [x]
        for index in range(1, len(_STAGES) + 1):
            transition = getattr(self, f"transition{index}")
            stage = getattr(self, f"stage{index + 1}")
            # a transition either passes a branch through (None) or grows one from the lowest-resolution
            # branch (stage 1 has a single branch, so this also covers its 256->32 channel change)
            inputs = [branches[i] if layer is None else layer(branches[-1]) for i, layer in enumerate(transition)]
            branches = stage(inputs)
        return branches[0]
