"""Inference-time rewrites of the backbones that keep their outputs: BatchNorm folding, channels_last.

The image backbone (HRNet) and RAFT's context encoder normalise with *stored* running statistics
(:class:`FrozenBatchNorm2d`), so each of those BatchNorms is an affine map per channel and can be folded
into the convolution in front of it::

    bn(conv(x)) = conv'(x)   with  w' = w * g / sqrt(v + eps),  b' = (b - m) * g / sqrt(v + eps) + beta

The fold is computed in float64 and stored in the module's dtype, so a float64 model is folded to float64
rounding and a float32 model gets the correctly rounded float32 weights. The head's BatchNorms use the
statistics of each clip (:class:`ClipBatchNorm2d` etc.) and are never folded; neither are RAFT's
InstanceNorms (``fnet``): both depend on the data.

After folding the ``state_dict`` no longer has the official layout (BatchNorm keys are gone, folded convs
gain biases): fold only after loading a checkpoint (``TraceModel.from_weights`` does it).
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import FrozenBatchNorm2d

__all__ = ["fold_frozen_batchnorm", "FOLDABLE_PAIRS"]

# (conv attribute, norm attribute) pairs of the blocks in core.nn; Sequential children are matched in order
FOLDABLE_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"), ("conv1", "norm1"), ("conv2", "norm2"))


@torch.no_grad()
def _fold_into(conv: nn.Conv2d, norm: FrozenBatchNorm2d) -> None:
    dtype = conv.weight.dtype
    scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    folded_weight = conv.weight.double() * scale.reshape(-1, 1, 1, 1)
    folded_bias = (bias - norm.running_mean.double()) * scale + norm.bias.double()
    conv.weight = nn.Parameter(folded_weight.to(dtype), requires_grad=False)
    conv.bias = nn.Parameter(folded_bias.to(dtype), requires_grad=False)


def _foldable(conv: object, norm: object) -> bool:
    return (isinstance(conv, nn.Conv2d) and type(norm) is FrozenBatchNorm2d
            and conv.out_channels == norm.num_features and conv.groups == 1)


def fold_frozen_batchnorm(root: nn.Module) -> int:
    """Fold every FrozenBatchNorm2d that directly follows a Conv2d into it; returns how many were folded.

    The folded norms are replaced by ``nn.Identity`` (a norm registered twice, like RAFT's ``norm3`` /
    ``downsample.1``, is replaced under both names). A FrozenBatchNorm2d left unfolded raises: every one in
    the backbones follows a convolution, so a leftover means the layout changed and would silently cost speed.
    """
    folded: dict[int, nn.Module] = {}
    for module in list(root.modules()):
        if isinstance(module, nn.Sequential):
            children = list(module._modules.items())
            for (_, conv), (norm_name, norm) in zip(children, children[1:]):
                if _foldable(conv, norm) and id(norm) not in folded:
                    _fold_into(conv, norm)
                    folded[id(norm)] = norm
        for conv_name, norm_name in FOLDABLE_PAIRS:
            conv, norm = getattr(module, conv_name, None), getattr(module, norm_name, None)
            if _foldable(conv, norm) and id(norm) not in folded:
                _fold_into(conv, norm)
                folded[id(norm)] = norm
    for module in list(root.modules()):
        for name, child in list(module._modules.items()):
            if child is not None and id(child) in folded:
                module._modules[name] = nn.Identity()
    leftover = [name for name, m in root.named_modules() if type(m) is FrozenBatchNorm2d]
    if leftover:
        raise RuntimeError(f"FrozenBatchNorm2d not preceded by a foldable Conv2d: {leftover[:5]}")
    return len(folded)
