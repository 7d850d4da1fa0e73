"""build.py's extension zip: Blender's validator accepts it, it installs, enables and disables in bpy, and
the INSTALLED copy imports a result with its bundled trace_format wheel (the repository's packages hidden)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("bpy")

from helpers.blender import world_result_from_truth, world_scene  # noqa: E402

from trace_format.npz import write_result

REPO_ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: BLENDER_USER_RESOURCES must be set before bpy is imported, and the
# editable install of this repository (a meta-path finder from a .pth file) must be invisible.
INSTALLED_EXTENSION_SCRIPT = r'''
import importlib.util, json, os, sys
sys.meta_path[:] = [f for f in sys.meta_path
                    if not (f if isinstance(f, type) else type(f)).__module__.startswith("__editable__")]
sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd()) and not p.startswith(REPO_ROOT)]
report = {"core_visible": importlib.util.find_spec("core") is not None,
          "trace_format_visible": importlib.util.find_spec("trace_format") is not None,
          "trace_blender_visible": importlib.util.find_spec("trace_blender") is not None}
import bpy
import addon_utils
zip_path, result_path = sys.argv[1], sys.argv[2]
bpy.ops.wm.read_factory_settings(use_empty=True)
report["install"] = sorted(bpy.ops.extensions.package_install_files(
    filepath=zip_path, repo="user_default", enable_on_install=True))
module = "bl_ext.user_default.trace_blender"
report["enabled"] = module in bpy.context.preferences.addons
report["panel_registered"] = hasattr(bpy.types, "TRACE_PT_main")
report["file_handler_registered"] = hasattr(bpy.types, "TRACE_FH_video")
import trace_format.npz, trace_format.skeleton
report["result_file_module"] = trace_format.npz.__file__
report["skeleton_file"] = str(trace_format.skeleton.DEFAULT_SKELETON_PATH)
report["core_loaded"] = any(name.split(".")[0] == "core" or name.startswith(module + ".core")
                            for name in sys.modules)
report["skeleton_file_exists"] = os.path.isfile(report["skeleton_file"])
report["prefs_device"] = bpy.context.preferences.addons[module].preferences.device
report["import"] = sorted(bpy.ops.trace.import_result(filepath=result_path))
report["people"] = sorted(ob.name for ob in bpy.data.objects if ob.type == "ARMATURE")
report["cameras"] = sorted(ob.name for ob in bpy.data.objects if ob.type == "CAMERA")
# 4.4+: one slot per action (layered actions); 4.2/4.3 actions have no slots (the legacy path).
report["layered_actions"] = all(len(action.slots) == 1 if hasattr(action, "slots") else bpy.app.version < (4, 4, 0)
                                for action in bpy.data.actions)
report["torch_loaded"] = "torch" in sys.modules
addon_utils.disable(module, default_set=True)
report["enabled_after_disable"] = module in bpy.context.preferences.addons
report["panel_after_disable"] = hasattr(bpy.types, "TRACE_PT_main")
print("REPORT " + json.dumps(report))
'''


def load_build_module():
    spec = importlib.util.spec_from_file_location("trace_build", REPO_ROOT / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("dist")
    completed = subprocess.run([sys.executable, str(REPO_ROOT / "build.py"), "--output-dir", str(output)],
                               capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert completed.returncode == 0, completed.stderr
    path = Path(completed.stdout.strip().splitlines()[-1])
    assert path.parent == output and path.name == "trace_blender-0.1.0.zip"
    return path


def test_zip_contents_and_blender_validator(extension_zip):
    names = set(zipfile.ZipFile(extension_zip).namelist())
    wheel = "wheels/trace_format-0.1.0-py3-none-any.whl"
    addon_files = {path.relative_to(REPO_ROOT / "trace_blender").as_posix()
                   for path in (REPO_ROOT / "trace_blender").rglob("*.py")}
    assert {"__init__.py", "frames.py", "plan.py", "build/__init__.py", "build/armature.py", "runner.py"} <= addon_files
    # The add-on (its sub-packages included), the wheel and the manifest: nothing of core.
    assert names == addon_files | {"blender_manifest.toml", wheel}
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    with zipfile.ZipFile(extension_zip) as archive, zipfile.ZipFile(archive.open(wheel)) as wheel_archive:
        wheel_names = set(wheel_archive.namelist())
        record = wheel_archive.read("trace_format-0.1.0.dist-info/RECORD").decode()
    sources = {f"trace_format/{path.name}" for path in (REPO_ROOT / "trace_format").glob("*.py")}
    assert sources | {"trace_format/default_skeleton.json"} <= wheel_names
    assert {name for name in wheel_names if not name.startswith("trace_format-0.1.0.dist-info/")} == \
        sources | {"trace_format/default_skeleton.json"}
    assert all(f"{name},sha256=" in record for name in wheel_names if not name.endswith("RECORD"))
    import tomllib

    manifest = tomllib.loads(zipfile.ZipFile(extension_zip).read("blender_manifest.toml").decode())
    assert manifest["blender_version_min"] == "4.2.0"   # extensions exist from 4.2; 4.2/4.3 key via action.fcurves
    build = load_build_module()
    completed = subprocess.run([sys.executable, str(build.find_blender_ext_script()), "validate", str(extension_zip)],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_import_scan_rejects_what_the_zip_cannot_run(tmp_path):
    build = load_build_module()
    sample = tmp_path / "sample.py"
    sample.write_text("import numpy as np\nfrom . import sibling\n\ndef f():\n    import torch\n")
    assert [p for p in build.import_problems(sample) if "torch" in p]
    sample.write_text("from core.world import ground\n")
    assert "ships without the TRACE engine" in build.import_problems(sample)[0]
    sample.write_text("import cv2\n")
    assert build.import_problems(sample)
    sample.write_text("import requests\n")
    assert "third-party" in build.import_problems(sample)[0]
    sample.write_text("import json, os\nimport numpy, bpy\nfrom .build import armature\n")
    assert build.import_problems(sample) == []
    sample.write_text("from trace_format.fk import forward_kinematics\n")
    assert build.import_problems(sample) == []
    assert "must not import" in build.import_problems(sample, format_package=True)[0]
    sample.write_text("import bpy\n")
    assert "third-party" in build.import_problems(sample, format_package=True)[0]
    sample.write_text("import json\nimport numpy as np\nfrom .schema import TraceResult\n")
    assert build.import_problems(sample, format_package=True) == []


def test_installed_extension_imports_with_its_bundled_wheel(extension_zip, tmp_path):
    raw, truth = world_scene(tmp_path / "clip.mp4")   # two shots, three people, a scene camera (no video file)
    result_path = write_result(tmp_path / "clip.npz", world_result_from_truth(raw, truth))
    script = tmp_path / "installed_extension.py"
    script.write_text(f"REPO_ROOT = {str(REPO_ROOT)!r}\n" + INSTALLED_EXTENSION_SCRIPT)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "blender_user")
    completed = subprocess.run([sys.executable, str(script), str(extension_zip), str(result_path)], cwd=workdir,
                               env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("REPORT ")]
    assert completed.returncode == 0 and lines, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = json.loads(lines[-1][len("REPORT "):])
    assert report["core_visible"] is False and report["trace_blender_visible"] is False
    assert report["trace_format_visible"] is False
    assert report["install"] == ["FINISHED"] and report["enabled"] and report["panel_registered"]
    assert report["file_handler_registered"]
    assert report["core_loaded"] is False
    # trace_format comes from the wheel Blender installed for the extension, not from the repository.
    result_module, skeleton_file = Path(report["result_file_module"]), Path(report["skeleton_file"])
    assert result_module.parts[-2:] == ("trace_format", "npz.py") and skeleton_file.parent == result_module.parent
    assert (tmp_path / "blender_user") in result_module.parents and REPO_ROOT not in result_module.parents
    assert skeleton_file.name == "default_skeleton.json" and report["skeleton_file_exists"]
    assert report["prefs_device"] == "auto"
    assert report["import"] == ["FINISHED"] and report["people"] == ["clip_person1", "clip_person2", "clip_person3"]
    assert report["cameras"] == ["clip_shot0_camera", "clip_shot1_camera"] and report["layered_actions"]
    assert report["torch_loaded"] is False
    assert report["enabled_after_disable"] is False and report["panel_after_disable"] is False
