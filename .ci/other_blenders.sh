#!/usr/bin/env bash
# The Blender test files again on the other supported Blenders (4.2 LTS, 4.5 LTS), each as a bpy module
# in its own virtual environment (the main environment keeps bpy 5.0.1, the tested reference).
# Usage: bash .ci/other_blenders.sh [VERSION ...]   (default: the LTS versions below)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
VERSIONS=("$@")
[ ${#VERSIONS[@]} -gt 0 ] || VERSIONS=(4.2.23 4.5.15)
# Files that need bpy; the runner and the pure-math tests do not depend on the Blender version.
FILES=(tests/test_blender_import.py tests/test_blender_export.py tests/test_export_clients.py tests/test_blender_world.py
       tests/test_blender_retarget.py tests/test_mannequin.py tests/test_blender_ui.py tests/test_blender_advice.py
       tests/test_blender_extension.py)
for version in "${VERSIONS[@]}"; do
  venv="${TMPDIR:-/tmp}/trace-bpy-$version"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import bpy, smplcodec" 2>/dev/null; then
    "$PY" -m venv "$venv"
    # numpy and OpenCV as in pyproject.toml (bpy pins numpy<2; OpenCV 4.10.0.84 is the last for numpy 1.26).
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "bpy==$version" "numpy==1.26.4" \
      "opencv-python-headless==4.10.0.84" "pytest>=8" "smplcodec==2.3.0"
  fi
  echo "== Blender $("$venv/bin/python" -c 'import bpy; print(bpy.app.version_string)') =="
  # os._exit: the bpy 4.2 module can crash while the interpreter shuts down, after every test has passed.
  PYTHONPATH="$PWD" "$venv/bin/python" -c 'import os, sys, pytest
code = pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:]])
sys.stdout.flush(); sys.stderr.flush(); os._exit(int(code))' "${FILES[@]}"
done
