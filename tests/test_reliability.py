"""Reliability: every fault is caught before the network runs, or survived after it (issue 13).

One test (or a parametrised group) per fault of the table "Faults and what happens" in docs/cli.md.
The network is the stand-in of tests/helpers/stand_in_network.py (real shapes, no weights), so the
whole command runs in-process in well under a second per case; the few subprocess tests exist
because their fault is the process itself (a closed stdout, a killed lock holder).
"""
from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from core import cli
from trace_format.atomic import (NAME_MAX_BYTES, FolderBusyError, FolderLock, atomic_open, atomic_path, fit_name,
                         probe_folder, remove_stale_temporaries, special_file_kind, temporary_path_for)
from core.errors import ExitCode
from core.progress import ProgressReporter
from trace_format.npz import read_result, write_result
from trace_format.schema import ResultFormatError
from trace_format.safe_pickle import (ArchiveError, ArchiveLimitError, ArchiveLimits, NpzArchive, UnsafePickleError,
                              UnsupportedPickleContentError, read_npz_member, restricted_loads)
from trace_format.smpl_file import SmplModelError, load_smpl_model_file
from core.video import MonotonicClock, VideoFileSource
from helpers.factories import make_result
from helpers.stand_in_network import StandInNetwork, loader

REPO_ROOT = Path(__file__).resolve().parents[1]


# --- helpers ---------------------------------------------------------------------------------------
def write_video(path: Path, frames: int = 10, size: tuple[int, int] = (64, 48), fps: float = 10.0) -> Path:
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture()
def video(tmp_path) -> Path:
    return write_video(tmp_path / "clip.avi")


def run_core(monkeypatch, *args, network: StandInNetwork | None = None, stdout=None
             ) -> tuple[int, list[dict], str, StandInNetwork]:
    """`python -m core run ARGS --progress-json` in-process with the stand-in network."""
    import core.pipeline.run

    network = network or StandInNetwork(2)
    monkeypatch.setattr(core.pipeline.run, "load_network", loader(network))
    out, err = stdout or io.StringIO(), io.StringIO()
    code = cli.main(["run", *map(str, args), "--progress-json", "--threads", "1"], stdout=out, stderr=err)
    text = out.getvalue() if isinstance(out, io.StringIO) else ""
    return code, [json.loads(line) for line in text.splitlines()], err.getvalue(), network


def usage_message(code: int, events: list[dict]) -> str:
    assert code == int(ExitCode.USAGE), events
    assert events[-1]["event"] == "error" and events[-1]["exit_code"] == 2, events
    return events[-1]["message"]


def write_npy_member(archive: zipfile.ZipFile, name: str, shape: tuple[int, ...], dtype, data_bytes: int,
                     compress: bool = True, header: dict | None = None) -> None:
    """A member `name.npy` whose header declares (shape, dtype) followed by `data_bytes` zero bytes."""
    info = zipfile.ZipInfo(name + ".npy")
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with archive.open(info, "w", force_zip64=True) as handle:
        np.lib.format.write_array_header_1_0(handle, header or {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape})
        chunk = b"\0" * (1 << 20)
        left = data_bytes
        while left > 0:
            left -= handle.write(chunk[:min(left, len(chunk))])


def zip_bomb(path: Path, member: str = "poses", megabytes: int = 64, dtype="<f4", extra=None) -> Path:
    """An .npz whose `member` is `megabytes` MiB of zeros deflated ~1000:1 (a 'zip bomb')."""
    count = (megabytes << 20) // np.dtype(dtype).itemsize
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in (extra or {}).items():
            with archive.open(name + ".npy", "w") as handle:
                np.lib.format.write_array(handle, array, allow_pickle=False)
        write_npy_member(archive, member, (count,), dtype, count * np.dtype(dtype).itemsize)
    return path


