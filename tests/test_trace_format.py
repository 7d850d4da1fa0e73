"""trace_format: the package shared with the add-on (rest shape, protocol, import boundary)."""
from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path

import numpy as np

from core.errors import InputError, PartialResultError
from core.progress import STAGES as CORE_STAGES
from trace_format import protocol
from trace_format.schema import TrackResult
from trace_format.shape import rest_betas
from helpers.factories import make_track

PACKAGE = Path(protocol.__file__).parent


def _track(betas, confidence, observed) -> TrackResult:
    return dataclasses.replace(make_track(1, np.arange(len(betas))), betas=np.asarray(betas),
                               confidence=np.asarray(confidence), observed=np.asarray(observed))


def test_rest_betas_weights_detected_frames_by_confidence():
    betas = np.array([[1.0] * 10, [3.0] * 10, [100.0] * 10])
    track = _track(betas, confidence=[0.25, 0.75, 0.9], observed=[True, True, False])   # frame 2 infilled
    np.testing.assert_allclose(rest_betas(track), [0.25 * 1 + 0.75 * 3] * 10)
    assert rest_betas(track).dtype == np.float64 and rest_betas(track).shape == (10,)


def test_rest_betas_without_detections_is_the_plain_mean():
    track = _track(np.array([[1.0] * 10, [2.0] * 10]), confidence=[0.0, 0.0], observed=[False, False])
    np.testing.assert_allclose(rest_betas(track), [1.5] * 10)


def test_core_uses_the_protocol_of_trace_format():
    assert InputError.exit_code is protocol.ExitCode.INPUT and PartialResultError.exit_code == 10
    assert CORE_STAGES is protocol.STAGES
    assert protocol.EVENTS == ("start", "progress", "warning", "done", "error")


def test_trace_format_imports_only_stdlib_numpy_and_itself():
    allowed = set(sys.stdlib_module_names) | {"numpy", "__future__"}
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                modules = [node.module or ""]
            else:
                continue
            assert all(module.split(".")[0] in allowed for module in modules), (path.name, modules)
    assert (PACKAGE / "default_skeleton.json").is_file()
