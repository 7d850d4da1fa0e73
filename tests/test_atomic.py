"""Atomic writes: the target appears only complete; errors leave no temp file and the old file intact."""
from __future__ import annotations

import pytest

from trace_format.atomic import atomic_open, atomic_path


def test_atomic_open_writes_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    with atomic_open(target, "wb") as handle:
        handle.write(b"hello")
        assert not target.exists()          # not visible under its name while being written
    assert target.read_bytes() == b"hello"
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]


def test_error_midway_keeps_the_previous_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as handle:
            handle.write("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_for_writers_that_take_a_name(tmp_path):
    target = tmp_path / "scene.blend"
    with atomic_path(target, suffix=".blend") as temporary:
        assert temporary.parent == tmp_path and temporary.name.endswith(".blend") and temporary.name.startswith(".")
        temporary.write_bytes(b"x")
    assert target.read_bytes() == b"x"
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "never.fbx"):
            pass                            # the writer wrote nothing: an error, not an empty file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.blend"]


def test_only_new_file_modes_are_accepted(tmp_path):
    with pytest.raises(ValueError):
        with atomic_open(tmp_path / "x", "ab"):
            pass
