"""Real readers of our exports, driven from the tests: three.js loaders and Khronos glTF-Validator
(node, packages from tests/clients/package.json, installed by setup.sh) and Assimp (Debian's
`assimp-utils`). Each reader returns the same shape of answer:

    {"bones": {name: {"parent": name | None, "rest": [x, y, z], "bind": [x, y, z] | None}},
     "duration": seconds, "rate": keys per second or None, "key_counts": {track: n},
     "samples": {time: {name: [x, y, z]}}}    world positions, in the file's own axes and units

A missing reader skips the test with the install command; under CI (TRACE_REQUIRE_CLIENTS=1, set by
.ci/run) it fails instead, so CI can never pass without running them.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
INSTALL_HINT = {"node": "bash setup.sh (npm ci in tests/clients; needs node >= 18)",
                "assimp": "apt-get install assimp-utils (bash setup.sh does it as root)"}


def require(client: str) -> None:
    """Skip (or fail under CI) when a reader is not installed."""
    if client == "node":
        missing = shutil.which("node") is None or not (CLIENTS / "node_modules" / "three").is_dir() \
            or not (CLIENTS / "node_modules" / "gltf-validator").is_dir()
    else:
        missing = shutil.which("assimp") is None
    if missing:
        message = f"{client} reader missing: {INSTALL_HINT[client]}"
        if os.environ.get("TRACE_REQUIRE_CLIENTS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _run(command: list[str], timeout: float = 120) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=CLIENTS)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def validate_gltf(path: Path) -> dict:
    """The glTF-Validator report (issues.numErrors, numWarnings, messages)."""
    require("node")
    return json.loads(_run(["node", "validate_gltf.mjs", str(path)]))


def read_with_three(path: Path, times: list[float]) -> dict:
    """What three.js sees: GLTFLoader / FBXLoader / BVHLoader by extension, every clip playing."""
    require("node")
    report = json.loads(_run(["node", "read_with_three.mjs", str(path), ",".join(repr(float(t)) for t in times)]))
    bones = {b["name"]: {"parent": b["parent"], "rest": b["rest"], "bind": b["bind"]} for b in report["bones"]}
    if len(bones) != len(report["bones"]):
        names = [b["name"] for b in report["bones"]]
        raise AssertionError(f"three.js sees duplicate bone names: {sorted({n for n in names if names.count(n) > 1})}")
    tracks = [t for clip in report["clips"] for t in clip["tracks"]]
    rate = None
    if tracks and tracks[0]["count"] > 1:
        rate = (tracks[0]["count"] - 1) / (tracks[0]["last"] - tracks[0]["first"])
    return {"bones": bones, "duration": max((c["duration"] for c in report["clips"]), default=0.0), "rate": rate,
            "key_counts": {t["name"]: t["count"] for t in tracks},
            "first_key": min((t["first"] for t in tracks), default=None),
            "samples": {s["time"]: s["joints"] for s in report["samples"]}}


def _quaternion_matrix(wxyz: np.ndarray) -> np.ndarray:
    w, x, y, z = wxyz / np.linalg.norm(wxyz)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _key_at(keys: list, tick: float, ticks_per_second: float) -> np.ndarray:
    times = np.array([k[0] for k in keys], np.float64)
    values = np.array([k[1] for k in keys], np.float64)
    index = int(np.argmin(np.abs(times - tick)))
    if abs(times[index] - tick) > 1e-4 * ticks_per_second and len(times) > 1:
        raise AssertionError(f"assimp: no key at tick {tick} (keys at {times[:5]}...)")
    return values[index]


def read_with_assimp(path: Path, times: list[float]) -> dict:
    """What Assimp sees (`assimp export FILE out.json -fassjson`): nodes, bind offsets, keys."""
    require("assimp")
    with tempfile.TemporaryDirectory() as folder:
        dump = Path(folder) / "dump.json"
        _run(["assimp", "export", str(path), str(dump), "-fassjson"])
        data = json.loads(dump.read_text())
    nodes: dict[str, dict] = {}
    order: list[str] = []

    def walk(node: dict, parent: str | None) -> None:
        name = node["name"]
        if name in nodes:
            raise AssertionError(f"assimp sees the node name {name!r} twice")
        nodes[name] = {"parent": parent, "matrix": np.array(node["transformation"], np.float64).reshape(4, 4)}
        order.append(name)
        for child in node.get("children", []):
            walk(child, name)

    walk(data["rootnode"], None)

    def world(local: dict[str, np.ndarray]) -> dict[str, list[float]]:
        out: dict[str, np.ndarray] = {}
        for name in order:
            parent = nodes[name]["parent"]
            out[name] = local[name] if parent is None else out[parent] @ local[name]
        return {name: out[name][:3, 3].tolist() for name in order}

    rest_local = {name: node["matrix"] for name, node in nodes.items()}
    bind: dict[str, list[float]] = {}
    for mesh in data.get("meshes", []):
        for bone in mesh.get("bones", []):
            bind[bone["name"]] = np.linalg.inv(np.array(bone["offsetmatrix"], np.float64).reshape(4, 4))[:3, 3].tolist()
    animations = data.get("animations", [])
    samples: dict[float, dict] = {}
    duration, rate, key_counts, first_key = 0.0, None, {}, None
    if animations:
        animation = animations[0]
        ticks = float(animation.get("tickspersecond") or 0.0) or 1.0
        channels = {c["name"]: c for a in animations for c in a["channels"]}
        if len(channels) != sum(len(a["channels"]) for a in animations):
            raise AssertionError("assimp merged animation channels of equally named nodes")
        duration = float(animation["duration"]) / ticks
        longest = max((channel.get(k) or [] for channel in channels.values()
                       for k in ("positionkeys", "rotationkeys")), key=len)
        if len(longest) > 1:
            rate = (len(longest) - 1) * ticks / (longest[-1][0] - longest[0][0])
        for name, channel in channels.items():
            key_counts[name] = max(len(channel.get("rotationkeys", [])), len(channel.get("positionkeys", [])))
            for keys in ("positionkeys", "rotationkeys"):
                if channel.get(keys):
                    first = channel[keys][0][0] / ticks
                    first_key = first if first_key is None else min(first_key, first)
        for time in times:
            local = dict(rest_local)
            for name, channel in channels.items():
                matrix = local[name].copy()
                scale = np.linalg.norm(matrix[:3, :3], axis=0)
                rotation = matrix[:3, :3] / scale
                if channel.get("rotationkeys"):
                    rotation = _quaternion_matrix(_key_at(channel["rotationkeys"], time * ticks, ticks))
                if channel.get("scalingkeys"):
                    scale = _key_at(channel["scalingkeys"], time * ticks, ticks)
                matrix[:3, :3] = rotation * scale
                if channel.get("positionkeys"):
                    matrix[:3, 3] = _key_at(channel["positionkeys"], time * ticks, ticks)
                local[name] = matrix
            samples[time] = world(local)
    bones = {name: {"parent": nodes[name]["parent"], "rest": position, "bind": bind.get(name)}
             for name, position in world(rest_local).items()}
    return {"bones": bones, "duration": duration, "rate": rate, "key_counts": key_counts, "first_key": first_key,
            "samples": samples}
