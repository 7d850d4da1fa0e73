#!/usr/bin/env bash
# Installs everything the project needs into the current Python 3.11 interpreter (use a venv if you
# prefer: `python3.11 -m venv .venv && . .venv/bin/activate` first).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python}
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (bpy 5.0 wheels exist only for 3.11)"'

# System libraries that bpy needs on a bare Debian/Ubuntu image (already present on most desktops).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! ldconfig -p | grep -q 'libXi.so.6'; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends \
    libx11-6 libxrender1 libxfixes3 libxi6 libxkbcommon0 libxext6 libsm6 libgl1 >/dev/null
fi

# PyTorch: an installed build is kept (e.g. a CUDA wheel from pytorch.org installed before this
# script); otherwise the CPU build 2.13.0.
if "$PY" -c 'import torch' 2>/dev/null; then
  echo "using the installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
  "$PY" -m pip install -q --disable-pip-version-check "torch==2.13.0"
fi
"$PY" -m pip install -q --disable-pip-version-check -e ".[blender,test]"

# Real readers the export tests run our files through (tests/test_export_clients.py): Assimp from
# Debian, three.js and Khronos glTF-Validator from npm (pinned in tests/clients/package-lock.json).
if ! command -v assimp >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends assimp-utils >/dev/null
  else
    echo "note: install assimp-utils (Debian/Ubuntu) for the export client tests; they skip without it" >&2
  fi
fi
if command -v npm >/dev/null; then
  (cd tests/clients && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
else
  echo "note: install node >= 18 and rerun for the export client tests (three.js, glTF-Validator); they skip without it" >&2
fi
"$PY" -c 'import torch, numpy, cv2, smplx, bpy; print("setup ok: torch", torch.__version__, "numpy", numpy.__version__, "opencv", cv2.__version__, "blender", bpy.app.version_string)'
