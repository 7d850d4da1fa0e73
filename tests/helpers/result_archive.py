"""Rewrite a result archive with changed metadata or arrays, to build damaged/foreign files in tests."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np


def rewrite_result_archive(source: Path, target: Path, change: Callable[[dict, dict], None]) -> Path:
    """Copy `source` to `target` after `change(meta, arrays)` edited its JSON metadata / arrays in place."""
    with np.load(source, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(str(arrays["meta_json"][()]))
    change(meta, arrays)
    arrays["meta_json"] = np.array(json.dumps(meta))
    np.savez(target, **arrays)
    return target