# === 5. Archive safety ============================================================================
def test_zip_bomb_result_is_refused_before_decompressing(tmp_path):
    result = write_result(tmp_path / "good.trace.npz", make_result(people=1, frames=20))
    with zipfile.ZipFile(result) as archive:
        meta = np.lib.format.read_array(io.BytesIO(archive.read("meta_json.npy")))
    bomb = zip_bomb(tmp_path / "bomb.trace.npz", "vertices_world", 64, extra={"meta_json": meta})
    assert bomb.stat().st_size < 200_000                        # 64 MiB declared, ~65 KB on disk
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ResultFormatError, match="zip bomb") as raised:
            read_result(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 2.0
    assert peak < 4 << 20, peak                                  # nothing of the 64 MiB was inflated
    assert "refused" in str(raised.value)


def test_declared_sizes_are_checked_from_headers_alone(tmp_path):
    # 10^10 elements declared in a 200-byte member: refused by the element limit, nothing allocated.
    huge = tmp_path / "huge.npz"
    with zipfile.ZipFile(huge, "w") as archive:
        write_npy_member(archive, "frames", (10 ** 10,), "<i8", 0, compress=False)
    with pytest.raises(ArchiveLimitError, match="elements"):
        NpzArchive(huge)
    # A header promising more data than the member holds: truncated, refused before reading.
    short = tmp_path / "short.npz"
    with zipfile.ZipFile(short, "w") as archive:
        write_npy_member(archive, "frames", (10 ** 6,), "<i8", 100, compress=False)
    with pytest.raises(ArchiveError, match="truncated"):
        NpzArchive(short)
    # Every documented limit is a field of ArchiveLimits (docs/cli.md).
    tight = ArchiveLimits(max_elements=10)
    with pytest.raises(ArchiveLimitError):
        with zipfile.ZipFile(tmp_path / "eleven.npz", "w") as archive:
            write_npy_member(archive, "a", (11,), "<f4", 44, compress=False)
        NpzArchive(tmp_path / "eleven.npz", tight)


def test_result_rows_are_checked_against_the_schema_before_reading(tmp_path):
    from helpers.result_archive import rewrite_result_archive

    good = write_result(tmp_path / "good.trace.npz", make_result(people=1, frames=20))
    bad = rewrite_result_archive(good, tmp_path / "bad.trace.npz",
                                 lambda meta, arrays: arrays.update(poses=np.zeros((21, 24, 3), np.float32)))
    with pytest.raises(ResultFormatError, match="'poses' has shape"):
        read_result(bad)


def test_reading_a_result_takes_about_its_own_size_in_memory(tmp_path):
    path = write_result(tmp_path / "big.trace.npz", make_result(people=2, frames=3000))
    size = path.stat().st_size
    tracemalloc.start()
    try:
        result = read_result(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.tracks[0].num_frames == 3000
    assert peak < 1.3 * size, (peak, size)                     # each array read once into its own buffer


def test_official_result_bomb_is_refused(tmp_path):
    bomb = zip_bomb(tmp_path / "trace2.npz", "outputs", 64, dtype="|O")
    with pytest.raises(ResultFormatError, match="refused"):
        read_result(bomb)


def test_smpl_npz_bomb_objects_and_pk_non_zip(tmp_path):
    from helpers.synthetic_smpl import write_synthetic_smpl_npz

    with pytest.raises(SmplModelError, match="zip bomb"):
        load_smpl_model_file(zip_bomb(tmp_path / "bomb.npz", "shapedirs", 64))
    objects = tmp_path / "objects.npz"
    np.savez(objects, weights=np.array([{"a": 1}], dtype=object))
    with pytest.raises(SmplModelError, match="stores pickled objects"):
        load_smpl_model_file(objects)
    fake = tmp_path / "fake.npz"
    fake.write_bytes(b"PK but really a text file\n" * 10)
    with pytest.raises(SmplModelError, match="starts with 'PK'") as raised:
        load_smpl_model_file(fake)
    assert "pickled" not in str(raised.value)
    assert load_smpl_model_file(write_synthetic_smpl_npz(tmp_path / "good.npz")).num_vertices > 0


def test_result_file_pk_non_zip_fifo_and_device(tmp_path):
    fake = tmp_path / "fake.trace.npz"
    fake.write_bytes(b"PK" + b"\1" * 200)
    with pytest.raises(ResultFormatError, match="not a TRACE result file"):
        read_result(fake)
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    with pytest.raises(ResultFormatError, match="named pipe"):
        read_result(fifo)
    with pytest.raises(ResultFormatError, match="a device"):
        read_result("/dev/zero")


def test_pickles_with_empty_arrays_load_and_bytes_cannot_allocate():
    import pickle

    for protocol in (0, 2, 4):
        loaded = restricted_loads(pickle.dumps({"empty": np.zeros((0, 3))}, protocol=protocol))
        assert loaded["empty"].shape == (0, 3)
    evil = b"\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00\x40\x85R."          # bytes(2**30)
    with pytest.raises(UnsafePickleError, match="empty bytes"):
        restricted_loads(evil)


def test_sparse_and_chumpy_expansions_are_bounded():
    from helpers.synthetic_smpl import dumps_foreign, scipy_csc

    sparse = scipy_csc(np.eye(3))
    sparse.__dict__["_shape"] = (200_000, 200_000)               # 4e10 dense elements from a tiny pickle
    with pytest.raises(UnsupportedPickleContentError, match="implausible shape"):
        restricted_loads(dumps_foreign(sparse))


def test_npz_member_reader_reads_object_arrays_within_limits(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, outputs=np.array({"a": np.arange(3)}), plain=np.arange(6).reshape(2, 3))
    assert read_npz_member(path, "outputs")[()]["a"].tolist() == [0, 1, 2]
    assert read_npz_member(path, "plain").tolist() == [[0, 1, 2], [3, 4, 5]]


# === 6. Atomic writes and clean errors ============================================================
def test_atomic_cleanup_never_masks_the_original_error(tmp_path, monkeypatch):
    target = tmp_path / "result.trace.npz"
    real_unlink = Path.unlink

    def failing_unlink(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", failing_unlink)
    with pytest.raises(OSError) as raised:
        with atomic_open(target) as handle:
            handle.write(b"x")
            raise OSError(28, "No space left on device")
    assert raised.value.errno == 28                              # the disk-full error, not the cleanup's
    monkeypatch.setattr(Path, "unlink", real_unlink)
    assert not target.exists()


def test_temporary_names_fit_every_file_system(tmp_path):
    long_name = "é" * 118 + ".trace.npz"                         # 246 bytes: fits, its temp name did not
    assert len(long_name.encode()) <= NAME_MAX_BYTES
    temporary = temporary_path_for(tmp_path / long_name)
    assert len(temporary.name.encode()) <= NAME_MAX_BYTES and temporary.name.endswith(".tmp")
    with atomic_open(tmp_path / long_name) as handle:
        handle.write(b"data")
    assert (tmp_path / long_name).read_bytes() == b"data"
    too_long = "x" * 300 + ".trace.npz"
    fitted = fit_name(too_long)
    assert len(fitted.encode()) == NAME_MAX_BYTES and fitted.endswith(".trace.npz") and fit_name(too_long) == fitted


def test_a_folder_is_not_an_output_file(tmp_path):
    with pytest.raises(IsADirectoryError):
        with atomic_path(tmp_path):
            pass
    with pytest.raises(IsADirectoryError):
        probe_folder(tmp_path)


def test_probe_finds_a_file_in_the_way_and_a_size_limit(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        probe_folder(blocker / "out" / "r.trace.npz")
    probe_folder(tmp_path / "new" / "r.trace.npz", 1 << 20)       # creates the folder, leaves nothing
    assert list((tmp_path / "new").iterdir()) == []


def test_folder_lock_refuses_a_second_holder_and_dies_with_its_process(tmp_path):
    with FolderLock(tmp_path):
        with pytest.raises(FolderBusyError, match=f"process {os.getpid()}"):
            FolderLock(tmp_path).acquire()
    FolderLock(tmp_path).acquire().release()                     # free again
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]);"
                               "from trace_format.atomic import FolderLock; lock = FolderLock(sys.argv[2]).acquire();"
                               "print('locked', flush=True); time.sleep(60)", str(REPO_ROOT), str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderBusyError):
            FolderLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    FolderLock(tmp_path).acquire().release()                     # SIGKILL left no stale lock


def test_stale_temporaries_of_killed_runs_are_found(tmp_path):
    stale = temporary_path_for(tmp_path / "clip.trace.npz")
    stale.write_bytes(b"half a result")
    other = tmp_path / ".notes.txt.0123456789ab.tmp"
    other.write_text("someone else's")
    keep = tmp_path / "clip.trace.npz"
    keep.write_text("complete")
    assert remove_stale_temporaries(tmp_path, ".trace.npz") == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([other.name, keep.name])


def test_special_files_are_named_in_user_terms(tmp_path, monkeypatch):
    fifo = tmp_path / "stream.mp4"
    os.mkfifo(fifo)
    assert special_file_kind(fifo) == "a named pipe (FIFO)"
    assert special_file_kind("/dev/urandom") == "a device"
    assert special_file_kind(tmp_path) is None
    for path, phrase in ((fifo, "named pipe"), (Path("/dev/urandom"), "a device")):
        code, events, _, _ = run_core(monkeypatch, path, "-o", tmp_path / "out")
        assert code == int(ExitCode.INPUT) and phrase in events[-1]["message"], events
        assert "0 bytes" not in events[-1]["message"]


# === 4. Timestamps and progress ===================================================================
def test_backwards_clock_is_repaired_monotonic_keeping_spacing():
    clock = MonotonicClock(10.0)
    raw = [0.0, 0.1, 0.2, 0.0, 0.1, 0.2, 0.2, 0.3]                 # two joined pieces, one repeated time
    repaired = [clock.repair(t) for t in raw]
    assert all(b > a for a, b in zip(repaired, repaired[1:]))
    assert np.allclose(np.diff(repaired[3:6]), 0.1)              # the second piece keeps its own timing
    assert clock.repaired == 2


def test_video_source_repairs_backwards_timestamps_and_flags_vfr(tmp_path, monkeypatch):
    path = write_video(tmp_path / "joined.avi", frames=12)
    times = iter([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    monkeypatch.setattr(VideoFileSource, "_timestamp_s", lambda self, index: next(times))
    source = VideoFileSource(path)
    stamps = [frame.timestamp_s for frame in source.frames()]
    source.close()
    assert len(stamps) == 12 and all(b > a for a, b in zip(stamps, stamps[1:]))
    assert source.info.variable_frame_rate and source.info.timestamps_repaired == 1


def test_progress_never_exceeds_its_total():
    stream = io.StringIO()
    reporter = ProgressReporter(json_stream=stream, human_stream=io.StringIO(), json_interval_s=0.0)
    reporter.begin_stage("inference", 10)
    for done in (8, 16, 20):
        reporter.update(done)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert all(e["done"] <= e["total"] for e in events) and events[-1]["done"] == 20


# === 6. stdout that breaks or is closed ===========================================================
class BrokenPipe(io.StringIO):
    def __init__(self, lines_before_break: int) -> None:
        super().__init__()
        self.left = lines_before_break

    def write(self, text: str) -> int:
        if self.left <= 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.left -= 1
        return super().write(text)


def test_a_reader_that_goes_away_never_fails_the_run(video, tmp_path, monkeypatch):
    code, _, stderr, _ = run_core(monkeypatch, video, "-o", tmp_path / "out", stdout=BrokenPipe(1))
    assert code == 0, stderr[-2000:]
    assert read_result(tmp_path / "out" / "clip.trace.npz").tracks
    assert "Traceback" not in stderr


def test_closed_and_broken_stdout_processes_exit_cleanly(tmp_path):
    """Real processes: fd 1 closed (pythonw, services) and a pipe whose reader quit (`| head -1`)."""
    missing = tmp_path / "missing.mp4"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    closed = subprocess.run([sys.executable, "-m", "core", "run", str(missing), "-o", str(tmp_path / "o")],
                            stdout=None, stderr=subprocess.PIPE, text=True, env=env, timeout=120,
                            preexec_fn=lambda: os.close(1))
    assert closed.returncode == int(ExitCode.INPUT), closed.stderr
    assert "error: input not found" in closed.stderr and "Traceback" not in closed.stderr
    reader, writer = os.pipe()
    os.close(reader)                                             # the reader is gone before the first line
    broken = subprocess.run([sys.executable, "-m", "core", "run", str(missing), "-o", str(tmp_path / "o"),
                             "--progress-json"], stdout=writer, stderr=subprocess.PIPE, text=True, env=env,
                            timeout=120)
    os.close(writer)
    assert broken.returncode == int(ExitCode.INPUT), broken.stderr
    assert "Traceback" not in broken.stderr and "BrokenPipe" not in broken.stderr


# === 1. Option values checked before anything runs ================================================
@pytest.mark.parametrize("args, option", [
    (("--fov", "inf"), "--fov"), (("--fov", "1e-300"), "--fov"), (("--fov", "nan"), "--fov"),
    (("--fov", "179.9"), "--fov"), (("--focal", "inf"), "--focal"), (("--focal", "nan"), "--focal"),
    (("--fps", "1e300"), "--fps"), (("--fps", "1e-300"), "--fps"), (("--fps", "nan"), "--fps"),
    (("--threads", "100000"), "--threads"), (("--stride", "0"), "--stride"),
    (("--tracking", "time2forget=1e400"), "--tracking"), (("--tracking", "time2forget=NaN"), "--tracking"),
    (("--tracking", "tracker_det_thresh=Infinity"), "--tracking"),
])
def test_out_of_range_options_are_usage_errors_naming_the_option(video, tmp_path, monkeypatch, args, option):
    code, events, stderr, network = run_core(monkeypatch, video, "-o", tmp_path / "out", *args)
    assert option in usage_message(code, events)
    assert "Traceback" not in stderr and not network.clip_sizes and not (tmp_path / "out").exists()


@pytest.mark.parametrize("setting, phrase", [
    ("time2forget=10000000000", "time2forget"), ("accept_new_dets=\"yes\"", "true or false"),
    ("subject_num=2.5", "whole number"), ("tracker_det_thresh=-0.1", "score threshold (>= 0)"),
    ("axis_times=[1,2]", "3 weights"), ("pose_smooth_coef=-1", "positive"),
])
def test_tracking_fields_are_typed_and_ranged(video, tmp_path, monkeypatch, setting, phrase):
    code, events, _, network = run_core(monkeypatch, video, "-o", tmp_path / "out", "--tracking", setting)
    assert phrase in usage_message(code, events) and not network.clip_sizes


# === 3. Non-finite checkpoints ====================================================================
def test_non_finite_checkpoint_is_refused_at_load():
    import torch

    from core.checkpoints import CheckpointNonFiniteError, check_state_dict, load_manifest

    state = {entry.key: torch.zeros(entry.shape, dtype=entry.dtype) for entry in load_manifest("head")}
    check_state_dict(state, "head")                              # zeros: fine
    name = next(key for key, tensor in state.items() if tensor.is_floating_point())
    state[name] = torch.full_like(state[name], math.nan)
    with pytest.raises(CheckpointNonFiniteError, match="NaN or infinite") as raised:
        check_state_dict(state, "head")
    assert name in str(raised.value) and raised.value.exit_code == ExitCode.WEIGHTS


# === 6. The importer: usage errors exit 2, outputs checked first, one `error:` line ================
@pytest.fixture()
def read_only_folder(tmp_path):
    """A folder nobody can write into: chmod for normal users; root needs the immutable attribute."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    if os.access(folder, os.W_OK):
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        (folder / "probe").touch()
    except OSError:
        pass
    else:
        (folder / "probe").unlink()
        pytest.skip("cannot make a read-only folder here (root without chattr)")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


def import_cli(capsys, *args) -> tuple[int, str]:
    from trace_blender import cli as import_command

    try:
        code = import_command.main(["import", *map(str, args)])
    except SystemExit as exit_:                                  # argparse's own usage errors
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args, phrase", [
    (("--frame-start", "-1000000000"), "--frame-start"), (("--frame-start", "2147483647"), "--frame-start"),
    (("--fps", "nan"), "--fps"), (("--fps", "inf"), "--fps"), (("--fps", "0"), "--fps"),
    (("--shot", "-1"), "--shot"), (("--frame-start", "ten"), "invalid int value"),
])
def test_importer_usage_errors_exit_2(tmp_path, capsys, args, phrase):
    result = write_result(tmp_path / "r.trace.npz", make_result(people=1, frames=5))
    code, stderr = import_cli(capsys, result, *args)
    assert code == 2 and phrase in stderr and "Traceback" not in stderr, stderr


def test_importer_refuses_a_folder_as_output_file(tmp_path, capsys):
    result = write_result(tmp_path / "r.trace.npz", make_result(people=1, frames=5))
    (tmp_path / "exports").mkdir()
    code, stderr = import_cli(capsys, result, "--fbx", tmp_path / "exports")
    assert code == 2 and "is a folder" in stderr and not (tmp_path / "exports.fbx").exists()


def test_importer_checks_output_folders_before_building(tmp_path, capsys, read_only_folder):
    result = write_result(tmp_path / "r.trace.npz", make_result(people=1, frames=5))
    code, stderr = import_cli(capsys, result, "--glb", read_only_folder / "out.glb")
    assert code == 7, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write into the folder") and ".tmp" not in stderr


def test_importer_frame_range_must_fit_blender():
    from trace_blender.cli import SCENE_FRAME_LIMIT, check_frame_range
    from trace_blender.errors import UsageError

    result = make_result(people=1, frames=100)
    check_frame_range(SCENE_FRAME_LIMIT - 200, result)
    with pytest.raises(UsageError, match="beyond Blender's limit"):
        check_frame_range(SCENE_FRAME_LIMIT - 50, result)


def test_exporter_failures_become_one_line():
    from trace_blender.errors import ExportError, OutputError

    blender_report = RuntimeError("Error: Python: Traceback (most recent call last):\n  File \"export_fbx.py\", "
                                  "line 3\nOSError: [Errno 28] No space left on device: '/d/.a.fbx.0123.tmp.fbx'\n")
    pytest.importorskip("bpy")
    from trace_blender.exporting import operator_failure

    error = operator_failure(blender_report, Path("/d"))
    assert isinstance(error, OutputError) and str(error) == "cannot write into the folder /d: the disk is full"
    other = operator_failure(RuntimeError("Error: Traceback ...\nValueError: bad armature\n"), Path("/d"))
    assert isinstance(other, ExportError) and str(other) == "export failed: ValueError: bad armature"


# === 1. The output folder is proven before the network loads ======================================
def assert_before_network(code: int, events: list[dict], network: StandInNetwork, exit_code: ExitCode,
                          name: str, *phrases: str) -> str:
    assert code == int(exit_code), events
    error = events[-1]
    assert error["event"] == "error" and error["code"] == name, error
    assert not network.clip_sizes, "the network ran"
    for phrase in phrases:
        assert phrase in error["message"], (phrase, error["message"])
    assert ".tmp" not in error["message"]
    return error["message"]


def test_read_only_output_folder_fails_before_the_network(video, monkeypatch, read_only_folder):
    code, events, _, network = run_core(monkeypatch, video, "-o", read_only_folder)
    assert_before_network(code, events, network, ExitCode.OUTPUT, "output_unwritable", str(read_only_folder))


def test_output_below_a_file_or_on_a_file(video, tmp_path, monkeypatch):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the folder should be")
    code, events, _, network = run_core(monkeypatch, video, "-o", blocker / "run1")
    assert_before_network(code, events, network, ExitCode.OUTPUT, "output_unwritable", "cannot write into the folder",
                          "part of the path is a file")
    code, events, _, network = run_core(monkeypatch, video, "-o", blocker)
    assert_before_network(code, events, network, ExitCode.USAGE, "usage", "is a file, not a folder")


def test_full_disk_fails_before_the_network(video, tmp_path, monkeypatch):
    import shutil

    import core.output

    monkeypatch.setattr(core.output.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10 << 30, 10 << 30, 1000))
    code, events, _, network = run_core(monkeypatch, video, "-o", tmp_path / "out")
    assert_before_network(code, events, network, ExitCode.OUTPUT, "output_unwritable", "MB free")
    assert not (tmp_path / "out").exists()                       # the folder it made is removed again


def test_input_names_too_long_for_the_result_name(tmp_path, monkeypatch):
    name = "ü" * 122 + ".avi"                                    # 248 bytes: '<stem>.trace.npz' would be 254+
    video = write_video(tmp_path / name)
    code, events, stderr, _ = run_core(monkeypatch, video, "-o", tmp_path / "out")
    assert code == 0, stderr[-2000:]
    written = Path(events[-1]["result"])
    assert len(written.name.encode()) <= NAME_MAX_BYTES and written.name.endswith(".trace.npz")
    assert read_result(written).tracks


def test_a_second_run_into_the_same_folder_is_refused(video, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    with FolderLock(out):
        code, events, _, network = run_core(monkeypatch, video, "-o", out)
    assert_before_network(code, events, network, ExitCode.OUTPUT, "output_busy", "another run", "another -o")
    code, _, stderr, _ = run_core(monkeypatch, video, "-o", out)
    assert code == 0, stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["clip.trace.npz"]   # no lock file left behind


def test_stale_temporary_files_are_removed_by_the_next_run(video, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    stale = temporary_path_for(out / "clip.trace.npz")
    stale.write_bytes(b"\0" * 100_000)                           # what a SIGKILL mid-write leaves
    code, _, stderr, _ = run_core(monkeypatch, video, "-o", out)
    assert code == 0 and "unfinished temporary file" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["clip.trace.npz"]


# === 2. Nothing computed is lost ==================================================================
class FolderVanishes(StandInNetwork):
    """Replaces OUT_DIR by a file while the network runs: the write after it must fail."""

    def __init__(self, folder: Path) -> None:
        super().__init__(2)
        self.folder = folder

    def run_clip(self, images_u8, stream, settings, capture=None):
        import shutil

        if self.folder.is_dir():
            shutil.rmtree(self.folder)
            self.folder.write_text("not a folder any more")
        return super().run_clip(images_u8, stream, settings, capture)


def test_a_write_failure_after_inference_keeps_the_result(video, tmp_path, monkeypatch):
    import core.output

    out, fallback = tmp_path / "out", tmp_path / "fallback"
    monkeypatch.setattr(core.output, "fallback_folders", lambda: [tmp_path / "blocked" / "x", fallback])
    (tmp_path / "blocked").write_text("")                        # the first fallback fails too
    code, events, stderr, network = run_core(monkeypatch, video, "-o", out, network=FolderVanishes(out))
    assert code == int(ExitCode.SAVED_ELSEWHERE), stderr[-2000:]
    done = events[-1]
    assert done["event"] == "done" and done["exit_code"] == 11
    saved = Path(done["result"])
    assert saved.parent == fallback and saved.name.startswith("clip.") and saved.name.endswith(".trace.npz")
    assert read_result(saved).tracks and network.clip_sizes
    warning = [e["message"] for e in events if e["event"] == "warning"][-1]
    assert str(out) in warning and str(saved) in warning and ".tmp" not in warning
    assert "Traceback" not in stderr


def test_when_no_folder_takes_the_result_the_message_says_so(video, tmp_path, monkeypatch):
    import core.output

    (tmp_path / "blocked").write_text("")
    monkeypatch.setattr(core.output, "fallback_folders", lambda: [tmp_path / "blocked" / "x"])
    out = tmp_path / "out"
    code, events, stderr, _ = run_core(monkeypatch, video, "-o", out, network=FolderVanishes(out))
    assert code == int(ExitCode.OUTPUT) and events[-1]["code"] == "output_unwritable", stderr[-2000:]
    assert "Nothing was saved" in events[-1]["message"] and "Traceback" not in stderr


def stop_reading_after(monkeypatch, frames: int) -> None:
    """Every video decodes `frames` frames, then fails like a truncated file."""
    from core.errors import FrameReadError

    original = VideoFileSource.frames

    def frames_then_failure(self, frame_range=None):
        for count, frame in enumerate(original(self) if frame_range is None else original(self, frame_range)):
            if count == frames:
                raise FrameReadError(f"could not decode frame {frame.index}", frame.index, frame.index - 1)
            yield frame
    monkeypatch.setattr(VideoFileSource, "frames", frames_then_failure)


def test_a_partial_result_never_replaces_a_complete_one(video, tmp_path, monkeypatch):
    out = tmp_path / "out"
    code, _, _, _ = run_core(monkeypatch, video, "-o", out)
    assert code == 0
    complete = out / "clip.trace.npz"
    before = complete.read_bytes()
    stop_reading_after(monkeypatch, 5)
    code, events, stderr, _ = run_core(monkeypatch, video, "-o", out)
    assert code == int(ExitCode.PARTIAL), stderr[-2000:]
    partial = out / "clip.partial.trace.npz"
    assert events[-1]["result"] == str(partial) and "was kept" in events[-2]["message"]
    assert complete.read_bytes() == before and read_result(complete).tracks[0].num_frames == 10
    assert read_result(partial).frames_processed.stopped_early
    # A partial result under the main name (an earlier partial run) is simply replaced.
    complete.unlink()
    partial.rename(complete)
    code, events, _, _ = run_core(monkeypatch, video, "-o", out)
    assert code == int(ExitCode.PARTIAL) and events[-1]["result"] == str(complete)


# === 3. Bad numbers from the network ==============================================================
class NonFiniteNetwork(StandInNetwork):
    """Person 1 gets a NaN pose in one row and an infinite cam scale in another; person 2 is all NaN."""

    def run_clip(self, images_u8, stream, settings, capture=None):
        output = super().run_clip(images_u8, stream, settings, capture)
        n = len(images_u8)
        first = stream["clips"] == 1
        if first:
            output.params_pred[2, 10] = float("nan")             # person 1, frame 2
            output.cam[4, 0] = float("inf")                      # person 1, frame 4: inf scale -> "z = 0"
        output.params_pred[n:2 * n, :] = float("nan")            # person 2 (rows n..2n-1), every frame
        return output


def test_non_finite_network_rows_are_infilled_not_fatal(video, tmp_path, monkeypatch):
    code, events, stderr, _ = run_core(monkeypatch, video, "-o", tmp_path / "out", network=NonFiniteNetwork(2))
    assert code == 0, stderr[-2000:]
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert any("NaN or infinite" in w and "1 track(s) without a single good row dropped" in w for w in warnings)
    result = read_result(Path(events[-1]["result"]))
    assert [t.track_id for t in result.tracks] == [1]
    track = result.tracks[0]
    assert track.num_frames == 10 and np.all(np.isfinite(track.poses)) and np.all(np.isfinite(track.hip_center_cam))
    assert not track.observed[2] and not track.observed[4] and track.confidence[2] == 0.0
    assert np.array_equal(track.poses[2], track.poses[1]) and track.hip_center_cam[4, 2] > 0.1   # not at the camera
    assert any("NaN or infinite" in note for note in result.notes)


def test_infill_fills_from_the_nearest_earlier_good_row():
    from core.pipeline import FINITE_FIELDS, infill_non_finite_rows

    rows = 5
    track = {name: np.arange(rows, dtype=np.float64).reshape(rows, 1) for name in FINITE_FIELDS}
    track.update(observed=np.ones(rows, bool), non_finite=np.array([True, False, True, True, False]))
    filled = infill_non_finite_rows(track)
    assert filled["poses"][:, 0].tolist() == [1, 1, 1, 1, 4]     # row 0 has no earlier row: the next good one
    assert filled["observed"].tolist() == [False, True, False, False, True]
    assert infill_non_finite_rows(dict(track, non_finite=np.ones(rows, bool))) is None


# === 4. Timestamps end to end =====================================================================
def test_backwards_clock_gives_a_valid_result_with_a_warning(video, tmp_path, monkeypatch):
    times = iter([0.0, 0.1, 0.2, 0.3, 0.4, 0.0, 0.1, 0.2, 0.3, 0.4])   # two joined recordings
    monkeypatch.setattr(VideoFileSource, "_timestamp_s", lambda self, index: next(times))
    code, events, stderr, _ = run_core(monkeypatch, video, "-o", tmp_path / "out")
    assert code == 0, stderr[-2000:]
    assert any("clock went backwards" in e["message"] for e in events if e["event"] == "warning")
    result = read_result(Path(events[-1]["result"]))
    assert result.video.variable_frame_rate
    assert all(np.all(np.diff(track.times) > 0) for track in result.tracks)
    progress = [e for e in events if e["event"] == "progress"]
    assert all(e["done"] <= e["total"] for e in progress)


@pytest.mark.parametrize("args, option", [(("--focal", "1e-300"), "--focal"), (("--focal", "1e9"), "--focal"),
                                          (("--tracking", "accept_new_dets=\"yes\""), "--tracking")])
def test_options_checked_against_the_video_name_the_option(video, tmp_path, monkeypatch, args, option):
    code, events, _, network = run_core(monkeypatch, video, "-o", tmp_path / "out", *args)
    assert usage_message(code, events).startswith(option) and not network.clip_sizes


# === Real processes: a file-size limit, and a closed stdout on a whole run ========================
STAND_IN_CORE = ("import sys; sys.path[:0] = [sys.argv.pop(1), sys.argv.pop(1)]; import core.pipeline.run;"
                 "from helpers.stand_in_network import StandInNetwork, loader;"
                 "core.pipeline.run.load_network = loader(StandInNetwork(2));"
                 "from core.cli import exit_status, main; raise SystemExit(exit_status(main(sys.argv[1:])))")


def run_stand_in_process(*args, **kwargs) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", STAND_IN_CORE, str(REPO_ROOT), str(REPO_ROOT / "tests"), "run",
               *map(str, args), "--threads", "1"]
    return subprocess.run(command, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), **kwargs)


def test_file_size_limit_and_closed_stdout_in_real_processes(video, tmp_path):
    import resource

    limited = run_stand_in_process(video, "-o", tmp_path / "limited", "--progress-json", capture_output=True,
                                   preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)))
    assert limited.returncode == int(ExitCode.OUTPUT), limited.stderr[-2000:]
    error = json.loads(limited.stdout.splitlines()[-1])
    assert error["code"] == "output_unwritable" and "file size limit" in error["message"]
    assert "inference" not in limited.stdout and "Traceback" not in limited.stderr
    closed = run_stand_in_process(video, "-o", tmp_path / "closed", stderr=subprocess.PIPE,
                                  preexec_fn=lambda: os.close(1))
    assert closed.returncode == 0, closed.stderr[-2000:]
    assert read_result(tmp_path / "closed" / "clip.trace.npz").tracks and "Traceback" not in closed.stderr


# === The preview video: its output checked first, and never the cause of a lost run ===============
def test_preview_output_problems_are_named_before_drawing(video, tmp_path, monkeypatch):
    code, events, stderr, _ = run_core(monkeypatch, video, "-o", tmp_path / "out")
    assert code == 0, stderr[-2000:]
    result = events[-1]["result"]
    blocker = tmp_path / "previews"
    blocker.write_text("a file where the folder should be")
    for target, expected, phrase in ((tmp_path, ExitCode.USAGE, "is a folder"),
                                     (blocker / "p.mp4", ExitCode.OUTPUT, "a file of that name is in the way")):
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(["preview", result, "-o", str(target), "--progress-json"], stdout=out, stderr=err)
        error = json.loads(out.getvalue().splitlines()[-1])
        assert code == int(expected) and error["event"] == "error" and phrase in error["message"], err.getvalue()
        assert "Traceback" not in err.getvalue()


def test_a_preview_that_cannot_be_written_keeps_the_run(video, tmp_path, monkeypatch):
    import errno

    import core.preview

    def disk_full(options, on_progress=None):
        raise OSError(errno.ENOSPC, "No space left on device", str(options.output_path))
    monkeypatch.setattr(core.preview, "render_preview", disk_full)
    code, events, stderr, _ = run_core(monkeypatch, video, "-o", tmp_path / "out", "--preview")
    assert code == 0, stderr[-2000:]
    assert events[-1]["event"] == "done" and "preview" not in events[-1]
    assert read_result(Path(events[-1]["result"])).tracks
    warning = [e["message"] for e in events if e["event"] == "warning"][-1]
    assert "preview video was not written" in warning and "is complete" in warning


def test_extra_regressor_npy_declaring_more_than_it_holds_is_refused_before_allocating(tmp_path):
    from numpy.lib import format as npy_format

    import core.checkpoints  # noqa: F401  (imported by the loader: torch's import must not count below)
    from core.smpl.extra_regressor import ExtraRegressorError, load_extra_regressor

    huge = tmp_path / "J_regressor_extra.npy"                  # 10^12 float64 declared, 200 bytes on disk
    with open(huge, "wb") as handle:
        npy_format.write_array_header_1_0(handle, {"descr": "<f8", "fortran_order": False, "shape": (9, 10 ** 11)})
        handle.write(b"\0" * 200)
    tracemalloc.start()
    try:
        with pytest.raises(ExtraRegressorError, match="limit"):
            load_extra_regressor(huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    short = tmp_path / "short.npy"                             # within the limits but truncated
    with open(short, "wb") as handle:
        npy_format.write_array_header_1_0(handle, {"descr": "<f8", "fortran_order": False, "shape": (9, 6890)})
        handle.write(b"\0" * 1000)
    with pytest.raises(ExtraRegressorError, match="truncated"):
        load_extra_regressor(short)
