"""Build the Blender extension zip: `python build.py` -> dist/trace_blender-<version>.zip.

Stages a folder with the add-on package (trace_blender/*.py at the zip root), the manifest, the
`trace_format` package as a bundled wheel (`wheels/`, listed in the manifest's `wheels`; Blender
installs it next to the extension). Nothing of `core` is shipped. It checks by parsing every file
that nothing imports torch / cv2 / smplx / core (trace_format: nothing but the standard library and
numpy; the add-on: also trace_format and Blender's own modules), then runs Blender's own extension builder and validator
(`blender_ext.py`, shipped inside the bpy wheel) with this Python. Torch is not bundled: inference
runs in a separately installed core (see docs/blender.md).
"""
from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
ADDON_SOURCE = REPO_ROOT / "trace_blender"
MANIFEST = REPO_ROOT / "blender_manifest.toml"
FORMAT_PACKAGE = REPO_ROOT / "trace_format"
FORMAT_PACKAGE_DATA = ("default_skeleton.json",)
FORBIDDEN_MODULES = frozenset({"torch", "torchvision", "cv2", "smplx", "scipy", "chumpy"})
FORMAT_THIRD_PARTY = frozenset({"numpy"})
# io_scene_fbx: Blender's bundled FBX add-on (its pure-Python reader / writer post-process our FBX files).
ADDON_THIRD_PARTY = frozenset({"numpy", "trace_format", "bpy", "bpy_extras", "mathutils", "addon_utils",
                               "io_scene_fbx"})


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


def import_problems(path: Path, format_package: bool = False) -> list[str]:
    """Why a file could not run inside the extension (empty when it can)."""
    problems = []
    allowed = FORMAT_THIRD_PARTY if format_package else ADDON_THIRD_PARTY
    for module, level in imported_modules(path):
        if level:
            continue
        top = module.split(".")[0]
        if top in FORBIDDEN_MODULES:
            problems.append(f"{path}: imports {module} (the extension ships without {top})")
        elif top == "core":
            problems.append(f"{path}: imports {module} (the extension ships without the TRACE engine; "
                            "shared code belongs in trace_format)")
        elif format_package and top in ("trace_format", "trace_blender"):
            problems.append(f"{path}: trace_format must not import {module} (relative imports inside it only)")
        elif top not in sys.stdlib_module_names and top not in allowed and top != "__future__":
            problems.append(f"{path}: imports third-party module {module}")
    return problems


def format_version() -> str:
    """trace_format.__version__, read without importing the package."""
    tree = ast.parse((FORMAT_PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__version__"]:
            return str(ast.literal_eval(node.value))
    raise BuildError("trace_format/__init__.py defines no __version__")


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"sha256={digest}"


def build_format_wheel(output_dir: Path) -> Path:
    """A pure-Python wheel (PEP 427) of trace_format: its modules and package data, requiring numpy.

    Written with fixed timestamps, so the same sources give the same bytes.
    """
    version = format_version()
    sources = sorted(FORMAT_PACKAGE.glob("*.py")) + [FORMAT_PACKAGE / name for name in FORMAT_PACKAGE_DATA]
    problems = [p for source in sources if source.suffix == ".py"
                for p in import_problems(source, format_package=True)]
    if problems:
        raise BuildError("trace_format files that cannot run inside the extension:\n  " + "\n  ".join(problems))
    dist_info = f"trace_format-{version}.dist-info"
    entries = []
    for source in sources:
        if not source.is_file():
            raise BuildError(f"trace_format file missing: {source.relative_to(REPO_ROOT)}")
        entries.append((f"trace_format/{source.name}", source.read_bytes()))
    entries.append((f"{dist_info}/METADATA", (
        "Metadata-Version: 2.1\nName: trace_format\nVersion: " + version + "\n"
        "Summary: TRACE for Blender result files, SMPL file reader and rig math (numpy only)\n"
        "License: MIT\nRequires-Python: >=3.11\nRequires-Dist: numpy\n").encode()))
    entries.append((f"{dist_info}/WHEEL", (
        "Wheel-Version: 1.0\nGenerator: trace_blender build.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n").encode()))
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries)
    entries.append((f"{dist_info}/RECORD", (record + f"{dist_info}/RECORD,,\n").encode()))
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"trace_format-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return target


def manifest_wheels() -> list[str]:
    import tomllib

    with MANIFEST.open("rb") as stream:
        return list(tomllib.load(stream).get("wheels", []))


def stage(staging_dir: Path) -> list[Path]:
    """Copy everything the zip should hold into staging_dir; returns the staged files."""
    staged = []
    for source in sorted(ADDON_SOURCE.rglob("*.py")):
        staged.append(_copy(source, staging_dir / source.relative_to(ADDON_SOURCE)))
    wheel = build_format_wheel(staging_dir / "wheels")
    expected = f"./wheels/{wheel.name}"
    if manifest_wheels() != [expected]:
        raise BuildError(f"blender_manifest.toml must list wheels = [\"{expected}\"] (has {manifest_wheels()})")
    staged.append(wheel)
    staged.append(_copy(MANIFEST, staging_dir / MANIFEST.name))
    problems = []
    for path in staged:
        if path.suffix == ".py":
            problems += import_problems(path)
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
