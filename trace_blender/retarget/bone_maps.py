"""Which target bone plays which SMPL joint: rig families, an automatic map, checks and presets.

numpy-free and bpy-free (standard library only). A bone map is a plain dict
`{SMPL joint name: target bone name}`; joints that are not in it are unmapped (their target bones,
if any, follow their parents). Families:

* `mixamo`   Mixamo characters (`mixamorig:Hips` ..., any `prefix:` namespace or none)
* `ue5`      Unreal Engine 5 mannequin Manny / Quinn (`pelvis`, `spine_01..05`, `thigh_l` ...; the
             UE4 mannequin's `spine_01..03` work too)
* `rigify`   a Rigify metarig (`spine`, `spine.001` ..., `thigh.L`) or a generated Rigify rig (its FK
             controls `torso`, `hips`, `thigh_fk.L` ...; the IK/FK switches must be on FK)
* `vrm`      VRM humanoid bone names (`hips`, `leftUpperLeg` ...) and VRoid's `J_Bip_*` names
* `auto`     by name tokens and hierarchy, for any humanoid (see `auto_map`)
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import RetargetError

SMPL_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)
SMPL_PARENT_NAMES: dict[str, str | None] = dict(zip(SMPL_JOINTS, (
    None, "pelvis", "pelvis", "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "spine3", "spine3", "neck", "left_collar",
    "right_collar", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
    "right_wrist")))
# Without these a bake cannot be right: a limb or the head would stay frozen.
REQUIRED_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "head",
)
# SMPL's hand joints are the knuckles (no fingers): targets keep their fingers at rest.
OPTIONAL_UNMAPPED: tuple[str, ...] = ("left_hand", "right_hand")
RIG_FAMILIES: tuple[str, ...] = ("mixamo", "ue5", "rigify", "vrm", "auto")
PRESET_FORMAT = "trace_blender.bone_map"
PRESET_VERSION = 1


class BoneMapError(RetargetError):
    """A bone map that cannot drive a bake; `bone_map` holds the partial map for editing."""

    def __init__(self, message: str, bone_map: Mapping[str, str] | None = None,
                 unmapped: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.bone_map = dict(bone_map or {})
        self.unmapped = tuple(unmapped)


def _both(table: Mapping[str, Sequence[str]], *swaps: tuple[str, str]) -> dict[str, tuple[str, ...]]:
    """Expand {'hip': ('LeftUpLeg',)} into left_/right_ entries; the right names swap each (left, right)."""
    out: dict[str, tuple[str, ...]] = {}
    for part, names in table.items():
        out[f"left_{part}"] = tuple(names)
        right_names = []
        for name in names:
            for left, right in swaps:
                name = name.replace(left, right)
            right_names.append(name)
        out[f"right_{part}"] = tuple(right_names)
    return out


# Candidate names per SMPL joint, first one present wins. Left names; right = the side token swapped.
FAMILY_MAPS: dict[str, dict[str, tuple[str, ...]]] = {
    "mixamo": {
        "pelvis": ("Hips",), "spine1": ("Spine",), "spine2": ("Spine1",), "spine3": ("Spine2",),
        "neck": ("Neck",), "head": ("Head",),
        **_both({"hip": ("LeftUpLeg",), "knee": ("LeftLeg",), "ankle": ("LeftFoot",), "foot": ("LeftToeBase",),
                 "collar": ("LeftShoulder",), "shoulder": ("LeftArm",), "elbow": ("LeftForeArm",),
                 "wrist": ("LeftHand",)}, ("Left", "Right")),
    },
    "ue5": {
        "pelvis": ("pelvis",), "spine1": ("spine_01",), "spine2": ("spine_03", "spine_02"),
        "spine3": ("spine_05", "spine_03"), "neck": ("neck_01",), "head": ("head",),
        **_both({"hip": ("thigh_l",), "knee": ("calf_l",), "ankle": ("foot_l",), "foot": ("ball_l",),
                 "collar": ("clavicle_l",), "shoulder": ("upperarm_l",), "elbow": ("lowerarm_l",),
                 "wrist": ("hand_l",)}, ("_l", "_r")),
    },
    "rigify": {
        # Generated rig: FK controls (IK/FK switch on FK); metarig: its plain bones.
        "pelvis": ("torso", "spine"), "spine1": ("spine_fk.001", "spine.001"),
        "spine2": ("spine_fk.002", "spine.002"), "spine3": ("chest", "spine.003"),
        "neck": ("neck", "spine.004"), "head": ("head", "spine.006"),
        **_both({"hip": ("thigh_fk.L", "thigh.L"), "knee": ("shin_fk.L", "shin.L"),
                 "ankle": ("foot_fk.L", "foot.L"), "foot": ("toe_fk.L", "toe.L"),
                 "collar": ("shoulder.L",), "shoulder": ("upper_arm_fk.L", "upper_arm.L"),
                 "elbow": ("forearm_fk.L", "forearm.L"), "wrist": ("hand_fk.L", "hand.L")}, (".L", ".R")),
    },
    "vrm": {
        "pelvis": ("hips", "J_Bip_C_Hips"), "spine1": ("spine", "J_Bip_C_Spine"),
        "spine2": ("chest", "J_Bip_C_Chest"), "spine3": ("upperChest", "J_Bip_C_UpperChest"),
        "neck": ("neck", "J_Bip_C_Neck"), "head": ("head", "J_Bip_C_Head"),
        **_both({"hip": ("leftUpperLeg", "J_Bip_L_UpperLeg"), "knee": ("leftLowerLeg", "J_Bip_L_LowerLeg"),
                 "ankle": ("leftFoot", "J_Bip_L_Foot"), "foot": ("leftToes", "J_Bip_L_ToeBase"),
                 "collar": ("leftShoulder", "J_Bip_L_Shoulder"), "shoulder": ("leftUpperArm", "J_Bip_L_UpperArm"),
                 "elbow": ("leftLowerArm", "J_Bip_L_LowerArm"), "wrist": ("leftHand", "J_Bip_L_Hand")},
                ("left", "right"), ("_L_", "_R_")),
    },
}


def strip_namespace(name: str) -> str:
    """'mixamorig:Hips' -> 'Hips', 'Armature|Hips' -> 'Hips' (FBX namespaces and path prefixes)."""
    return re.split(r"[:|]", name)[-1]


def _lookup(names: Sequence[str]) -> dict[str, str]:
    """{normalised key: actual bone name}: exact names, then namespace-free, then case-folded."""
    table: dict[str, str] = {}
    for name in names:
        for key in (name, strip_namespace(name), strip_namespace(name).casefold()):
            table.setdefault(key, name)
    return table


def family_map(family: str, names: Sequence[str]) -> dict[str, str]:
    """The named family's map restricted to the bones this armature has (first candidate present)."""
    if family not in FAMILY_MAPS:
        raise BoneMapError(f"unknown rig family {family!r}; choose one of {', '.join(RIG_FAMILIES)}")
    table = _lookup(names)
    found: dict[str, str] = {}
    for joint, candidates in FAMILY_MAPS[family].items():
        for candidate in candidates:
            hit = table.get(candidate) or table.get(candidate.casefold())
            if hit is not None and hit not in found.values():
                found[joint] = hit
                break
    return found


