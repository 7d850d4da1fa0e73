"""TRACE inference, one clip at a time: backbones, head maps, tracking and the final regressions.

``TraceModel.run_clip`` reproduces the official per-clip program (``main.py`` +
``TRACE_head.inference_regression``):

1. image features of the n frames (HRNet-W32), flows RAFT(previous -> current) for each frame;
   the previous clip's last frame (image and features) is prepended, the very first clip duplicates its
   first frame (so frame 0's flow is RAFT(img0, img0));
2. temporal propagation (ConvGRU with carried hidden state + deformable branch), the head's maps;
3. 3D centre parsing, the tracker, the memory unit (``core.tracking``), the per-track regressors, the
   official pose smoothing (``smooth_grots``) and world localisation (world cams = initial cam of the
   track + cumulative sum of the sampled camera-motion map, x and y components scaled by 2);
4. rows filtered to the valid (track, frame) pairs.

Everything carried between clips lives in :class:`StreamState` (one per video).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UsageError
from ..smoothing import OneEuroFilter
from ..tracking import (TrajectoryMemory, ensure_detection, gather_trajectory_features, infill_low_quality_cams,
                        parse_center_maps_3d, track_clip)
from .fuse import fold_frozen_batchnorm
from .head import HeadMaps, TraceHead
from .hrnet import HRNetW32
from .raft import RAFT, flows_for_head, forward_interpolate
from .rotations import angle_between_6d_degrees, rot6d_to_axis_angle

__all__ = ["TraceModel", "StreamState", "ClipOutput", "ClipMaps", "decode_params", "resolve_device",
           "carry_world_anchors",
           "CAM_MOTION_SCALE_X", "CAM_MOTION_SCALE_Y", "RAFT_ITERATIONS"]

RAFT_ITERATIONS = 20
CAM_MOTION_SCALE_X = 2.0      # official eval cfg xs
CAM_MOTION_SCALE_Y = 2.0      # official eval cfg ys
GROT_JITTER_DEGREES = 140.0   # smooth_grots: larger jumps of the global rotation are treated as jitter
GROT_JITTER_PATIENCE = 10     # ... at most this many times in a row
ONE_EURO_BETA = 0.7           # official OneEuroFilter(pose_smooth_coef, 0.7)
PARAMS_DIM = 156              # cam 3 | global orient 6D 6 | body pose 6D 126 | betas 21


def resolve_device(device: str | torch.device) -> str:
    """The one device resolver: 'auto' -> 'cuda' when a usable GPU exists, else 'cpu'; 'cpu', 'cuda' and
    'cuda:N' as given. A CUDA device without a usable GPU, or any other name, is a UsageError."""
    name = str(device)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name != "cpu" and not (name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit())):
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N (got {name!r})")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no usable CUDA GPU (torch {torch.__version__}, CUDA build "
                         f"{torch.version.cuda or 'none'}); use --device cpu or install a CUDA build of torch")
    return name


@dataclass
class RaftSchedule:
    """How RAFT runs per frame pair. Default: the official 20 iterations from zero flow.

    ``warm_start`` starts each pair from the previous pair's flow moved forward (RAFT's own video
    practice, :func:`core.nn.raft.forward_interpolate`); with fewer ``iterations`` it is faster but its
    outputs differ from the official program: an opt-in (``--fast``), recorded in the result settings.
    """

    iterations: int = RAFT_ITERATIONS
    warm_start: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.iterations, int) or self.iterations < 1:
            raise ValueError(f"RAFT iterations must be an integer >= 1, got {self.iterations!r}")

    @property
    def official(self) -> bool:
        return self.iterations == RAFT_ITERATIONS and not self.warm_start

    def as_dict(self) -> dict:
        return {"iterations": self.iterations, "warm_start": self.warm_start}


@dataclass
class StreamState:
    """Everything carried from one clip to the next of the same video."""

    hidden: list[torch.Tensor] | None = None          # ConvGRU per-layer hidden [1,32,128,128]
    last_image: torch.Tensor | None = None            # [512,512,3] uint8 of the previous clip's last frame
    last_features: torch.Tensor | None = None         # [32,128,128] its image features
    tracker: Any = None                               # core.tracking tracker (None until the first clip)
    memory: Any = None                                # core.tracking.TrajectoryMemory
    init_world_cams: dict[int, torch.Tensor] | None = None   # track id -> [1,3] last world cam
    last_flow_lowres: torch.Tensor | None = None      # [2,64,64] RAFT flow of the previous pair (warm start only)
    frames_seen: int = 0
    clips_seen: int = 0


@dataclass
class ClipMaps:
    """Network outputs of one clip before tracking (all on the model's device)."""

    features: torch.Tensor        # [n,32,128,128] temporal features
    flows: torch.Tensor           # [n,2,128,128]
    maps: HeadMaps


@dataclass
class ClipOutput:
    """Rows are (track, frame) pairs in the official order (track-major). Tensors on the CPU."""

    params_pred: torch.Tensor         # [N,156] cam (normalised) | orient 6D | pose 6D | betas 21
    cam: torch.Tensor                 # [N,3] normalised (scale, ty, tx)
    cams_init: torch.Tensor           # [N,3] 3D cam-map sample
    world_cams: torch.Tensor          # [N,3]
    world_global_rots: torch.Tensor   # [N,3] axis-angle
    motion_offsets3D: torch.Tensor    # [N,3]
    motion_offsets2D: torch.Tensor    # [N,3]
    pred_batch_ids: torch.Tensor      # [N] int64 frame index inside the clip
    pred_czyxs: torch.Tensor          # [N,3] int64 (z, y, x) on the 64x128x128 grid
    top_score: torch.Tensor           # [N,1] front-view centre score at (y, x)
    track_ids: torch.Tensor           # [N] int64
    detection_flag: torch.Tensor      # [n] bool
    inherited: torch.Tensor           # [N] bool: features taken from the memory unit (infilled)
    tracked: torch.Tensor             # [N] bool: the tracker matched a detection in this frame


def carry_world_anchors(previous: dict[int, torch.Tensor] | None, current: dict[int, torch.Tensor],
                        keep_absent: bool) -> dict[int, torch.Tensor]:
    """World anchors (last world cam per track id) for the next clip.

    Official: rebuilt from this clip's tracks only, so a track absent from a whole clip (e.g. reported
    in fewer than 6 of its frames) restarts its world trajectory from its camera-frame position, a jump
    whenever the camera has moved. Product (`keep_absent`): absent tracks keep their last anchor, so
    their world trajectory continues where it stopped.
    """
    if not keep_absent or not previous:
        return dict(current)
    return {**previous, **current}


def _as_image_tensor(images_u8: Any) -> torch.Tensor:
    if isinstance(images_u8, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images_u8))
    elif isinstance(images_u8, torch.Tensor):
        images = images_u8
    else:
        raise TypeError(f"images must be a uint8 numpy array or tensor [n,512,512,3], got {type(images_u8).__name__}")
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
        raise ValueError(f"images must be uint8 [n>=1,H,W,3] RGB, got {images.dtype} {tuple(images.shape)}")
    return images


