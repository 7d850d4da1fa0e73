"""Our exports read by real clients nobody on this project wrote: Khronos glTF-Validator, three.js
GLTFLoader / FBXLoader / BVHLoader (node) and Assimp. Every preset, one person and several per file:
world joints within 1 mm of what Blender shows, rest = the T-pose of the imported rest skeleton,
video frame 0 at t = 0, exact duration and rate, unique bone names.

The readers are installed by setup.sh (npm ci in tests/clients, apt-get install assimp-utils); where
one is missing the test skips with the install command, and fails instead under CI
(TRACE_REQUIRE_CLIENTS=1, set by .ci/run).
"""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from helpers import clients  # noqa: E402
from helpers.blender import evaluated_bone_heads  # noqa: E402
from helpers.factories import make_result  # noqa: E402

from trace_blender import build, export_rig, exporting, plan  # noqa: E402
from trace_blender.build.armature import JOINT_NAMES  # noqa: E402

NUM_FRAMES = 24
OFFSETS = (0, 5)             # person 2 starts later: it holds its first pose before that
FPS = 30.0
TOLERANCE_M = 1e-3           # the issue's bar; measured errors are ~5e-6 m
READERS = {"three": clients.read_with_three, "assimp": clients.read_with_assimp}


@pytest.fixture(scope="module")
def scene():
    """Two imported people (mannequin bodies) and, per person, what Blender shows at every export frame."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = make_result(people=2, frames=NUM_FRAMES, seed=5, fps=FPS, offsets=OFFSETS)
    summary = build.import_result(result, bpy.context, plan.ImportOptions(build_camera=False), source_path="walk.npz")
    frames = exporting.export_frames(bpy.context.scene)
    people = {}
    for person in summary.people:
        armature = person.armature
        rest = np.array([np.array(armature.data.bones[n].head_local) for n in JOINT_NAMES])
        heads = np.array([evaluated_bone_heads(bpy, armature, f) for f in frames])
        people[armature.name] = {"armature": armature, "rest": rest, "heads": heads}
    return {"people": people, "frames": frames}


def exported(scene, tmp_path, export_format, names=None, per_person=False):
    armatures = [p["armature"] for n, p in scene["people"].items() if names is None or n in names]
    return exporting.export_people(bpy.context, armatures, tmp_path / "people", export_format, per_person=per_person)


def bone_names_of(person: str, export_format: str, several: bool) -> list[str]:
    """Exported bone names in SMPL joint order (the Unreal `root` bone first)."""
    prefix = export_rig.ascii_identifier(person) + "_" if several else ""
    return export_rig.preset_bone_names(exporting.PRESET_OF_FORMAT[export_format], prefix)


def check_reader(report: dict, scene: dict, export_format: str, people: list[str], sample_frames: list[int]) -> None:
    preset = exporting.PRESET_OF_FORMAT[export_format]
    axes, units = export_rig.ENGINE_AXES[preset], export_rig.ENGINE_UNITS[preset]
    count = len(scene["frames"])
    assert report["duration"] == pytest.approx((count - 1) / FPS, abs=1e-5)
    assert report["rate"] == pytest.approx(FPS, rel=1e-5)
    assert report["first_key"] == pytest.approx(0.0, abs=1e-6)          # video frame 0 at t = 0
    assert max(report["key_counts"].values()) == count                   # every frame, nothing more
    for person in people:
        names = bone_names_of(person, export_format, several=len(people) > 1)
        if preset == "unreal":
            root = names.pop(0)
            assert report["bones"][names[0]]["parent"] == root
        missing = [n for n in names if n not in report["bones"]]
        assert not missing, f"bones missing for {person}: {missing}"
        expected = scene["people"][person]
        rest = np.array([report["bones"][n]["rest"] for n in names]) / units @ axes
        expected_rest = expected["rest"]
        if preset == "bvh":      # BVH's root OFFSET is zero (its position channels are absolute)
            expected_rest = expected_rest - expected_rest[0]
        np.testing.assert_allclose(rest, expected_rest, atol=TOLERANCE_M)   # node defaults = the T-pose rest
        for frame in sample_frames:
            got = np.array([report["samples"][frame / FPS][n] for n in names]) / units @ axes
            error = np.abs(got - expected["heads"][frame]).max()
            assert error < TOLERANCE_M, f"{person} frame {frame}: joints {error * 1000:.2f} mm off"


SAMPLE_FRAMES = [0, 3, NUM_FRAMES // 2, NUM_FRAMES + max(OFFSETS) - 1]


@pytest.mark.parametrize("export_format", ["unity", "unreal", "gltf"])
@pytest.mark.parametrize("several", [True, False], ids=["several", "one"])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_clients_see_every_person_where_blender_shows_it(scene, tmp_path, export_format, several, reader):
    people = sorted(scene["people"]) if several else sorted(scene["people"])[1:]
    (path,) = exported(scene, tmp_path, export_format, names=people)
    report = READERS[reader](path, [f / FPS for f in SAMPLE_FRAMES])
    check_reader(report, scene, export_format, people, SAMPLE_FRAMES)


def test_bvh_reads_right_in_three_and_assimp(scene, tmp_path):
    person = sorted(scene["people"])[1]
    (path,) = exported(scene, tmp_path, "bvh", names=[person])
    for reader in READERS.values():
        check_reader(reader(path, [f / FPS for f in SAMPLE_FRAMES]), scene, "bvh", [person], SAMPLE_FRAMES)


@pytest.mark.parametrize("several", [True, False], ids=["several", "one"])
def test_glb_passes_the_khronos_validator(scene, tmp_path, several):
    people = sorted(scene["people"]) if several else sorted(scene["people"])[:1]
    (path,) = exported(scene, tmp_path, "gltf", names=people)
    report = clients.validate_gltf(path)
    issues = report["issues"]
    assert (issues["numErrors"], issues["numWarnings"]) == (0, 0), issues["messages"]
    info = report["info"]
    assert (info["animationCount"], info["hasSkins"], info["drawCallCount"]) == (1, True, len(people))


def test_validator_and_readers_reject_a_broken_file(scene, tmp_path):
    """The checks can fail: a GLB with its joints moved is caught by the joint comparison, a truncated
    one by the Validator."""
    (path,) = exported(scene, tmp_path, "gltf", names=sorted(scene["people"])[:1])
    data = path.read_bytes()
    truncated = tmp_path / "truncated.glb"
    truncated.write_bytes(data[: len(data) // 2])
    assert clients.validate_gltf(truncated)["issues"]["numErrors"] > 0
    person = sorted(scene["people"])[0]
    shifted = dict(scene, people={person: dict(scene["people"][person], heads=scene["people"][person]["heads"] + 0.01)})
    report = clients.read_with_three(path, [f / FPS for f in SAMPLE_FRAMES])
    with pytest.raises(AssertionError, match="mm off"):
        check_reader(report, shifted, "gltf", [person], SAMPLE_FRAMES)