def detect_family(names: Sequence[str]) -> str:
    """The family whose map covers most required joints here ('auto' when none covers them all)."""
    best, best_count = "auto", 0
    for family in FAMILY_MAPS:
        found = family_map(family, names)
        count = sum(joint in found for joint in REQUIRED_JOINTS)
        if count > best_count:
            best, best_count = family, count
    return best if best_count == len(REQUIRED_JOINTS) else "auto"


# ------------------------------------------------------------------------------------------------ auto
_IGNORED_TOKENS = {"mch", "org", "ik", "tweak", "twist", "roll", "pole", "target", "end", "nub", "tip", "top",
                   "leaf", "helper", "socket", "ctrl", "ctl", "ref", "null", "bend", "corrective", "pv",
                   "parent"}
_PREFIX_TOKENS = {"def", "j", "bip", "c", "cc", "b", "bone", "jnt", "joint", "fk", "mixamorig", "base"}
_SIDE_TOKENS = {"l": "left", "left": "left", "r": "right", "right": "right", "lft": "left", "rgt": "right"}
# Token patterns per body part (tried in order; the first part whose pattern matches wins).
_PART_PATTERNS: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    ("foot", (("toe",), ("toes",), ("toebase",), ("ball",))),
    ("hip", (("up", "leg"), ("upleg",), ("upper", "leg"), ("upperleg",), ("thigh",))),
    ("knee", (("lower", "leg"), ("lowerleg",), ("calf",), ("shin",), ("knee",), ("leg",))),
    ("ankle", (("foot",), ("ankle",))),
    ("collar", (("clavicle",), ("collar",), ("shoulder",))),
    ("elbow", (("fore", "arm"), ("forearm",), ("lower", "arm"), ("lowerarm",), ("elbow",))),
    ("shoulder", (("up", "arm"), ("upper", "arm"), ("upperarm",), ("uparm",), ("arm",))),
    ("wrist", (("hand",), ("wrist",))),
)
_CENTRE_PATTERNS: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    ("pelvis", (("hips",), ("pelvis",), ("hip",))),
    ("neck", (("neck",),)),
    ("head", (("head",),)),
)
_FINGER_TOKENS = {"thumb", "index", "middle", "ring", "pinky", "little", "finger", "carpal", "metacarpal"}


