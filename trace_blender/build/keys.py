"""Bulk keying: every F-curve gets all its keys at once (keyframe_points.add + foreach_set).

Layered actions (slot + channelbag) where the running Blender has them (4.4+), else the legacy
`action.fcurves` (4.2/4.3), decided by feature detection. Never one key insertion call per frame:
that is ~70x slower on long clips.
"""
from __future__ import annotations

from typing import Any, Callable

import bpy
import numpy as np
from bpy_extras import anim_utils

from .rollback import CreatedDatablocks, unique_name

# keyframe_points "interpolation" enum values for foreach_set.
INTERPOLATION_CODES = {"CONSTANT": 0, "LINEAR": 1, "BEZIER": 2}

NewCurve = Callable[[str, int, str], Any]  # (data_path, index, group name) -> F-curve
# Driven so that a person (or a shot's camera) shows only during its own frames, in the viewport and renders.
VISIBILITY_PATHS = ("hide_viewport", "hide_render")


def uses_layered_actions(action: Any) -> bool:
    """True where Blender keys through action slots and channelbags (4.4+); else the legacy action.fcurves."""
    return hasattr(action, "slots") and hasattr(action, "layers")


def channelbag(action: Any, slot: Any, ensure: bool = False) -> Any | None:
    """The slot's channelbag in the action's keyframe strip (made when `ensure`). bpy_extras' helper where
    this Blender has it (5.0), else the layer/strip API it is built on (4.4, 4.5 have no such helper)."""
    helper = getattr(anim_utils, "action_ensure_channelbag_for_slot", None)
    if ensure and helper is not None:
        return helper(action, slot)
    for layer in action.layers:
        for strip in layer.strips:
            found = strip.channelbag(slot, ensure=ensure) if ensure else strip.channelbag(slot)
            if found is not None:
                return found
    if not ensure:
        return None
    layer = action.layers[0] if len(action.layers) else action.layers.new("Layer")
    strip = layer.strips[0] if len(layer.strips) else layer.strips.new(type="KEYFRAME")
    return strip.channelbag(slot, ensure=True)


def assign_action(id_object: Any, action: Any) -> NewCurve:
    """Assign `action` to the object and return new_curve(data_path, index, group) -> F-curve.

    Layered actions (4.4+): one slot for this object and its channelbag. Legacy actions (4.2/4.3,
    detected by the missing `slots`): the action's own F-curves, grouped the same way.
    """
    animation_data = id_object.animation_data_create()
    if uses_layered_actions(action):
        slot = action.slots.new(id_type="OBJECT", name=id_object.name)
        animation_data.action = action
        animation_data.action_slot = slot
        bag = channelbag(action, slot, ensure=True)
        return lambda data_path, index, group: _new_grouped_curve(bag, data_path, index, group)
    animation_data.action = action
    return lambda data_path, index, group: action.fcurves.new(data_path, index=index, action_group=group)


def assigned_curves(id_object: Any) -> Any | None:
    """What holds the F-curves of the object's assigned action: its slot's channelbag (4.4+) or the action
    itself (4.2/4.3). Both have `.fcurves` (with `.find(data_path, index=)`); None without an action."""
    animation_data = id_object.animation_data
    if animation_data is None or animation_data.action is None:
        return None
    if uses_layered_actions(animation_data.action):
        slot = animation_data.action_slot
        return channelbag(animation_data.action, slot) if slot is not None else None
    return animation_data.action


def action_fcurves(id_object: Any) -> list[Any]:
    """The F-curves of the object's assigned action (empty without one)."""
    holder = assigned_curves(id_object)
    return list(holder.fcurves) if holder is not None else []


def _new_grouped_curve(bag: Any, data_path: str, index: int, group: str) -> Any:
    """A channelbag F-curve in its group: `group_name=` where Blender takes it (5.0), else the group set after
    (4.4/4.5, whose fcurves.new takes no group)."""
    try:
        return bag.fcurves.new(data_path, index=index, group_name=group)
    except TypeError:
        curve = bag.fcurves.new(data_path, index=index)
        curve.group = bag.groups.get(group) or bag.groups.new(group)
        return curve


def new_action(id_object: Any, name: str, created: CreatedDatablocks | None, action: Any = None) -> NewCurve:
    """A new action named after `name` (or the given empty `action`) assigned to the object."""
    if action is None:
        action = bpy.data.actions.new(unique_name(bpy.data.actions, name))
        if created is not None:
            created.add("actions", action)
    return assign_action(id_object, action)


def fill_curve(curve: Any, frames: np.ndarray, values: np.ndarray, interpolation: str = "LINEAR") -> None:
    """All keys of one F-curve at once: frames [T], values [T] (keyframe_points.add + foreach_set)."""
    count = int(frames.shape[0])
    coordinates = np.empty(2 * count, np.float32)  # [2T] interleaved (frame, value)
    coordinates[0::2] = frames
    coordinates[1::2] = values
    curve.keyframe_points.add(count)
    curve.keyframe_points.foreach_set("co", coordinates)
    curve.keyframe_points.foreach_set("interpolation", np.full(count, INTERPOLATION_CODES[interpolation], np.int8))
    curve.update()


def add_flag_property(id_object: Any, name: str, description: str) -> None:
    """An int custom property 0/1 on the object (animated with constant interpolation)."""
    id_object[name] = 0
    id_object.id_properties_ui(name).update(min=0, max=1, soft_min=0, soft_max=1, description=description)


def hide_outside(id_object: Any, first: float, last: float) -> None:
    """Hidden (viewport and render) before scene frame `first` and after `last`.

    Drivers with a simple expression of the frame, not keys: they need no Python (auto-run off is
    fine) and stay out of the action, so exporters see the same frame range as before. A hidden
    object is not evaluated; exporting mutes these drivers while it steps through the frames.
    """
    for path in VISIBILITY_PATHS:
        driver = id_object.driver_add(path).driver
        driver.type = "SCRIPTED"
        driver.expression = f"frame < {first:g} or frame > {last:g}"


def visibility_drivers(id_object: Any) -> list[Any]:
    """The object's visibility drivers (to mute while an exporter steps through frames)."""
    animation_data = id_object.animation_data
    if animation_data is None:
        return []
    return [driver for driver in animation_data.drivers if driver.data_path in VISIBILITY_PATHS]
