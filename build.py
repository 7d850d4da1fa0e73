"""Build the Blender extension zip: `python build.py` -> dist/trace_blender-<version>.zip.

Stages a folder with the add-on package (trace_blender/*.py at the zip root), the manifest, the
torch-free part of `core` (result file, SMPL reader, rig math, world) vendored as the sub-package
`core/` and `assets/default_skeleton.json` (same relative place as in the repository, so
core/rig/skeleton.py finds it in both), checks by parsing every staged file that nothing imports
torch / cv2 / smplx (nor any third-party package but numpy, nor the top-level `core` from inside
the vendored copy), then runs Blender's own
extension builder and validator (`blender_ext.py`, shipped inside the bpy wheel) with this Python.
Torch is not bundled: inference runs in a separately installed core (see docs/blender.md).
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
ADDON_SOURCE = REPO_ROOT / "trace_blender"
MANIFEST = REPO_ROOT / "blender_manifest.toml"
# The torch-free core modules the add-on needs (docs/architecture.md, "Import rules").
VENDORED_CORE_FILES = (
    "core/__init__.py",
    "core/atomic.py",
    "core/result_file.py",
    "core/official_result.py",
    "core/safe_pickle.py",
    "core/smpl/__init__.py",
    "core/smpl/model_file.py",
)
# core/world: the add-on needs its camera/lens helpers; the whole package is numpy-only by contract
# (docs/architecture.md), so a file there that needs more fails the build instead of being dropped.
VENDORED_CORE_GLOBS = ("core/rig/*.py", "core/world/*.py")
ASSETS = ("assets/default_skeleton.json",)
FORBIDDEN_MODULES = frozenset({"torch", "torchvision", "cv2", "smplx", "scipy", "chumpy"})
ALLOWED_THIRD_PARTY = frozenset({"numpy"})
ADDON_THIRD_PARTY = frozenset({"numpy", "bpy", "bpy_extras", "mathutils", "addon_utils"})


class BuildError(Exception):
    """The extension cannot be built; the message says which file or tool is at fault."""


def find_blender_ext_script() -> Path:
    """blender_ext.py from the installed bpy wheel (Blender's own builder / validator)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("the bpy module is not installed: `pip install bpy==5.0.1` (it ships Blender's extension "
                         "builder), or run `blender --command extension build` in a staged folder yourself")
    for location in spec.submodule_search_locations:
        matches = sorted(Path(location).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if matches:
            return matches[-1]
    raise BuildError(f"blender_ext.py not found inside the bpy package at {list(spec.submodule_search_locations)}")


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """(module, level) of every import statement in a file, including those inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


def import_problems(path: Path, vendored_core: bool) -> list[str]:
    """Why a staged file could not run inside the extension (empty when it can)."""
    problems = []
    allowed = ALLOWED_THIRD_PARTY if vendored_core else ADDON_THIRD_PARTY
    for module, level in imported_modules(path):
        if level:
            continue
        top = module.split(".")[0]
        if top in FORBIDDEN_MODULES:
            problems.append(f"{path}: imports {module} (the extension ships without {top})")
        elif vendored_core and top == "core":
            problems.append(f"{path}: absolute import of {module}; vendored core modules must use relative imports")
        elif top not in sys.stdlib_module_names and top not in allowed and top != "__future__":
            if not (not vendored_core and top == "core"):
                problems.append(f"{path}: imports third-party module {module}")
    return problems


def _core_sources() -> list[Path]:
    files = []
    for relative in VENDORED_CORE_FILES:
        path = REPO_ROOT / relative
        if not path.is_file():
            raise BuildError(f"required core module missing: {relative}")
        files.append(path)
    for pattern in VENDORED_CORE_GLOBS:
        matched = sorted(REPO_ROOT.glob(pattern))
        if not matched:
            raise BuildError(f"no files match {pattern}")
        files.extend(matched)
    return files


def stage(staging_dir: Path) -> list[Path]:
    """Copy everything the zip should hold into staging_dir; returns the staged files."""
    staged = []
    for source in sorted(ADDON_SOURCE.glob("*.py")):
        staged.append(_copy(source, staging_dir / source.name))
    for source in _core_sources():
        staged.append(_copy(source, staging_dir / source.relative_to(REPO_ROOT)))
    for relative in ASSETS:
        source = REPO_ROOT / relative
        if not source.is_file():
            raise BuildError(f"asset missing: {relative}")
        staged.append(_copy(source, staging_dir / relative))
    staged.append(_copy(MANIFEST, staging_dir / MANIFEST.name))
    problems = []
    for path in staged:
        if path.suffix == ".py":
            problems += import_problems(path, vendored_core=path.relative_to(staging_dir).parts[0] == "core")
    if problems:
        raise BuildError("files that cannot run inside the extension:\n  " + "\n  ".join(problems))
    return staged


def _copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return target


def _run_tool(script: Path, *arguments: str) -> str:
    completed = subprocess.run([sys.executable, str(script), *arguments], capture_output=True, text=True)
    output = (completed.stdout + completed.stderr).strip()
    if completed.returncode != 0:
        raise BuildError(f"blender_ext.py {arguments[0]} failed (exit {completed.returncode}):\n{output}")
    return output


def manifest_version() -> str:
    import tomllib

    with MANIFEST.open("rb") as stream:
        manifest = tomllib.load(stream)
    return f"{manifest['id']}-{manifest['version']}"


def build(output_dir: Path) -> Path:
    """Stage, scan, build with Blender's builder, validate; returns the zip path."""
    script = find_blender_ext_script()
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{manifest_version()}.zip"
    with tempfile.TemporaryDirectory(prefix="trace_blender_stage_") as temporary:
        staging = Path(temporary) / "trace_blender"
        staging.mkdir()
        stage(staging)
        _run_tool(script, "validate", str(staging))
        partial = output_dir / f".{target.name}.partial.zip"
        try:
            _run_tool(script, "build", "--source-dir", str(staging), "--output-filepath", str(partial))
            _run_tool(script, "validate", str(partial))
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "dist", help="where the zip goes (dist/)")
    arguments = parser.parse_args(argv)
    try:
        target = build(arguments.output_dir)
    except BuildError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
