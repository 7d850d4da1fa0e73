"""Errors inside Blender speak Blender: a short first line naming the preference to change, the core's
details after it without command-line flags; the interpreter hint names the Python the core needs and
never suggests running pip with a Python that is missing or of another version (no bpy needed)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from core import weights
from trace_blender import advice, runner
from trace_format.protocol import ExitCode

CLI_WORDS = ("--weights", "TRACE_WEIGHTS_DIR", "--offline", "TRACE_OFFLINE", "--smpl-model")
SHORT = 130   # characters of a first line that fits a Blender report without running across the status bar


def test_missing_weights_offline_names_allow_online_access_and_the_weights_folder(tmp_path):
    core_text = weights.weights_not_found_message(tmp_path, list(weights.WEIGHT_FILENAMES), offline=True)
    assert "--weights" in core_text and "TRACE_OFFLINE" in core_text      # the CLI wording it replaces
    message = advice.core_failure(core_text, ExitCode.WEIGHTS, online_access=False)
    first, *details = message.splitlines()
    assert len(first) <= SHORT
    assert advice.ONLINE_SETTING in first and advice.WEIGHTS_SETTING in first
    assert not any(word in message for word in CLI_WORDS)
    assert all(any(name in line for line in details) for name in weights.WEIGHT_FILENAMES)   # details kept
    online = advice.core_failure(core_text, ExitCode.WEIGHTS, online_access=True)
    assert advice.WEIGHTS_SETTING in online.splitlines()[0] and advice.ONLINE_SETTING not in online


def test_partial_official_install_and_smpl_model_errors_are_translated():
    partial = ("the official TRACE folder /home/u/.romp/TRACE_models holds only trace_head.pkl; ... or remove that "
               "folder to let trace-blender download all three into /x, or pass --weights DIR.")
    message = advice.core_failure(partial, ExitCode.WEIGHTS, code="weights_partial_official")
    assert "--weights" not in message and f"or set {advice.WEIGHTS_SETTING}" in message
    smpl = advice.core_failure("cannot read the SMPL model file x.pkl (pass --smpl-model FILE)", ExitCode.SMPL_MODEL)
    assert advice.SMPL_SETTING in smpl.splitlines()[0] and "--smpl-model" not in smpl
    assert advice.core_failure("no person was tracked in this video", ExitCode.NO_PERSON) == \
        "no person was tracked in this video"


def _fake_python(tmp_path: Path, version: str, has_core: bool) -> Path:
    path = tmp_path / f"python{version}"
    body = f"print({version!r}, flush=True)\n" + ("" if has_core else "raise SystemExit('No module named core')\n")
    path.write_text(f"#!{sys.executable}\nimport sys\nif sys.argv[1:2] == ['-c']:\n" +
                    "".join(f"    {line}\n" for line in body.splitlines()))
    os.chmod(path, 0o755)
    return path


def test_interpreter_hints_name_the_python_the_core_needs(tmp_path):
    missing = runner.check_core_interpreter(str(tmp_path / "no_python"), use_cache=False)
    assert "does not exist" in missing and "pip" not in missing and advice.CORE_PYTHON_TEXT in missing
    assert advice.PYTHON_SETTING in missing.splitlines()[0]
    other = runner.check_core_interpreter(str(_fake_python(tmp_path, "3.13", has_core=False)), use_cache=False)
    assert "is Python 3.13" in other and advice.CORE_PYTHON_TEXT in other and "pip" not in other
    without_core = str(_fake_python(tmp_path, "3.11", has_core=False))
    problem = runner.check_core_interpreter(without_core, use_cache=False)
    assert f"`{without_core} -m pip install -e" in problem and "No module named core" in problem
    for text in (missing, other, problem):
        assert len(text.splitlines()[0]) <= SHORT + len(str(tmp_path)) + 20   # the path is the only long part


def test_a_damaged_result_file_is_explained_to_whoever_received_it(tmp_path):
    import pytest

    pytest.importorskip("bpy")
    from helpers.factories import make_result
    from trace_format.npz import write_result

    from trace_blender import build
    from trace_blender.errors import ResultFileError

    good = write_result(tmp_path / "good.npz", make_result(people=1, frames=5))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(ResultFileError) as caught:
        build.read_result_file(cut)
    first = str(caught.value).splitlines()[0]
    assert "incomplete or damaged" in first and "get a complete copy" in first and "write it again" not in str(caught.value)
