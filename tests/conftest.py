"""Shared fixtures: the official reference data and generated (synthetic) checkpoints.

The reference folder (`../shared/trace_reference` beside the checkout, or $TRACE_REFERENCE_DIR)
holds the official network's outputs on a synthetic clip. Tests that need it are skipped with a
loud reason when it is absent; CI (`.ci/run`) refuses to run without it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
GENERATED_DIR = REPO_ROOT / "tests" / ".generated"
CHECKPOINT_MANIFESTS = {
    "trace_image_backbone.pkl": "manifest_image_backbone.json",
    "trace_motion_backbone.pth": "manifest_motion_backbone.json",
    "trace_head.pkl": "manifest_head.json",
}


def find_reference_dir() -> Path | None:
    candidates = []
    if os.environ.get("TRACE_REFERENCE_DIR"):
        candidates.append(Path(os.environ["TRACE_REFERENCE_DIR"]))
    candidates.append(REPO_ROOT.parent / "shared" / "trace_reference")
    candidates.append(REPO_ROOT / "shared" / "trace_reference")
    for c in candidates:
        if (c / "README.md").is_file() and (c / "make_weights.py").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    ref = find_reference_dir()
    if ref is None:
        pytest.skip("official reference data not found: set TRACE_REFERENCE_DIR or place it at ../shared/trace_reference")
    return ref


def generate_weights(reference: Path, out_dir: Path, seed: int = 0) -> Path:
    """Run the fixture's deterministic weight generator once per seed; cached under tests/.generated."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for filename, manifest in CHECKPOINT_MANIFESTS.items():
        target = out_dir / filename
        if target.is_file():
            continue
        tmp = out_dir / (filename + ".tmp")
        subprocess.run(
            [sys.executable, str(reference / "make_weights.py"), "--manifest", str(reference / manifest),
             "--seed", str(seed), "--out", str(tmp)],
            check=True, stdout=subprocess.DEVNULL,
        )
        tmp.replace(target)
    return out_dir


@pytest.fixture(scope="session")
def generated_weights(reference_dir: Path) -> Path:
    """Folder with the three seed-0 checkpoints in the official file layout."""
    return generate_weights(reference_dir, GENERATED_DIR / "weights_seed0", seed=0)


@pytest.fixture()
def empty_scene():
    """A clean Blender scene (factory settings, no objects); bpy is imported only by tests that use it."""
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context