def decode_params(params_pred: torch.Tensor | np.ndarray) -> dict[str, torch.Tensor]:
    """[N,156] -> global_orient [N,3], body_pose [N,23,3] (hands zero), betas [N,10] (axis-angle, SMPL).

    Same split as the official result parser: 6D rotations to axis-angle with the column convention,
    the 21 predicted body joints followed by two zero hand joints, the first 10 of the 21 shape values
    (value 10 is the unused kid offset).
    """
    params = torch.as_tensor(params_pred)
    if params.ndim != 2 or params.shape[1] != PARAMS_DIM:
        raise ValueError(f"params_pred must be [N,{PARAMS_DIM}], got {tuple(params.shape)}")
    n = params.shape[0]
    global_orient = rot6d_to_axis_angle(params[:, 3:9])                          # [N,3]
    body = rot6d_to_axis_angle(params[:, 9:135]).reshape(n, 21, 3)               # [N,21,3]
    body_pose = torch.cat([body, body.new_zeros(n, 2, 3)], dim=1)                # [N,23,3]
    betas = params[:, 135:145].clone()                                           # [N,10]
    return {"global_orient": global_orient, "body_pose": body_pose, "betas": betas}


class TraceModel(nn.Module):
    """Image backbone + motion backbone + head, with the official per-clip inference program."""

    def __init__(self, autocast_dtype: torch.dtype | None = None, image_batch: int | None = None,
                 flow_batch: int | None = None, raft: RaftSchedule | None = None):
        super().__init__()
        self.raft = raft or RaftSchedule()
        self.image_backbone = HRNetW32()
        self.motion_backbone = RAFT()
        self.head = TraceHead()
        self.autocast_dtype = autocast_dtype
        self._image_batch = image_batch
        self._flow_batch = flow_batch
        self.load_info: list[str] = []
        self.requires_grad_(False)
        self.eval()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_weights(cls, weights_dir: str | Path, device: str | torch.device = "cpu",
                     dtype: torch.dtype = torch.float32, autocast_dtype: torch.dtype | None = None,
                     image_batch: int | None = None, flow_batch: int | None = None,
                     fold_batchnorm: bool | None = None, raft: RaftSchedule | None = None) -> "TraceModel":
        """Load and validate the three official checkpoints (see core.checkpoints) onto `device`.

        fold_batchnorm: fold the backbones' frozen BatchNorms into their convolutions (core.nn.fuse; same
        outputs to float32 rounding, faster). Default: on, except in float64, the verification path kept
        bit-identical to the official run; False is for A/B measurements (benchmarks/bench_throughput.py).
        raft: RAFT iterations / warm start (:class:`RaftSchedule`; default the official 20 from zero).
        """
        from ..checkpoints import validate_weights_dir

        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}; "
                             f"use autocast_dtype=torch.bfloat16 / torch.float16 for reduced precision")
        loaded = validate_weights_dir(weights_dir)
        model = cls(autocast_dtype=autocast_dtype, image_batch=image_batch, flow_batch=flow_batch, raft=raft)
        model.image_backbone.load_state_dict(loaded["image_backbone"].state_dict, strict=True)
        model.motion_backbone.load_state_dict(loaded["motion_backbone"].state_dict, strict=True)
        model.head.load_state_dict(loaded["head"].state_dict, strict=True)
        model.load_info = [line for c in loaded.values() for line in c.info]
        model = model.to(device=resolve_device(device), dtype=dtype)
        if fold_batchnorm is None:
            fold_batchnorm = dtype != torch.float64
        if fold_batchnorm:
            fold_frozen_batchnorm(model.image_backbone)
            fold_frozen_batchnorm(model.motion_backbone)
        return model

    @property
    def device(self) -> torch.device:
        return self.head.coordmap_3d.device

    @property
    def dtype(self) -> torch.dtype:
        return self.head.coordmap_3d.dtype

    def new_stream(self) -> StreamState:
        return StreamState()

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _batch_sizes(self) -> tuple[int, int]:
        on_gpu = self.device.type == "cuda"
        image_batch = self._image_batch or (8 if on_gpu else 4)
        flow_batch = self._flow_batch or (8 if on_gpu else 2)   # all-pairs correlation: 4096^2 per pair
        return image_batch, flow_batch

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ------------------------------------------------------------------ components
    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """[n,512,512,3] uint8 -> [n,32,128,128] in the model dtype."""
        image_batch, _ = self._batch_sizes()
        chunks = []
        for start in range(0, len(images), image_batch):
            with self._autocast():
                chunks.append(self.image_backbone(images[start:start + image_batch]).to(self.dtype))
        return torch.cat(chunks)

    def optical_flows(self, sources: torch.Tensor, targets: torch.Tensor, previous_lowres: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 [n,512,512,3] pairs -> (flows for the head [n,2,128,128], RAFT low-res flow [n,2,64,64]).

        With a warm-started schedule the pairs run one at a time, each started from the forward-
        interpolated flow of the pair before (previous_lowres [2,64,64] for the first pair, if any).
        """
        _, flow_batch = self._batch_sizes()
        if self.raft.warm_start:
            flow_batch = 1
        head_flows, lowres = [], []
        for start in range(0, len(sources), flow_batch):
            a = sources[start:start + flow_batch].permute(0, 3, 1, 2)
            b = targets[start:start + flow_batch].permute(0, 3, 1, 2)
            previous = lowres[-1] if lowres else (None if previous_lowres is None else previous_lowres[None])
            flow_init = forward_interpolate(previous) if self.raft.warm_start and previous is not None else None
            flow_low, flow_up = self.motion_backbone(a, b, iters=self.raft.iterations,
                                                     autocast_dtype=self.autocast_dtype, flow_init=flow_init)
            head_flows.append(flows_for_head(flow_up))
            lowres.append(flow_low)
        return torch.cat(head_flows), torch.cat(lowres)

    @torch.inference_mode()
    def clip_maps(self, images_u8: Any, stream: StreamState, capture: dict | None = None) -> ClipMaps:
        """Backbones and head maps of one clip; updates the stream's network state (not the tracking).

        capture (optional dict) receives the intermediate tensors under the reference names
        (img_feat, flows_128, flow_lowres_64, temporal_out, gru_out, deform_offsets, deform_out,
        center_maps_fv, center_maps_3d, cam_maps_3d, motion_map_3d, motion_maps_fv, mesh_feature_maps,
        cam_motion_maps, cam_rot_motion_maps) and 'seconds' per component.
        """
        images = _as_image_tensor(images_u8).to(self.device)
        seconds = {}
        tic = time.perf_counter()
        features = self.image_features(images)                                        # [n,32,128,128]
        self._sync()
        seconds["image_backbone"] = time.perf_counter() - tic

        previous_image = images[:1] if stream.last_image is None else stream.last_image[None]
        previous_features = features[:1] if stream.last_features is None else stream.last_features[None]
        padded_images = torch.cat([previous_image, images])                           # [n+1,512,512,3]
        input_maps = torch.cat([previous_features, features])                         # [n+1,32,128,128]

        tic = time.perf_counter()
        flows, flow_lowres = self.optical_flows(padded_images[:-1], padded_images[1:], stream.last_flow_lowres)
        self._sync()
        seconds["motion_backbone"] = time.perf_counter() - tic

        tic = time.perf_counter()
        with self._autocast():
            temporal = self.head.temporal_features(input_maps, stream.hidden)
        head_features = temporal.features.to(self.dtype)
        with self._autocast():
            maps = self.head.maps(head_features, flows)
        if self.autocast_dtype is not None:
            maps = HeadMaps(**{name: value.to(self.dtype) for name, value in vars(maps).items()})
        self._sync()
        seconds["head_maps"] = time.perf_counter() - tic

        stream.hidden = [h.to(self.dtype) for h in temporal.hidden]
        stream.last_image = images[-1].clone()
        stream.last_features = features[-1].clone()
        stream.last_flow_lowres = flow_lowres[-1].clone() if self.raft.warm_start else None
        stream.frames_seen += len(images)
        stream.clips_seen += 1
        if capture is not None:
            capture.update({
                "img_feat": features, "flows_128": flows, "flow_lowres_64": flow_lowres,
                "temporal_out": head_features, "gru_out": temporal.gru_out, "deform_offsets": temporal.deform_offsets,
                "deform_out": temporal.deform_out, "center_maps_fv": maps.center_maps_fv[:, 0],
                "center_maps_3d": maps.center_maps_3d, "cam_maps_3d": maps.cam_maps_3d,
                "motion_map_3d": maps.motion_map_3d, "motion_maps_fv": maps.motion_maps_fv,
                "mesh_feature_maps": maps.mesh_feature_maps, "cam_motion_maps": maps.cam_motion_maps,
                "cam_rot_motion_maps": maps.cam_rot_motion_maps})
            capture.setdefault("seconds", {}).update(seconds)
        return ClipMaps(head_features, flows, maps)

    # ------------------------------------------------------------------ the official inference program
    @torch.inference_mode()
    def run_clip(self, images_u8: Any, stream: StreamState, settings: Any, capture: dict | None = None
                 ) -> ClipOutput | None:
        """One clip of n consecutive preprocessed frames -> tracked rows, or None when nothing is tracked."""
        clip = self.clip_maps(images_u8, stream, capture)
        tic = time.perf_counter()
        output = self._regress(clip, stream, settings)
        self._sync()
        if capture is not None:
            capture.setdefault("seconds", {})["head_tracking"] = time.perf_counter() - tic
        return output

    def _regress(self, clip: ClipMaps, stream: StreamState, settings: Any) -> ClipOutput | None:
        maps = clip.maps
        head = self.head
        n = maps.center_maps_3d.shape[0]

        batch_ids, czyxs, scores = parse_center_maps_3d(maps.center_maps_3d, conf_thresh=settings.center_thresh)
        batch_ids, czyxs, scores, detection_flag = ensure_detection(maps.center_maps_3d, batch_ids, czyxs, scores)
        z, y, x = czyxs[:, 0], czyxs[:, 1], czyxs[:, 2]
        motion_offsets = self._motion_offsets(maps.motion_map_3d, batch_ids, czyxs)
        cams_init = maps.cam_maps_3d[batch_ids, :, z, y, x]                             # [D,3]
        sampled_features = maps.mesh_feature_maps[batch_ids, :, y, x]                  # [D,128]
        init_normed_cams = head.regress_cams(cams_init, sampled_features)              # [D,3]

        clip_tracks, stream.tracker = track_clip(motion_offsets, batch_ids, init_normed_cams, czyxs, scores,
                                                        n, settings, stream.tracker, detection_flag=detection_flag)
        if not clip_tracks:
            return None
        if stream.memory is None:
            stream.memory = TrajectoryMemory()
        batch = gather_trajectory_features(clip_tracks, maps.mesh_feature_maps, stream.memory, settings)
        track_ids = [int(t) for t in torch.as_tensor(batch.track_ids).reshape(-1).tolist()]
        k, length = batch.valid_masks.shape
        features = batch.features.to(self.dtype)                                       # [K,L,128]
        inherent = torch.as_tensor(batch.inherent_flags, device=self.device).bool()    # [K,L]

        params = head.regress_params(features)                                         # [K*L,159]
        if settings.smooth_pose_shape:   # many tiny sequential steps: done on the CPU (same values)
            params = self._smooth_pose(params.cpu(), track_ids, inherent.cpu(), stream.memory,
                                       settings).to(self.device)

        frame_ids = torch.as_tensor(batch.batch_inds, device=self.device).reshape(-1).long()   # may hold -1
        cells = torch.as_tensor(batch.czyxs, device=self.device).reshape(-1, 3).long()
        cz, cy, cx = cells[:, 0], cells[:, 1], cells[:, 2]

        # localisation (official localization3D_inference)
        cams_init = maps.cam_maps_3d[frame_ids, :, cz, cy, cx]                          # [K*L,3]
        normed_cams = head.regress_cams(cams_init.reshape(k, length, 3), features)     # [K,L,3]
        normed_cams = infill_low_quality_cams(normed_cams, torch.tensor(track_ids), stream.memory,
                                                     inherent, settings)
        cam_motions = maps.cam_motion_maps[frame_ids, :, cy, cx].reshape(k, length, 3).clone()
        cam_motions[..., 2] = cam_motions[..., 2] * CAM_MOTION_SCALE_X
        cam_motions[..., 1] = cam_motions[..., 1] * CAM_MOTION_SCALE_Y
        if stream.init_world_cams is None:
            init_world = normed_cams[:, :1].repeat(1, length, 1)
        else:
            init_world = torch.stack([stream.init_world_cams[tid] if tid in stream.init_world_cams
                                      else normed_cams[i, :1] for i, tid in enumerate(track_ids)]).repeat(1, length, 1)
        world_cams = init_world + torch.cumsum(cam_motions, dim=-2)                    # [K,L,3]
        # views on purpose: the official smoothing below updates world_cams in place and the anchors
        # of the next clip see it.
        stream.init_world_cams = carry_world_anchors(
            stream.init_world_cams, {tid: world_cams[i, -1:] for i, tid in enumerate(track_ids)},
            keep_absent=not settings.official_quirks)
        if settings.smooth_pos_cam:
            self._smooth_world_cams(world_cams, track_ids, inherent, stream.memory, settings)
        world_cams = world_cams.reshape(-1, 3)
        normed_cams = normed_cams.reshape(-1, 3)

        world_rot6d = maps.cam_rot_motion_maps[frame_ids, :, cy, cx] + params[:, 6:12]
        world_global_rots = rot6d_to_axis_angle(world_rot6d)                           # [K*L,3]

        valid = torch.as_tensor(batch.valid_masks, device=self.device).reshape(-1).bool()
        row_track_ids = torch.tensor(track_ids, dtype=torch.long).repeat_interleave(length)
        tracked = torch.stack([self._tracked_flags(clip_tracks, tid, length) for tid in track_ids]).reshape(-1)
        valid_cpu = valid.cpu()
        frame_ids, cells = frame_ids[valid], cells[valid]
        cz, cy, cx = cells[:, 0], cells[:, 1], cells[:, 2]
        normed_cams = normed_cams[valid]
        params_pred = torch.cat([normed_cams, params[valid][:, 6:]], dim=1)            # [N,156]

        def cpu(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to("cpu")

        return ClipOutput(
            params_pred=cpu(params_pred), cam=cpu(normed_cams), cams_init=cpu(cams_init[valid]),
            world_cams=cpu(world_cams[valid]), world_global_rots=cpu(world_global_rots[valid]),
            motion_offsets3D=cpu(self._motion_offsets(maps.motion_map_3d, frame_ids, cells)),
            motion_offsets2D=cpu(maps.motion_maps_fv[frame_ids, :, cy, cx]),
            pred_batch_ids=cpu(frame_ids), pred_czyxs=cpu(cells),
            top_score=cpu(maps.center_maps_fv[frame_ids, :, cy, cx]),
            track_ids=row_track_ids[valid_cpu], detection_flag=cpu(detection_flag.bool()),
            inherited=cpu(inherent.reshape(-1)[valid]), tracked=tracked[valid_cpu])

    @staticmethod
    def _motion_offsets(motion_map_3d: torch.Tensor, frame_ids: torch.Tensor, czyxs: torch.Tensor) -> torch.Tensor:
        """Sample the 3D motion map; the first frame of every clip counts as zero (official zeroing).

        Frame ids may be negative (official indexing of never-detected frames); they wrap like Python
        indices, so the zeroing applies to the frame they actually address.
        """
        n = motion_map_3d.shape[0]
        values = motion_map_3d[frame_ids, :, czyxs[:, 0], czyxs[:, 1], czyxs[:, 2]]
        first_frame = (frame_ids % n) == 0
        return torch.where(first_frame[:, None], torch.zeros_like(values), values)

    @staticmethod
    def _tracked_flags(clip_tracks: Any, track_id: int, length: int) -> torch.Tensor:
        track = clip_tracks[track_id]
        quality = torch.as_tensor(track.quality).reshape(length, 2)
        return (quality[:, 1] > 0.99).cpu()

    # ------------------------------------------------------------------ official smoothing
    @staticmethod
    def _smooth_pose(params: torch.Tensor, track_ids: list[int], inherent: torch.Tensor, memory: Any,
                     settings: Any) -> torch.Tensor:
        """Official smooth_grots: global-rotation jitter guard and One-Euro smoothing of pose + shape.

        params [K*L,159]; columns 6:12 (the kept global rotation) and 12: (pose 6D + shape) are updated.
        Frames whose features were inherited from memory reuse the last accepted values. Per-track state
        lives in the memory unit under the official memory5D names: extra['grots'] = [anchor 6D, jitter
        count] (or None: set once, at the track's first clip, and None for good if that clip had no good
        frame) and extra['pose_rots'] (One-Euro filter with the official feedback of the filtered value).
        """
        k = len(track_ids)
        rows = params[:, 6:].reshape(k, -1, params.shape[1] - 6).clone()               # [K,L,153]
        for i, tid in enumerate(track_ids):
            grots = rows[i, :, :6]
            pose_shape = rows[i, :, 6:]
            flags = inherent[i].tolist()
            extra = memory.track(tid).extra
            if "grots" not in extra:
                good = [t for t, inherited in enumerate(flags) if not inherited]
                extra["grots"] = [grots[good[0]].clone(), 0] if good else None
            if "pose_rots" not in extra:
                extra["pose_rots"] = OneEuroFilter(settings.pose_smooth_coef, ONE_EURO_BETA,
                                                          feed_back_output=True)
            anchor, pose_filter = extra["grots"], extra["pose_rots"]
            for t, inherited in enumerate(flags):
                if inherited:
                    if anchor is not None:
                        grots[t] = anchor[0]
                        anchor[1] = 0
                    if pose_filter.last_value is not None:
                        pose_shape[t] = pose_filter.last_value
                    continue
                if anchor is not None:
                    if angle_between_6d_degrees(grots[t], anchor[0]) > GROT_JITTER_DEGREES:
                        if anchor[1] <= GROT_JITTER_PATIENCE:
                            grots[t] = anchor[0]
                            anchor[1] += 1
                    else:
                        anchor[0] = grots[t].clone()
                        anchor[1] = 0
                pose_shape[t] = pose_filter.process(pose_shape[t].clone())
        params = params.clone()
        params[:, 6:] = rows.reshape(-1, rows.shape[-1])
        return params

    @staticmethod
    def _smooth_world_cams(world_cams: torch.Tensor, track_ids: list[int], inherent: torch.Tensor, memory: Any,
                           settings: Any) -> None:
        """Official smooth_world_cams (only with smooth_pos_cam): infill inherited frames, then One-Euro.

        Updates world_cams [K,L,3] in place (the next clip's anchors are views into it); the filter of
        each track is memory extra['world_cams'].
        """
        for i, tid in enumerate(track_ids):
            cams = world_cams[i]
            flags = inherent[i].tolist()
            good = [t for t, inherited in enumerate(flags) if not inherited]
            extra = memory.track(tid).extra
            if "world_cams" not in extra:
                extra["world_cams"] = OneEuroFilter(settings.pose_smooth_coef, ONE_EURO_BETA,
                                                           feed_back_output=True)
            smoother = extra["world_cams"]
            for t in [t for t, inherited in enumerate(flags) if inherited]:
                before = [g for g in good if g < t]
                if not before:
                    if smoother.last_value is not None:
                        cams[t] = smoother.last_value
                    continue
                after = [g for g in good if g > t]
                if not after:
                    cams[t] = cams[good[-1]]
                    continue
                fore, aft = before[-1], after[0]
                # official weights are int tensor divisions -> float32
                w_fore = torch.tensor(aft - t) / torch.tensor(aft - fore)
                w_after = torch.tensor(t - fore) / torch.tensor(aft - fore)
                cams[t] = w_fore * cams[fore] + w_after * cams[aft]
            for t in range(cams.shape[0]):
                cams[t] = smoother.process(cams[t].clone())