def name_tokens(name: str) -> list[str]:
    """'mixamorig:LeftUpLeg' -> ['left', 'up', 'leg']; 'DEF-thigh.L' -> ['def', 'thigh', 'l']."""
    text = strip_namespace(name)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", text)
    return [token for token in re.split(r"[^A-Za-z0-9]+|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])", text.lower())
            if token]


def classify_bone(name: str) -> tuple[str | None, str | None, int]:
    """(part, side, rank) of a bone name: part one of the SMPL parts ('hip', 'knee', ..., 'pelvis',
    'neck', 'head', 'spine'), side 'left'/'right'/None; rank: lower is a better candidate (helper
    and mechanism bones get a high rank, None part for fingers and unknown bones)."""
    tokens = name_tokens(name)
    if not tokens:
        return None, None, 99
    if any(token in _FINGER_TOKENS for token in tokens):
        return None, None, 99
    rank = sum(token in _IGNORED_TOKENS for token in tokens) * 10
    if tokens[0] in ("mch", "org"):
        rank += 50
    side = None
    words = []
    for token in tokens:
        if token in _SIDE_TOKENS and side is None:
            side = _SIDE_TOKENS[token]
        elif token not in _PREFIX_TOKENS and token not in _IGNORED_TOKENS and not token.isdigit():
            words.append(token)
    if name.endswith((".L", ".l", "_L", "_l")) or re.match(r"^(L|l)[_.]", strip_namespace(name)):
        side = "left"
    elif name.endswith((".R", ".r", "_R", "_r")) or re.match(r"^(R|r)[_.]", strip_namespace(name)):
        side = "right"
    joined = "".join(words)
    patterns = _PART_PATTERNS if side else _CENTRE_PATTERNS
    for part, alternatives in patterns:
        for pattern in alternatives:
            if _contains(words, pattern) or (len(pattern) > 1 and "".join(pattern) == joined):
                return part, side, rank + max(0, len(words) - len(pattern))
    if not side and any(word.startswith(("spine", "chest", "torso", "abdomen", "waist")) for word in words):
        return "spine", None, rank
    return None, side, 99


def _contains(words: list[str], pattern: tuple[str, ...]) -> bool:
    n = len(pattern)
    return any(tuple(words[i:i + n]) == pattern for i in range(len(words) - n + 1))


def _ancestors(index: int, parents: Sequence[int]) -> list[int]:
    out = []
    while parents[index] >= 0:
        index = parents[index]
        out.append(index)
    return out


