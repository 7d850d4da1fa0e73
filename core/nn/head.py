"""The TRACE head: temporal feature propagation, the 2D/3D maps, and the per-track regressors.

Attribute names (hence ``state_dict`` keys) are those of the official ``TRACE_head`` so the released
``trace_head.pkl`` loads unchanged. All BatchNorm layers of the head normalise with the statistics of
the clip being processed (the official program never switches the head to eval mode); see
:mod:`core.nn.blocks`.

Map conventions (n = frames of the clip, 128 = map size, 64 = depth bins):

* ``center_maps_fv``  [n,1,128,128]   front-view centre heatmap
* ``center_maps_3d``  [n,64,128,128]  (z, y, x) = front view (y, x) x bird's-eye view (z, x), refined in 3D
* ``cam_maps_3d``     [n,3,64,128,128] (scale, y, x) camera around the fixed ``coordmap_3d`` grid
* ``motion_map_3d``   [n,3,64,128,128] 3D motion offsets (front view + bird's-eye view, refined)
* ``mesh_feature_maps`` [n,128,128,128] features sampled per person for the SMPL regressors
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .blocks import (BasicBlock, BasicBlock1D, BasicBlock3D, ClipBatchNorm2d, ConvGRU, TemporalEncoder)
from .deform_conv import DeformConv2d

__all__ = ["TraceHead", "HeadMaps", "TemporalFeatures", "make_coordmap_3d"]

MAP_SIZE = 128
DEPTH_BINS = 64
FEATURE_CHANNELS = 32       # image backbone output
FLOW_CHANNELS = 2
MESH_FEATURE_DIM = 128
HEAD_CHANNELS = 128
BEV_PRE_CHANNELS = MAP_SIZE // 8
BEV_INTER_CHANNELS = 512
DEFORM_GROUPS = 8
PARAM_DIMS = {"global_rot": (6, 6), "pose": 21 * 6, "shape": 21}


def make_coordmap_3d(size: int = MAP_SIZE, depth: int = DEPTH_BINS) -> torch.Tensor:
    """[1, depth, size, size, 3]: channel 0 = 0, 1 = y/size*2-1, 2 = x/size*2-1 (the official fixed grid)."""
    ramp = torch.arange(size, dtype=torch.float32) / size * 2 - 1
    grid = torch.zeros(1, depth, size, size, 3)
    grid[..., 1] = ramp.reshape(1, 1, size, 1)
    grid[..., 2] = ramp.reshape(1, 1, 1, size)
    return grid


def _head_layers(in_channels: int, out_channels: int | None, blocks: int) -> nn.Sequential:
    """`blocks` BasicBlocks (1x1-conv shortcut with bias) to 128 channels, then an optional 1x1 output conv."""
    layers: list[nn.Module] = []
    for _ in range(blocks):
        shortcut = nn.Conv2d(in_channels, HEAD_CHANNELS, kernel_size=1, stride=1, padding=0)
        layers.append(nn.Sequential(BasicBlock(in_channels, HEAD_CHANNELS, downsample=shortcut, norm=ClipBatchNorm2d)))
        in_channels = HEAD_CHANNELS
    if out_channels is not None:
        layers.append(nn.Conv2d(HEAD_CHANNELS, out_channels, kernel_size=1, stride=1, padding=0))
    return nn.Sequential(*layers)


def _bev_pre_layers(in_channels: int) -> nn.Sequential:
    c = BEV_PRE_CHANNELS
    return nn.Sequential(
        nn.Conv2d(in_channels, c, 1, 1, 0), ClipBatchNorm2d(c), nn.ReLU(inplace=True),
        nn.Conv2d(c, c, 3, 1, 1), ClipBatchNorm2d(c), nn.ReLU(inplace=True),
        nn.Conv2d(c, c, 1, 1, 0), ClipBatchNorm2d(c), nn.ReLU(inplace=True))


def _bev_out_layers(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock1D(in_channels, BEV_INTER_CHANNELS),
                         BasicBlock1D(BEV_INTER_CHANNELS, BEV_INTER_CHANNELS),
                         BasicBlock1D(BEV_INTER_CHANNELS, out_channels))


@dataclass
class TemporalFeatures:
    features: torch.Tensor          # [n,32,128,128] GRU + deformable + residual
    hidden: list[torch.Tensor]      # per ConvGRU layer [1,32,128,128], carried to the next clip
    gru_out: torch.Tensor           # [n,32,128,128]
    deform_offsets: torch.Tensor    # [n,144,128,128]
    deform_out: torch.Tensor        # [n,32,128,128]


@dataclass
class HeadMaps:
    center_maps_fv: torch.Tensor        # [n,1,128,128]
    center_maps_3d: torch.Tensor        # [n,64,128,128]
    cam_maps_3d: torch.Tensor           # [n,3,64,128,128]
    mesh_feature_maps: torch.Tensor     # [n,128,128,128]
    motion_map_3d: torch.Tensor         # [n,3,64,128,128] (before the clip-first-frame zeroing)
    motion_maps_fv: torch.Tensor        # [n,3,128,128]
    cam_motion_maps: torch.Tensor       # [n,3,128,128]
    cam_rot_motion_maps: torch.Tensor   # [n,6,128,128]


class TraceHead(nn.Module):
    """Official TRACE_head parameters and the map-level forward passes."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("coordmap_3d", make_coordmap_3d())
        # present in the checkpoint, unused at inference (as in the official code)
        self.position_embeddings = nn.Embedding(MAP_SIZE, HEAD_CHANNELS, padding_idx=0)

        with_flow = FEATURE_CHANNELS + FLOW_CHANNELS
        self.det_head = _head_layers(FEATURE_CHANNELS, 1 + 3 + 3, blocks=1)   # centre, cam offset, local residual
        self.motion_head = _head_layers(with_flow, 3, blocks=2)
        self.param_head = _head_layers(with_flow, None, blocks=2)
        self.cam_motion_head = _head_layers(with_flow, 3, blocks=6)
        self.cam_rot_head = nn.Sequential(
            BasicBlock(HEAD_CHANNELS, HEAD_CHANNELS, norm=ClipBatchNorm2d,
                       downsample=nn.Conv2d(HEAD_CHANNELS, HEAD_CHANNELS, kernel_size=1, stride=1, padding=0)),
            nn.Conv2d(HEAD_CHANNELS, 6, kernel_size=1, stride=1, padding=0))

        self.bv_pre_layers = _bev_pre_layers(FEATURE_CHANNELS)
        self.bv_out_layers = _bev_out_layers((BEV_PRE_CHANNELS + 1 + 3 + 3) * MAP_SIZE, DEPTH_BINS * 3)
        self.bv_motion_pre_layers = _bev_pre_layers(with_flow)
        self.bv_motion_out_layers = _bev_out_layers((BEV_PRE_CHANNELS + 3) * MAP_SIZE, DEPTH_BINS)
        self.center_map_refiner2 = nn.Sequential(BasicBlock3D(1, 1))
        self.cam_map_refiner = nn.Sequential(BasicBlock3D(3, 3))
        self.motion_map_refiner = nn.Sequential(BasicBlock3D(3, 3))

        self.temp_model = ConvGRU(FEATURE_CHANNELS, FEATURE_CHANNELS, kernel_size=3, num_layers=2)
        self.temp_smplpose_regressor = TemporalEncoder(MESH_FEATURE_DIM, [PARAM_DIMS["pose"]])
        self.temp_globalrot_regressor = TemporalEncoder(MESH_FEATURE_DIM, list(PARAM_DIMS["global_rot"]))
        self.temp_trans_regressor = TemporalEncoder(MESH_FEATURE_DIM + 3, [3])
        self.temp_smplshape_regressor = TemporalEncoder(MESH_FEATURE_DIM, [PARAM_DIMS["shape"]])

        self.offset_feature_convert = nn.Sequential(
            *[BasicBlock(FEATURE_CHANNELS, FEATURE_CHANNELS, norm=ClipBatchNorm2d) for _ in range(3)])
        self.feature_offset_predictor = nn.Conv2d(FEATURE_CHANNELS, DEFORM_GROUPS * 2 * 3 * 3, kernel_size=3,
                                                  stride=1, padding=1, dilation=1, bias=False)
        self.deform_warper = DeformConv2d(FEATURE_CHANNELS, FEATURE_CHANNELS, 3, stride=1, padding=1, dilation=1,
                                          deformable_groups=DEFORM_GROUPS)

    # ------------------------------------------------------------------ temporal propagation
    def temporal_features(self, input_maps: torch.Tensor, hidden: list[torch.Tensor] | None) -> TemporalFeatures:
        """input_maps [n+1,32,128,128] (previous clip's last frame first) -> features of the n frames.

        ConvGRU over frames 1..n (hidden carried between clips), plus a deformable conv of each frame
        whose offsets come from the feature difference to the previous frame, plus the frame itself.
        """
        current = input_maps[1:]
        gru_out, hidden = self.temp_model(current.unsqueeze(0), hidden)
        gru_out = gru_out.squeeze(0)
        difference = current - input_maps[:-1]
        offsets = self.feature_offset_predictor(self.offset_feature_convert(difference))
        # the official code runs the deformable conv in float32 whatever the autocast state; we keep it
        # in the input's precision (float32 or float64) and outside autocast
        with torch.autocast(device_type=current.device.type, enabled=False):
            deform_out = self.deform_warper(current, offsets.to(current.dtype))
        features = (gru_out + deform_out) + current
        return TemporalFeatures(features, hidden, gru_out, offsets, deform_out)

    # ------------------------------------------------------------------ maps
    def _bird_view(self, pre_layers: nn.Sequential, out_layers: nn.Sequential, x: torch.Tensor,
                   front_maps: list[torch.Tensor]) -> torch.Tensor:
        """Collapse (channel, y) into 1D-conv channels and convolve along x: -> [n, C_out, 128 (x)]."""
        stacked = torch.cat([*front_maps, pre_layers(x)], dim=1)
        return out_layers(stacked.reshape(stacked.shape[0], -1, MAP_SIZE))

    def maps(self, features: torch.Tensor, flows: torch.Tensor) -> HeadMaps:
        """features [n,32,128,128], flows [n,2,128,128] (dx, dy in map pixels) -> all maps of the clip."""
        maps_fv = self.det_head(features)
        center_maps_fv = maps_fv[:, :1]
        cam_offset = maps_fv[:, 1:4]
        local_residual = maps_fv[:, 4:7]
        bird = self._bird_view(self.bv_pre_layers, self.bv_out_layers, features,
                               [center_maps_fv, cam_offset, local_residual])            # [n,192,128]
        center_bv = bird[:, :DEPTH_BINS]                                                 # [n,64,128] (z, x)
        cam_offset_bv = bird[:, DEPTH_BINS:2 * DEPTH_BINS]
        center_3d = center_maps_fv * center_bv.unsqueeze(2)                              # [n,64,128,128]
        center_maps_3d = self.center_map_refiner2(center_3d.unsqueeze(1)).squeeze(1)

        grid = self.coordmap_3d.permute(0, 4, 1, 2, 3)                                   # [1,3,64,128,128]
        cam_3d = grid + cam_offset.unsqueeze(2)                                          # [n,3,64,128,128]
        cam_3d[:, 0] = cam_3d[:, 0] + cam_offset_bv.unsqueeze(2)
        cam_maps_3d = self.cam_map_refiner(cam_3d)

        combined = torch.cat([flows, features], dim=1)                                   # [n,34,128,128]
        mesh_feature_maps = self.param_head(combined)
        motion_maps_fv = self.motion_head(combined)
        motion_bv = self._bird_view(self.bv_motion_pre_layers, self.bv_motion_out_layers, combined,
                                    [motion_maps_fv])                                    # [n,64,128] (z, x)
        motion_3d = motion_maps_fv.unsqueeze(2) + motion_bv[:, None, :, None, :]         # [n,3,64,128,128]
        motion_map_3d = self.motion_map_refiner(motion_3d)

        motion_features = self.cam_motion_head[:-2](combined)
        cam_motion_maps = self.cam_motion_head[-2:](motion_features)
        cam_rot_motion_maps = self.cam_rot_head(motion_features)
        return HeadMaps(center_maps_fv, center_maps_3d, cam_maps_3d, mesh_feature_maps, motion_map_3d,
                        motion_maps_fv, cam_motion_maps, cam_rot_motion_maps)

    # ------------------------------------------------------------------ regressors
    def regress_params(self, track_features: torch.Tensor) -> torch.Tensor:
        """[K,L,128] -> [K*L,159] = [two 6D global rotations (12) | body pose 6D (126) | shape (21)]."""
        rotations = self.temp_globalrot_regressor(track_features)
        pose = self.temp_smplpose_regressor(track_features)
        shape = self.temp_smplshape_regressor(track_features)
        params = torch.cat([rotations, pose, shape], dim=-1)
        return params.reshape(-1, params.shape[-1])

    def regress_cams(self, cams_init: torch.Tensor, mesh_features: torch.Tensor) -> torch.Tensor:
        """Normalised camera (scale, ty, tx) from the 3D cam-map sample and the mesh feature: [...,3]."""
        return self.temp_trans_regressor(torch.cat([cams_init, mesh_features], dim=-1))
