"""Tracking settings: the official TRACE configuration and the product defaults.

The field names are the keys of the official `seq_cfgs` dictionary (`utils/infer_settings.py`,
`get_seq_cfgs`) so a configuration can be read from and written to the official JSON form. A few
extra fields cover what the official code hard-codes (`center_thresh`, `fov`, the tracker's frame
rate) and `official_quirks`, which switches between a bit-exact reproduction of the official tracker
and the cleaned-up product behaviour (see docs/tracking.md, "Official vs product").
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Literal, Mapping

import numpy as np

from ..camera import fov_to_normalized_focal
from ..errors import UsageError

#: Product mode: an unmatched detection above this score starts a new track at any frame when
#: `subjects="all"`. Stricter than the first-frame threshold (0.3) because a new person appearing
#: mid-video competes with spurious peaks near existing people; looser than the official hard-coded
#: 0.8, which in practice never admits anyone.
PRODUCT_NEW_SUBJECT_DET_THRESH = 0.5

#: Product mode: how long a lost identity is remembered, in seconds of video.
PRODUCT_FORGET_SECONDS = 2.0

#: Keys of the official `seq_cfgs` dictionary (order of `get_seq_cfgs`).
OFFICIAL_SEQ_CFG_KEYS = (
    "tracker_det_thresh", "tracker_match_thresh", "first_frame_det_thresh", "accept_new_dets",
    "new_subject_det_thresh", "time2forget", "large_object_thresh", "suppress_duplicate_thresh",
    "motion_offset3D_norm_limit", "feature_update_thresh", "feature_inherent",
    "occlusion_cam_inherent_or_interp", "subject_num", "axis_times", "smooth_pose_shape",
    "pose_smooth_coef", "smooth_pos_cam",
)

Subjects = int | Literal["all"]

#: The official per-dataset evaluation configurations (`trace2/utils/eval_utils.py`, `dataset_cfgs`,
#: applied by `trace2/eval.py` through `update_eval_seq_cfgs`), as overrides of the official defaults.
#: "demo" is the demo's `get_seq_cfgs` defaults; "dynacam" too: DynaCam-Panorama / -Translation are not
#: in `dataset_cfgs`, so the official evaluation runs them with the defaults.
TRACKING_PRESETS: dict[str, dict[str, Any]] = {
    "demo": {},
    "dynacam": {},
    "3dpw": dict(tracker_det_thresh=0.05, tracker_match_thresh=1.2, first_frame_det_thresh=0.05,
                 accept_new_dets=True, new_subject_det_thresh=0.8, time2forget=20, subject_num=3,
                 large_object_thresh=0.1, suppress_duplicate_thresh=0.05, motion_offset3D_norm_limit=0.06,
                 feature_update_thresh=0.05, feature_inherent=True, occlusion_cam_inherent_or_interp=False,
                 axis_times=(1.2, 2.5, 25.0), smooth_pose_shape=False, pose_smooth_coef=1.0, smooth_pos_cam=False),
    "mupots": dict(tracker_det_thresh=0.05, tracker_match_thresh=1.2, first_frame_det_thresh=0.16,
                   accept_new_dets=False, new_subject_det_thresh=0.7, time2forget=2000, subject_num=3,
                   large_object_thresh=0.13, suppress_duplicate_thresh=0.05, motion_offset3D_norm_limit=0.06,
                   feature_update_thresh=0.2, feature_inherent=True, occlusion_cam_inherent_or_interp=False,
                   axis_times=(1.1, 0.9, 20.0), smooth_pose_shape=False, pose_smooth_coef=1.0, smooth_pos_cam=False),
    "dyna3dpw": dict(tracker_det_thresh=0.05, tracker_match_thresh=0.8, first_frame_det_thresh=0.05,
                     accept_new_dets=False, new_subject_det_thresh=0.8, time2forget=1000, subject_num=3,
                     large_object_thresh=0.13, suppress_duplicate_thresh=0.05, motion_offset3D_norm_limit=0.06,
                     feature_update_thresh=0.05, feature_inherent=True, occlusion_cam_inherent_or_interp=False,
                     axis_times=(1.2, 2.5, 25.0), smooth_pose_shape=True, pose_smooth_coef=1.0, smooth_pos_cam=False),
}

#: Per-sequence overrides of the official evaluation (`eval_sequence_cfgs`): one table, applied by
#: sequence name whatever the dataset (MuPoTS TS*, 3DPW, CMU Panoptic, MPII and a Pexels clip). Select
#: one with `PRESET:SEQUENCE` (e.g. `3dpw:downtown_car_00`). The official evaluation applies them with
#: `dict.update` on the shared preset dictionary, so an override also leaks into every sequence
#: evaluated after it in the same process; here each sequence gets the preset plus its own entries.
OFFICIAL_SEQUENCE_OVERRIDES: dict[str, dict[str, Any]] = {
    "TS2": dict(subject_num=3, feature_update_thresh=0.1), "TS14": dict(subject_num=3, feature_update_thresh=0.3),
    "TS6": dict(subject_num=2), "TS11": dict(subject_num=2), "TS4": dict(first_frame_det_thresh=0.05),
    "TS5": dict(large_object_thresh=0.2), "TS18": dict(large_object_thresh=0.2), "TS19": dict(large_object_thresh=0.2),
    "downtown_car_00": dict(subject_num=2, tracker_match_thresh=1.6),
    "downtown_crossStreets_00": dict(subject_num=2, tracker_match_thresh=0.8),
    "downtown_walkBridge_01": dict(subject_num=1), "downtown_weeklyMarket_00": dict(subject_num=1),
    "downtown_bar_00": dict(subject_num=2), "downtown_cafe_00": dict(subject_num=2),
    "downtown_downstairs_00": dict(subject_num=2),
    "downtown_enterShop_00": dict(subject_num=1, tracker_match_thresh=1.2),
    "downtown_rampAndStairs_00": dict(subject_num=2), "downtown_runForBus_00": dict(subject_num=2),
    "downtown_runForBus_01": dict(subject_num=2, feature_update_thresh=0.54),
    "downtown_sitOnStairs_00": dict(subject_num=2), "downtown_upstairs_00": dict(subject_num=1),
    "downtown_walking_00": dict(subject_num=2, tracker_match_thresh=1.4),
    "downtown_warmWelcome_00": dict(subject_num=2), "downtown_windowShopping_00": dict(subject_num=1),
    "office_phoneCall_00": dict(subject_num=2),
    "downtown_bus_00": dict(subject_num=2, new_subject_det_thresh=0.05, tracker_match_thresh=0.6),
    "pexels-group_running": dict(subject_num=5),
    "160422_haggling1-00_16-1": dict(subject_num=3), "160422_haggling1-00_16-2": dict(subject_num=3),
    "160422_haggling1-00_30-1": dict(subject_num=3), "160422_haggling1-00_30-2": dict(subject_num=3),
    "160422_mafia2-00_16-1": dict(subject_num=8), "160422_mafia2-00_16-2": dict(subject_num=7),
    "160422_mafia2-00_30-1": dict(subject_num=8, first_frame_det_thresh=0.2),
    "160422_mafia2-00_30-2": dict(subject_num=7),
    "160422_ultimatum1-00_16-1": dict(subject_num=2), "160422_ultimatum1-00_16-2": dict(subject_num=3),
    "160422_ultimatum1-00_30-1": dict(subject_num=2), "160422_ultimatum1-00_30-2": dict(subject_num=3),
    "160906_pizza1-00_16-1": dict(subject_num=5), "160906_pizza1-00_16-2": dict(subject_num=6),
    "160906_pizza1-00_30-1": dict(subject_num=5, first_frame_det_thresh=0.5),
    "160906_pizza1-00_30-2": dict(subject_num=6, first_frame_det_thresh=0.4),
    "mpii-dancing-aerobic,general-049617593-0": dict(subject_num=2),
    "mpii-dancing-aerobic,general-083277907-0": dict(subject_num=2),
    "mpii-dancing-aerobic,general-089099537-0": dict(subject_num=2),
    "mpii-dancing-Irishstepdancing-082119828-0": dict(subject_num=3),
    "mpii-occupation-horseracing-067916257-0": dict(subject_num=2),
    "mpii-running-jogging,onamini-tramp-011995294-0": dict(subject_num=2),
    "mpii-running-running-089114311-0": dict(subject_num=2),
    "mpii-sports-ropeskipping,general-000003072-0": dict(subject_num=2),
}


class TrackingSettingsError(UsageError):
    """A tracking setting is out of range or a configuration dictionary cannot be read."""

    code = "tracking_settings"


@dataclass(frozen=True)
class TrackingSettings:
    """Every knob of 3D-centre parsing, the tracker, the memory unit and cam infilling.

    The defaults are the official ones (`TrackingSettings()` == `TrackingSettings.official()`).
    Thresholds on detection scores compare with strict `>` as the official code does.
    """

    # --- official seq_cfgs ---------------------------------------------------------------------
    tracker_det_thresh: float = 0.18          # detections below are ignored by the tracker
    tracker_match_thresh: float = 1.2         # cost limit of the linear assignment
    first_frame_det_thresh: float = 0.3       # score needed to start a track (first frame / free slot)
    accept_new_dets: bool = False             # start tracks for new people at any frame (no subject cap)
    new_subject_det_thresh: float = 0.8       # score needed for such a new track (see official_quirks)
    time2forget: int = 0                      # tracker updates a lost track is remembered
    large_object_thresh: float = 0.13         # detections with cam scale <= this are dropped
    suppress_duplicate_thresh: float = 0.05   # detections whose cams are closer are duplicates
    motion_offset3D_norm_limit: float = 0.06  # larger motion offsets are zeroed
    feature_update_thresh: float = 0.05       # memory keeps features of detections scoring above
    feature_inherent: bool = True             # inherit features from memory for weak/untracked frames
    occlusion_cam_inherent_or_interp: bool = False  # True: copy last good cam, False: interpolate
    subject_num: int = 1                      # people tracked when accept_new_dets is False
    axis_times: tuple[float, float, float] = (1.2, 2.5, 25.0)  # weights of (x, y, 1/(1+depth))
    smooth_pose_shape: bool = True            # One-Euro smoothing of pose and shape
    pose_smooth_coef: float = 1.0             # One-Euro min cutoff
    smooth_pos_cam: bool = False              # One-Euro smoothing of cams
    # --- hard-coded in the official code ---------------------------------------------------------
    center_thresh: float = 0.05               # 3D centre map peaks must score above this
    fov: float = 50.0                         # field of view (degrees) of the normalised camera
    tracker_frame_rate: float = 30.0          # official Tracker(frame_rate=30): buffer = int(rate/30*time2forget)
    # --- product switch --------------------------------------------------------------------------
    official_quirks: bool = True              # reproduce the official tracker exactly (docs/tracking.md)

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            object.__setattr__(self, spec.name, _checked_field(spec.name, str(spec.type), getattr(self, spec.name)))
        if len(self.axis_times) != 3:
            raise TrackingSettingsError(f"axis_times needs 3 weights (x, y, inverse depth), got {self.axis_times!r}")
        for name in ("tracker_det_thresh", "first_frame_det_thresh", "new_subject_det_thresh",
                     "feature_update_thresh", "center_thresh"):
            value = getattr(self, name)
            if not value >= 0.0:        # raw center-map scores: not bounded by 1 (1e9 lets no detection pass)
                raise TrackingSettingsError(f"{name} is a detection score threshold (>= 0), got {value!r}")
        for name in ("tracker_match_thresh", "suppress_duplicate_thresh", "motion_offset3D_norm_limit",
                     "pose_smooth_coef", "tracker_frame_rate"):
            value = getattr(self, name)
            if not value > 0:
                raise TrackingSettingsError(f"{name} must be positive, got {value!r}")
        if any(weight < 0 for weight in self.axis_times):
            raise TrackingSettingsError(f"axis_times weights must be >= 0, got {self.axis_times!r}")
        if self.tracker_frame_rate > MAX_FRAME_RATE:
            raise TrackingSettingsError(f"tracker_frame_rate must be at most {MAX_FRAME_RATE:g}, got {self.tracker_frame_rate!r}")
        if not 0 < self.fov < 180:
            raise TrackingSettingsError(f"fov must be between 0 and 180 degrees, got {self.fov!r}")
        if not 0 <= self.time2forget <= MAX_TIME2FORGET:
            raise TrackingSettingsError(f"time2forget must be a whole number of frames from 0 to {MAX_TIME2FORGET:,}, "
                                        f"got {self.time2forget!r}")
        if not 1 <= self.subject_num <= MAX_SUBJECTS:
            raise TrackingSettingsError(f"subject_num must be a whole number from 1 to {MAX_SUBJECTS:,}, "
                                        f"got {self.subject_num!r}")

    # --- constructors ------------------------------------------------------------------------------
    @classmethod
    def official(cls, **overrides: Any) -> "TrackingSettings":
        """The official defaults (`get_seq_cfgs` + CenterMap(0.05) + FOV 50), optionally overridden."""
        return cls(**_checked_overrides(overrides))

    @classmethod
    def product_default(cls, fps: float, subjects: Subjects = "all", **overrides: Any) -> "TrackingSettings":
        """Product behaviour: identities survive ~2 s occlusions; `subjects="all"` picks up late entrants.

        `time2forget` is counted in frames of the video (`round(2 * fps)`) and the tracker ages its
        tracks on every frame, with or without detections, so the memory really spans ~2 seconds.
        """
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise TrackingSettingsError(f"fps must be a positive number, got {fps!r}")
        values: dict[str, Any] = dict(
            time2forget=max(1, round(PRODUCT_FORGET_SECONDS * fps)),
            tracker_frame_rate=30.0,  # buffer = int(30/30 * time2forget) = time2forget frames
            new_subject_det_thresh=PRODUCT_NEW_SUBJECT_DET_THRESH,
            official_quirks=False,
        )
        values.update(_subject_fields(subjects))
        values.update(_checked_overrides(overrides))
        return cls(**values)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "TrackingSettings":
        """An official evaluation configuration: `demo`, `dynacam`, `3dpw`, `mupots`, `dyna3dpw`, or
        `PRESET:SEQUENCE` with that sequence's official overrides (see OFFICIAL_SEQUENCE_OVERRIDES).

        Official semantics throughout (`official_quirks=True`): it is for comparing with published numbers.
        """
        values = dict(preset_values(name))
        values.update(_checked_overrides(overrides))
        return cls(**values)

    @classmethod
    def from_seq_cfgs(cls, seq_cfgs: Mapping[str, Any], **overrides: Any) -> "TrackingSettings":
        """Read an official `seq_cfgs` dictionary (e.g. the JSON stored in the reference fixtures).

        Missing keys keep the official defaults; unknown keys are refused so a typo cannot be ignored.
        """
        unknown = sorted(set(seq_cfgs) - set(OFFICIAL_SEQ_CFG_KEYS) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TrackingSettingsError(
                f"unknown tracking setting(s) {unknown}; known: {sorted(OFFICIAL_SEQ_CFG_KEYS)}")
        values = {k: (tuple(v) if k == "axis_times" else v) for k, v in seq_cfgs.items()}
        values.update(_checked_overrides(overrides))
        return cls(**values)

    # --- derived values ----------------------------------------------------------------------------
    @property
    def subjects(self) -> Subjects:
        """"all" when new people are accepted at any frame, else the number of tracked subjects."""
        return "all" if self.accept_new_dets else self.subject_num

    def with_subjects(self, subjects: Subjects) -> "TrackingSettings":
        """Copy with another subject mode (`"all"` or a positive count)."""
        return dataclasses.replace(self, **_subject_fields(subjects))

    @property
    def track_buffer_frames(self) -> int:
        """Tracker updates a lost track survives (official: int(frame_rate / 30 * time2forget))."""
        return int(self.tracker_frame_rate / 30.0 * self.time2forget)

    @property
    def depth_scale(self) -> float:
        """1 / tan(fov / 2): converts the normalised cam scale to depth (official `1/tan_fov`).

        math.tan and the official np.tan agree to the bit here (checked for every 0.01 deg in (0, 180)).
        """
        return fov_to_normalized_focal(self.fov)

    def to_seq_cfgs(self) -> dict[str, Any]:
        """The official `seq_cfgs` dictionary (JSON-friendly: axis_times as a list)."""
        out = {k: getattr(self, k) for k in OFFICIAL_SEQ_CFG_KEYS}
        out["axis_times"] = list(self.axis_times)
        return out

    def to_dict(self) -> dict[str, Any]:
        """All fields, JSON-friendly (stored in result files)."""
        out = dataclasses.asdict(self)
        out["axis_times"] = list(self.axis_times)
        return out


def preset_values(name: str) -> dict[str, Any]:
    """The overrides of the official defaults that preset `name` (`PRESET` or `PRESET:SEQUENCE`) sets."""
    text = str(name).strip()
    preset, _, sequence = text.partition(":")
    preset = preset.lower()
    if preset not in TRACKING_PRESETS:
        raise TrackingSettingsError(
            f"unknown tracking preset {text!r}; choose one of {', '.join(TRACKING_PRESETS)} "
            f"(optionally PRESET:SEQUENCE, e.g. 3dpw:downtown_car_00)")
    values = dict(TRACKING_PRESETS[preset])
    if sequence:
        if sequence not in OFFICIAL_SEQUENCE_OVERRIDES:
            raise TrackingSettingsError(
                f"the official evaluation has no settings of its own for sequence {sequence!r} (it runs every "
                f"other sequence with plain {preset!r}; use --tracking-preset {preset}). Sequences with their "
                f"own settings: {', '.join(list(OFFICIAL_SEQUENCE_OVERRIDES)[:8])}, ...")
        values.update(OFFICIAL_SEQUENCE_OVERRIDES[sequence])
    return values


def parse_subjects(text: str) -> Subjects:
    """Command-line value of --subjects: "all" or a positive integer."""
    value = text.strip().lower()
    if value == "all":
        return "all"
    try:
        count = int(value)
    except ValueError:
        raise TrackingSettingsError(f"--subjects must be 'all' or a positive whole number, got {text!r}") from None
    if count < 1:
        raise TrackingSettingsError(f"--subjects must be 'all' or a positive whole number, got {text!r}")
    return count


# Upper bounds that keep the tracker's buffers sane (a typo like time2forget=1e9 would otherwise
# run for hours or exhaust memory): ~9 hours at 30 fps, far more people than fit in a frame.
MAX_TIME2FORGET = 1_000_000
MAX_SUBJECTS = 10_000
MAX_FRAME_RATE = 1000.0


def _checked_field(name: str, annotation: str, value: Any) -> Any:
    """One field's value with its declared type (bool, int, finite float, 3 finite floats), or an error."""
    if annotation == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise TrackingSettingsError(f"{name} must be true or false, got {value!r}")
        return bool(value)
    if annotation.startswith("tuple"):
        try:
            values = tuple(value)
        except TypeError:
            raise TrackingSettingsError(f"{name} must be a list of numbers, got {value!r}") from None
        return tuple(_checked_field(name, "float", item) for item in values)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TrackingSettingsError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise TrackingSettingsError(f"{name} must be a finite number, got {value!r}")
    if annotation == "int":
        if value != int(value):
            raise TrackingSettingsError(f"{name} must be a whole number, got {value!r}")
        return int(value)
    return float(value)


def _subject_fields(subjects: Subjects) -> dict[str, Any]:
    if subjects == "all":
        return {"accept_new_dets": True}
    if isinstance(subjects, bool) or not isinstance(subjects, int) or subjects < 1:
        raise TrackingSettingsError(f"subjects must be 'all' or a positive whole number, got {subjects!r}")
    return {"accept_new_dets": False, "subject_num": subjects}


def _checked_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(TrackingSettings)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TrackingSettingsError(f"unknown tracking setting(s) {unknown}; known: {sorted(names)}")
    return dict(overrides)
