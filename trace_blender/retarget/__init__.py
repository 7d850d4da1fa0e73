"""Retarget an imported TRACE person onto another humanoid rig (Mixamo, UE5 mannequin, Rigify, VRM, any).

`bone_maps` (which target bone plays which SMPL joint: rig families, automatic map, presets) and
`solve` (rest-pose alignment, leg-length-scaled root motion, floor contact, pose-bone channels) are
numpy only and know nothing of Blender; `bake` reads the armatures out of Blender and writes the
result into a new action with bulk keys.
"""