def auto_map(names: Sequence[str], parents: Sequence[int], deform: Sequence[bool] | None = None) -> dict[str, str]:
    """A map by name tokens and hierarchy, for rigs of no known family.

    Names: each bone is classified by its tokens (side from L/R/Left/Right/.L/_l..., part from
    words such as thigh/UpLeg/UpperLeg, calf/shin/Leg, foot, toe/ball, clavicle/shoulder,
    UpperArm/Arm, ForeArm/LowerArm, hand; helper bones such as twist/IK/MCH rank last; deform bones
    first). Hierarchy: a limb part must sit below the previous part of its chain; the pelvis is the
    common ancestor of both thighs; the spine joints are the bones between the pelvis and the neck
    (first, middle, last); a missing knee or elbow is the bone between its neighbours.
    """
    count = len(names)
    deform = list(deform) if deform is not None else [True] * count
    candidates: dict[str, list[tuple[int, int]]] = {}
    for index, name in enumerate(names):
        part, side, rank = classify_bone(name)
        if part is None:
            continue
        joint = part if part in ("pelvis", "neck", "head", "spine") else (f"{side}_{part}" if side else None)
        if joint is None:
            continue
        rank += 0 if deform[index] else 5
        candidates.setdefault(joint, []).append((rank, index))
    for options in candidates.values():
        options.sort()
    found: dict[str, int] = {}

    def best_below(joint: str, above: int | None) -> int | None:
        for _, index in candidates.get(joint, []):
            if above is None or above in _ancestors(index, parents):
                if index not in found.values():
                    return index
        return None

    # Legs first (they define the pelvis), then the arms, then neck/head, then the spine chain.
    for side in ("left", "right"):
        previous = None
        for part in ("hip", "knee", "ankle", "foot"):
            hit = best_below(f"{side}_{part}", previous)
            if hit is not None:
                found[f"{side}_{part}"] = hit
                previous = hit
    thighs = [found.get("left_hip"), found.get("right_hip")]
    if None not in thighs:
        common = [a for a in _ancestors(thighs[0], parents) if a in _ancestors(thighs[1], parents)]
        named_pelvis = best_below("pelvis", None)
        if named_pelvis is not None and (named_pelvis in common or not common):
            found["pelvis"] = named_pelvis
        elif common:
            found["pelvis"] = common[0]
    elif (named := best_below("pelvis", None)) is not None:
        found["pelvis"] = named
    pelvis = found.get("pelvis")
    for joint in ("neck", "head"):
        hit = best_below(joint, found.get("neck") if joint == "head" else pelvis)
        if hit is not None:
            found[joint] = hit
    for side in ("left", "right"):
        previous = found.get("neck") and parents[found["neck"]]
        previous = previous if isinstance(previous, int) and previous >= 0 else pelvis
        for part in ("collar", "shoulder", "elbow", "wrist"):
            hit = best_below(f"{side}_{part}", previous if part != "collar" else pelvis)
            if hit is None and part == "collar":
                continue
            if hit is not None:
                found[f"{side}_{part}"] = hit
                previous = hit
    _fill_spine(found, parents)
    _fill_middle(found, parents, ("left_hip", "left_knee", "left_ankle"))
    _fill_middle(found, parents, ("right_hip", "right_knee", "right_ankle"))
    _fill_middle(found, parents, ("left_shoulder", "left_elbow", "left_wrist"))
    _fill_middle(found, parents, ("right_shoulder", "right_elbow", "right_wrist"))
    return {joint: names[index] for joint, index in found.items()}


