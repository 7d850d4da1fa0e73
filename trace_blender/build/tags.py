"""Custom properties that mark what an import created: the panel, the exporters and re-imports find
people, bodies and cameras by them (never by object names, which users rename)."""
from __future__ import annotations

from typing import Any

PROP_TRACK_ID = "trace_track_id"
PROP_PERSON = "trace_person"
PROP_RESULT = "trace_result"
PROP_ROLE = "trace_role"  # "armature" | "body" | "camera"
PROP_SHOT = "trace_shot"  # index of the shot an armature / camera belongs to
PROP_REST_BETAS = "trace_rest_betas"  # the body shape the rest skeleton was built from
# Animated custom properties (0/1, constant interpolation): visible as curves in the Graph Editor.
PROP_CONTACT_LEFT = "trace_contact_left"
PROP_CONTACT_RIGHT = "trace_contact_right"
PROP_CAMERA_INTERPOLATED = "trace_camera_interpolated"


def imported_people(scene: Any) -> list[Any]:
    """Armature objects of people imported by TRACE in this scene, in name order."""
    return sorted((ob for ob in scene.objects if ob.type == "ARMATURE" and PROP_TRACK_ID in ob.keys()),
                  key=lambda ob: ob.name)


def bodies_of(armature: Any) -> list[Any]:
    """The body meshes parented to a person's armature."""
    return [child for child in armature.children if child.type == "MESH"]
