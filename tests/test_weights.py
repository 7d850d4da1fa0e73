"""Weights folder, download (from a local HTTP server only: tests never touch the internet), messages."""
from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from core.errors import WeightsNotFoundError
from core.weights import (OFFICIAL_RELEASE_BASE_URL, WEIGHT_FILENAMES, default_weights_dir, download_file,
                          ensure_weight_files, missing_weight_files, release_url)


def test_default_folder_per_platform(tmp_path):
    home = Path("/home/ann")
    assert default_weights_dir({}, "linux", home) == home / ".local/share/trace-blender/weights"
    assert default_weights_dir({"XDG_DATA_HOME": "/data"}, "linux", home) == Path("/data/trace-blender/weights")
    assert default_weights_dir({}, "darwin", home) == home / "Library/Application Support/trace-blender/weights"
    assert default_weights_dir({"LOCALAPPDATA": "C:/Users/ann/AppData/Local"}, "win32", home) == \
        Path("C:/Users/ann/AppData/Local/trace-blender/weights")
    assert default_weights_dir({"TRACE_WEIGHTS_DIR": str(tmp_path), "XDG_DATA_HOME": "/data"}, "linux", home) == tmp_path


def test_official_release_urls():
    assert release_url("trace_head.pkl", None) == OFFICIAL_RELEASE_BASE_URL + "trace_head.pkl"
    assert OFFICIAL_RELEASE_BASE_URL == "https://github.com/Arthur151/ROMP/releases/download/V3.0/"
    assert set(WEIGHT_FILENAMES) == {"trace_head.pkl", "trace_image_backbone.pkl", "trace_motion_backbone.pth"}


def test_offline_message_names_files_and_folder(tmp_path):
    (tmp_path / "trace_head.pkl").write_bytes(b"x")
    assert missing_weight_files(tmp_path) == ["trace_image_backbone.pkl", "trace_motion_backbone.pth"]
    with pytest.raises(WeightsNotFoundError) as info:
        ensure_weight_files(tmp_path, offline=True)
    message = str(info.value)
    assert "weights not found" in message and str(tmp_path) in message and "offline" in message
    assert "trace_image_backbone.pkl" in message and "trace_motion_backbone.pth" in message
    assert "trace_head.pkl" not in message          # present files are not listed
    assert info.value.exit_code == 4


class _Server:
    """A tiny HTTP server on 127.0.0.1 serving `files` (name -> bytes); 'short:' names lie about length."""

    def __init__(self, files: dict[str, bytes]):
        files_ = files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                name = self.path.rsplit("/", 1)[-1]
                if name not in files_:
                    self.send_error(404)
                    return
                body = files_[name]
                self.send_response(200)
                claimed = len(body) * 2 if name.startswith("short") else len(body)
                self.send_header("Content-Length", str(claimed))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/release/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_missing_files_from_local_server(tmp_path):
    payload = {name: (name * 5000).encode() for name in WEIGHT_FILENAMES}
    (tmp_path / "trace_head.pkl").write_bytes(b"user copy")
    events = []
    with _Server(payload) as server:
        paths = ensure_weight_files(tmp_path, base_url=server.url,
                                    on_progress=lambda name, done, total: events.append((name, done, total)))
    assert paths["trace_image_backbone.pkl"].read_bytes() == payload["trace_image_backbone.pkl"]
    assert paths["trace_motion_backbone.pth"].read_bytes() == payload["trace_motion_backbone.pth"]
    assert paths["trace_head.pkl"].read_bytes() == b"user copy"       # existing files are not replaced
    assert ("trace_motion_backbone.pth", len(payload["trace_motion_backbone.pth"]),
            len(payload["trace_motion_backbone.pth"])) in events
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(WEIGHT_FILENAMES)   # no temp files left


