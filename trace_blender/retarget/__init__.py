"""Retarget an imported TRACE person onto another humanoid rig (Mixamo, UE5 mannequin, Rigify, VRM, any).

`bone_maps` (which target bone plays which SMPL joint: rig families, automatic map, checks, presets)
and `solve` (rest-pose alignment, leg-length-scaled root motion, floor contact, pose-bone channels
in every rotation mode) are numpy only and know nothing of Blender (docs/blender.md, "Retarget").
"""
