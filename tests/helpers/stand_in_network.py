"""A cheap, deterministic stand-in for `core.nn.TraceModel` (tests and benchmarks).

The real network costs seconds per frame on a CPU. `StandInNetwork.run_clip` returns `ClipOutput`s
of the real shapes and layout (track-major rows, official 156-value parameter vectors, 6D rotations
near identity) for `people` persons tracked in every frame, so everything after the network (row
decoding, per-track accumulation, shot handling, the world stage, the result file) runs for real.
Track ids restart at 1 in every new stream, like the tracker does after `new_stream()`.

`loader(...)` gives a drop-in replacement of `core.pipeline.load_network`, so a test can run the
whole `python -m core run` command in-process with this network (monkeypatch the function).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np


class StandInNetwork:
    """ClipOutputs of the right shapes for `people` persons in every frame (values vary per clip)."""

    def __init__(self, people: int = 3) -> None:
        self.people = people
        self.streams_started = 0
        self.clip_sizes: list[int] = []

    def new_stream(self) -> dict:
        self.streams_started += 1
        return {"clips": 0, "stream": self.streams_started}

    def run_clip(self, images_u8: np.ndarray, stream: dict, settings: Any, capture: dict | None = None):
        import torch

        from core.nn import ClipOutput

        n = len(images_u8)
        self.clip_sizes.append(n)
        generator = torch.Generator().manual_seed(stream["clips"])
        stream["clips"] += 1
        rows = self.people * n
        track_ids = torch.arange(1, self.people + 1).repeat_interleave(n)          # track-major, like TRACE
        frame_ids = torch.arange(n).repeat(self.people)
        params = torch.randn(rows, 156, generator=generator) * 0.1
        params[:, 3:135] += torch.tensor([1.0, 0, 0, 1, 0, 0]).repeat(22)          # near-identity rotations
        cam = torch.stack([torch.full((rows,), 0.6), torch.zeros(rows), (track_ids.float() - 2) * 0.3], 1)
        params[:, :3] = cam
        # touch the images so the stand-in reads its input like the network would
        brightness = torch.from_numpy(images_u8.reshape(n, -1)[:, ::4096].astype(np.float32)).mean(1)
        return ClipOutput(
            params_pred=params, cam=cam, cams_init=cam.clone(), world_cams=cam + 0.01 * frame_ids[:, None],
            world_global_rots=torch.zeros(rows, 3), motion_offsets3D=torch.zeros(rows, 3),
            motion_offsets2D=torch.zeros(rows, 3), pred_batch_ids=frame_ids,
            pred_czyxs=torch.stack([torch.full((rows,), 30), torch.full((rows,), 64), 20 + 30 * track_ids], 1),
            top_score=(0.2 + 0.8 * brightness[frame_ids] / 255.0)[:, None], track_ids=track_ids,
            detection_flag=torch.ones(n, dtype=torch.bool), inherited=torch.zeros(rows, dtype=torch.bool),
            tracked=torch.ones(rows, dtype=torch.bool))


def loader(network: StandInNetwork) -> Callable[..., Any]:
    """A `core.pipeline.load_network` replacement that hands out `network` (no weight files read)."""
    def load_network(weights_dir: Path | None, offline: bool, device: str, dtype: Any, reporter: Any,
                     autocast_dtype: Any = None, raft: Any = None):
        from core.nn import decode_params
        from core.pipeline import LoadedNetwork

        reporter.begin_stage("load_weights", 1, unit="steps")
        reporter.update(1)
        reporter.end_stage()
        return LoadedNetwork(network, decode_params, {"stand-in": "0" * 64})
    return load_network
