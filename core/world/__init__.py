"""A world users can animate in (numpy only; the torch-free half of the core).

* `scene_camera`: one camera for the scene from every person's camera/world pose; registers tracks
  that TRACE started in a later camera frame into the scene world.
* `ground`: floor plane + gravity alignment shared by everyone: one rigid TRACE-world -> aligned-world
  transform (floor z = 0, +Z up, camera forward +Y); the default is the fixed (x, z, -y) swap.
* `contacts`: foot contacts, foot-skate cleanup (root + two-bone leg IK) and the sliding metric.
* `postprocess`: the orchestrator that applies all of the above to a result (-> result file version 2).

Order of use and parameters: docs/world.md.
"""
from .contacts import (ContactError, ContactSettings, SkateCleanup, SkateCleanupSettings, clean_foot_skate,
                       detect_foot_contacts, foot_sliding, pose_to_joints, two_bone_ik)
from .ground import (DEFAULT_FOOT_JOINT_HEIGHTS, GroundAlignment, GroundFitError, GroundFitSettings, PersonJoints,
                     alignment_from_plane, default_alignment, estimate_ground, estimate_up_prior, foot_joint_heights)
from .scene_camera import (CameraEvidence, SceneCamera, SceneCameraError, SceneCameraSettings, apply_world_transform,
                           camera_poses_from_track, estimate_scene_camera,
                           register_tracks)
from .postprocess import (RestBody, WorldProcessingError, WorldProcessingSettings, apply_world_processing,
                          smpl_rest_body)

__all__ = [
    "ContactError", "ContactSettings", "SkateCleanup", "SkateCleanupSettings", "clean_foot_skate",
    "detect_foot_contacts", "foot_sliding", "pose_to_joints", "two_bone_ik",
    "DEFAULT_FOOT_JOINT_HEIGHTS", "GroundAlignment", "GroundFitError", "GroundFitSettings", "PersonJoints",
    "alignment_from_plane", "default_alignment", "estimate_ground", "estimate_up_prior", "foot_joint_heights",
    "CameraEvidence", "SceneCamera", "SceneCameraError", "SceneCameraSettings", "apply_world_transform",
    "camera_poses_from_track", "estimate_scene_camera", "register_tracks",
    "RestBody", "WorldProcessingError", "WorldProcessingSettings", "apply_world_processing", "smpl_rest_body",
]