def test_failed_download_leaves_nothing_and_explains(tmp_path):
    with _Server({"short.bin": b"12345"}) as server:
        with pytest.raises(OSError, match="stopped at 5 of 10 bytes"):
            download_file(server.url + "short.bin", tmp_path / "short.bin")
        with pytest.raises(WeightsNotFoundError) as info:
            ensure_weight_files(tmp_path / "w", base_url=server.url)
    assert "download of trace_image_backbone.pkl failed" in str(info.value)
    assert server.url + "trace_head.pkl" in str(info.value)
    assert list(tmp_path.iterdir()) == [tmp_path / "w"] and list((tmp_path / "w").iterdir()) == []


def test_unreachable_server_gives_the_not_found_message(tmp_path):
    # port 9 on localhost (discard) is closed: connection refused, as on a machine without internet
    with pytest.raises(WeightsNotFoundError, match="weights not found"):
        ensure_weight_files(tmp_path, base_url="http://127.0.0.1:9/")


# ------------------------------------------------------------------ search order, official install reuse
from core.weights import PartialOfficialInstallError, official_install_dir, resolve_weights_location


def _fill(folder: Path, names=WEIGHT_FILENAMES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")
    return folder


def test_search_order_explicit_then_env_then_official_then_per_user(tmp_path):
    home = tmp_path / "home"
    official = _fill(official_install_dir(home))
    assert official == home / ".romp" / "TRACE_models"
    env = {"TRACE_WEIGHTS_DIR": str(tmp_path / "env")}
    assert resolve_weights_location(tmp_path / "mine", env, "linux", home).folder == tmp_path / "mine"
    assert resolve_weights_location(tmp_path / "mine", env, "linux", home).source == "--weights"
    assert resolve_weights_location(None, env, "linux", home).folder == tmp_path / "env"
    location = resolve_weights_location(None, {}, "linux", home)
    assert (location.folder, location.source) == (official, "official install")     # used in place
    (official / "trace_head.pkl").unlink()
    _fill(home / ".local/share/trace-blender/weights")
    location = resolve_weights_location(None, {}, "linux", home)
    assert location.source == "per-user folder" and location.folder == home / ".local/share/trace-blender/weights"


def test_no_official_install_means_per_user_folder(tmp_path):
    home = tmp_path / "home"
    location = resolve_weights_location(None, {}, "linux", home)
    assert (location.folder, location.source) == (home / ".local/share/trace-blender/weights", "per-user folder")
    official_install_dir(home).mkdir(parents=True)           # an empty official folder changes nothing
    assert resolve_weights_location(None, {}, "linux", home).source == "per-user folder"


def test_partial_official_install_is_a_clear_error(tmp_path):
    home = tmp_path / "home"
    _fill(official_install_dir(home), ["trace_head.pkl"])
    with pytest.raises(PartialOfficialInstallError) as info:
        resolve_weights_location(None, {}, "linux", home)
    message = str(info.value)
    assert str(official_install_dir(home)) in message and "holds only trace_head.pkl" in message
    assert "trace_image_backbone.pkl" in message and "trace_motion_backbone.pth" in message and "--weights" in message
    assert info.value.exit_code == 4


def test_official_install_files_are_validated_in_place(tmp_path):
    """A file from another model in the official folder is refused by name, like any other file."""
    from core.checkpoints import CheckpointUnreadableError, validate_weights_dir

    home = tmp_path / "home"
    official = _fill(official_install_dir(home))
    location = resolve_weights_location(None, {}, "linux", home)
    with pytest.raises(CheckpointUnreadableError, match="trace_image_backbone.pkl"):
        validate_weights_dir(location.folder)


def test_run_reports_a_partial_official_install_by_name(tmp_path, monkeypatch):
    """The pipeline uses the search order: a half official install stops the run with exit 4, naming it."""
    import io

    from core.cli import main
    from helpers.preview_scene import write_plain_video

    home = tmp_path / "home"
    _fill(official_install_dir(home), ["trace_head.pkl"])
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("TRACE_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    video = write_plain_video(tmp_path / "clip.mp4", 64, 48, 4)
    err = io.StringIO()
    code = main(["run", str(video), "-o", str(tmp_path / "out"), "--offline"], stdout=io.StringIO(), stderr=err)
    assert code == 4 and "holds only trace_head.pkl" in err.getvalue()
