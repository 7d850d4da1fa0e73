"""Overlay video of a result: `python -m core preview RESULT [--video VIDEO] -o preview.mp4`.

Draws, on the source footage (or a grey canvas when no video is at hand), every tracked person's
skeleton from the result's 2D keypoints, their track id in one colour per identity, the shot index
and frame number, and a small top-down view of the people's trajectories in the shot's world.
Streaming: one frame in memory at a time. See docs/cli.md, "Preview video".
"""
from .render import PreviewError, PreviewOptions, PreviewSummary, render_preview, track_color

__all__ = ["PreviewError", "PreviewOptions", "PreviewSummary", "render_preview", "track_color"]
