"""The TRACE network (checkpoint-compatible re-implementation) and its inference program.

Public entry points (contract in docs/architecture.md):

    TraceModel.from_weights(weights_dir, device="cpu", dtype=torch.float32) -> TraceModel
    model.new_stream() -> StreamState
    model.run_clip(images_u8[n,512,512,3], stream, settings, capture=None) -> ClipOutput | None
    decode_params(params_pred[N,156]) -> dict(global_orient[N,3], body_pose[N,23,3], betas[N,10])
"""
from .trace_model import ClipMaps, ClipOutput, RaftSchedule, StreamState, TraceModel, decode_params, resolve_device

__all__ = ["TraceModel", "RaftSchedule", "StreamState", "ClipOutput", "ClipMaps", "decode_params", "resolve_device"]