def _fill_spine(found: dict[str, int], parents: Sequence[int]) -> None:
    """spine1/2/3 = first/middle/last bone strictly between the pelvis and the neck (or the arms' root)."""
    pelvis = found.get("pelvis")
    top = found.get("neck")
    if top is None:
        shoulders = [found.get("left_collar", found.get("left_shoulder")),
                     found.get("right_collar", found.get("right_shoulder"))]
        top = shoulders[0] if shoulders[0] is not None else shoulders[1]
        if top is None or pelvis is None:
            return
        chain = [a for a in reversed(_ancestors(top, parents)) if pelvis in _ancestors(a, parents)]
    else:
        if pelvis is None:
            return
        chain = [a for a in reversed(_ancestors(top, parents)) if pelvis in _ancestors(a, parents)]
    if not chain:
        return
    picks = {"spine1": chain[0]}
    if len(chain) >= 2:
        picks["spine3"] = chain[-1]
    if len(chain) >= 3:
        picks["spine2"] = chain[len(chain) // 2]
    for joint, index in picks.items():
        found.setdefault(joint, index)


def _fill_middle(found: dict[str, int], parents: Sequence[int], chain: tuple[str, str, str]) -> None:
    """A missing middle joint (knee, elbow) = the bone between its neighbours, when there is exactly one."""
    upper, middle, lower = chain
    if middle in found or upper not in found or lower not in found:
        return
    between = [a for a in _ancestors(found[lower], parents) if found[upper] in _ancestors(a, parents)]
    if len(between) == 1:
        found[middle] = between[0]


def make_map(family: str, names: Sequence[str], parents: Sequence[int],
             deform: Sequence[bool] | None = None) -> dict[str, str]:
    """The map for a family ('auto': detected family if one fits, else `auto_map`), gaps filled by auto_map."""
    if family == "auto":
        family = detect_family(names)
    automatic = auto_map(names, parents, deform)
    if family == "auto":
        return automatic
    found = family_map(family, names)
    for joint, bone in automatic.items():
        if joint not in found and bone not in found.values():
            found[joint] = bone
    return found


# ------------------------------------------------------------------------------------------------ checks
@dataclass
class MapCheck:
    """What a map covers: `missing` required joints, `problems` (hierarchy), `unmapped` optional joints."""

    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.problems


def check_map(bone_map: Mapping[str, str], names: Sequence[str], parents: Sequence[int]) -> MapCheck:
    """Every required joint mapped to an existing bone, no bone used twice, and each mapped joint below
    the bone of its nearest mapped SMPL ancestor (else the chains cross and the bake would be wrong)."""
    index = {name: i for i, name in enumerate(names)}
    check = MapCheck()
    for joint, bone in bone_map.items():
        if joint not in SMPL_JOINTS:
            check.problems.append(f"'{joint}' is not an SMPL joint")
        elif bone not in index:
            check.problems.append(f"{joint}: the rig has no bone '{bone}'")
    used: dict[str, str] = {}
    for joint, bone in bone_map.items():
        if bone in used:
            check.problems.append(f"bone '{bone}' is mapped to both {used[bone]} and {joint}")
        used[bone] = joint
    check.missing = [joint for joint in REQUIRED_JOINTS if joint not in bone_map]
    check.unmapped = [joint for joint in SMPL_JOINTS
                      if joint not in bone_map and joint not in REQUIRED_JOINTS and joint not in OPTIONAL_UNMAPPED]
    for joint, bone in bone_map.items():
        if joint not in SMPL_JOINTS or bone not in index:
            continue
        ancestor = SMPL_PARENT_NAMES[joint]
        while ancestor is not None and ancestor not in bone_map:
            ancestor = SMPL_PARENT_NAMES[ancestor]
        if ancestor is None or bone_map[ancestor] not in index:
            continue
        if index[bone_map[ancestor]] not in _ancestors(index[bone], parents):
            check.problems.append(f"{joint} ('{bone}') is not below {ancestor} ('{bone_map[ancestor]}') in the rig")
    return check


def describe_check(check: MapCheck, rig_name: str) -> str:
    """One message naming what could not be mapped and what to do (short first line, details after)."""
    lines = []
    if check.missing:
        lines.append(f"Retarget: {len(check.missing)} body part(s) of '{rig_name}' are not mapped; pick their bones "
                     "in the TRACE panel's Retarget › Bone Map, then bake again")
        lines.append("not mapped: " + ", ".join(check.missing))
    if check.problems:
        if not lines:
            lines.append(f"Retarget: the bone map for '{rig_name}' does not fit the rig; fix it in the TRACE panel's "
                         "Retarget › Bone Map")
        lines.extend(check.problems)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ presets
def preset_payload(bone_map: Mapping[str, str], family: str = "custom") -> dict:
    return {"format": PRESET_FORMAT, "version": PRESET_VERSION, "family": family,
            "bones": {joint: bone_map[joint] for joint in SMPL_JOINTS if joint in bone_map}}


def write_preset(path: str | Path, bone_map: Mapping[str, str], family: str = "custom") -> Path:
    """Save a map as a JSON preset (temporary file + os.replace)."""
    import os
    import tempfile

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(preset_payload(bone_map, family), stream, indent=1)
            stream.write("\n")
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def read_preset(path: str | Path) -> tuple[dict[str, str], str]:
    """(bone map, family) from a preset file written by write_preset."""
    file_path = Path(path)
    try:
        payload = json.loads(file_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BoneMapError(f"cannot read the bone map preset {file_path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != PRESET_FORMAT or not isinstance(payload.get("bones"), dict):
        raise BoneMapError(f"{file_path} is not a TRACE bone map preset (expected \"format\": \"{PRESET_FORMAT}\")")
    bones = {str(joint): str(bone) for joint, bone in payload["bones"].items() if bone}
    unknown = sorted(set(bones) - set(SMPL_JOINTS))
    if unknown:
        raise BoneMapError(f"{file_path} maps unknown joints: {', '.join(unknown)}")
    return bones, str(payload.get("family", "custom"))
