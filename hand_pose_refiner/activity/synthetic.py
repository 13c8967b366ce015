"""A labelled, self-generated *synthetic* benchmark of assembly activities.

No labelled recordings of assembly activities exist for this cell, so the recogniser is
developed and regression-tested on hands the package generates itself. This is a kinematic
model, not a recording: it shows what the classifier can separate in principle and how it
degrades with keypoint noise and missing keypoints, not what accuracy a real cell will see.

The hand is a 3D 21-keypoint skeleton with adult proportions (bone lengths relative to the palm
inside the ranges of :mod:`hand_pose_refiner.filters.anatomy`, varied per subject), flexing its
fingers towards the palm, opposing its thumb, turning about the forearm axis and moving its
wrist through a workspace above a table. A pinhole camera at a random viewpoint projects it to
pixels. Each clip performs one motion primitive:

=======  ===================================================================================
idle     relaxed, slightly curled hand resting or drifting slowly
reach    open hand travelling 20-40 cm along minimum-jerk paths, back and forth
grasp    hand nearly still, fingers closing into a power grasp and opening again
screw    pinch grip turning about the forearm axis back and forth (screwing, turning a knob)
insert   pinch grip pushing a few centimetres along a line, wiggling, and pulling back
hold     closed power grasp held still, with slow drift and tremor
=======  ===================================================================================

Varied per clip: speed, handedness, viewpoint (azimuth, elevation, distance, roll, focal
length), frame rate with jittered stamps, keypoint noise (Gaussian, in palm sizes), dropped
keypoints (NaN, score 0) and missed detections; per subject (the generator seed): hand size,
bone proportions, dominant hand, speed. Train and test sets use disjoint subjects.

A subject's clips are written one after the other into a :class:`PoseRecording` (raw poses,
as a pose model would produce them), 1.5 s apart so that tracks end between clips, together with
one annotation row per clip; the recogniser's data path then runs them through the same
:class:`~hand_pose_refiner.filters.pipeline.PoseFilterPipeline` as live poses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hand_pose_refiner.activity.labels import ActivitySegment, PoseRecording
from hand_pose_refiner.skeleton import FINGER_KEYPOINTS, NUM_KEYPOINTS, WRIST, Handedness

ACTIVITIES: tuple[str, ...] = ("idle", "reach", "grasp", "screw", "insert", "hold")

# Hand frame (a right hand): origin at the wrist, y along the middle finger, x towards the thumb,
# z out of the palm; unit: palm length (wrist to middle MCP). A left hand negates x.
_MCP: dict[str, tuple[float, float, float]] = {
    "thumb": (0.26, 0.25, 0.06), "index": (0.22, 0.97, 0.0), "middle": (0.0, 1.0, 0.0),
    "ring": (-0.19, 0.95, 0.0), "pinky": (-0.36, 0.84, 0.0),
}
# Segment lengths / palm length: midpoints of the anatomy module's ranges.
_SEGMENTS: dict[str, tuple[float, float, float]] = {
    "thumb": (0.45, 0.35, 0.30), "index": (0.45, 0.265, 0.235), "middle": (0.50, 0.30, 0.24),
    "ring": (0.46, 0.29, 0.24), "pinky": (0.36, 0.21, 0.21),
}
# Spread of each finger's direction in the palm plane when the hand is open, degrees.
_SPREAD_DEG = {"index": 8.0, "middle": 0.0, "ring": -6.0, "pinky": -14.0}
_GAP_BETWEEN_CLIPS_S = 1.5


@dataclass(frozen=True)
class SyntheticSettings:
    """What to generate: clips per class and subject, and the ranges of the varied factors."""

    clips_per_class: int = 6
    duration_s: tuple[float, float] = (2.5, 4.0)
    fps: tuple[float, float] = (20.0, 30.0)
    noise: tuple[float, float] = (0.0, 0.03)  # keypoint noise sigma, palm sizes
    missing: tuple[float, float] = (0.0, 0.15)  # fraction of keypoints dropped
    missed_detection: float = 0.02  # probability that a frame has no hand at all
    image_size: tuple[int, int] = (640, 480)
    activities: tuple[str, ...] = ACTIVITIES


@dataclass(frozen=True)
class _Subject:
    palm_m: float
    proportions: dict[str, np.ndarray]
    dominant: Handedness
    speed: float


def _subject(rng: np.random.Generator) -> _Subject:
    proportions = {finger: np.array(lengths) * rng.uniform(0.93, 1.07, 3)
                   for finger, lengths in _SEGMENTS.items()}
    dominant = Handedness.LEFT if rng.random() < 0.2 else Handedness.RIGHT
    return _Subject(float(rng.uniform(0.085, 0.11)), proportions, dominant, float(rng.uniform(0.8, 1.25)))


def _min_jerk(phase: np.ndarray) -> np.ndarray:
    """Minimum-jerk profile 0 -> 1 over phase 0 -> 1 (bell-shaped speed, as human reaches)."""
    s = np.clip(phase, 0.0, 1.0)
    return 10 * s**3 - 15 * s**4 + 6 * s**5


def _smooth_noise(rng: np.random.Generator, t: np.ndarray, freq_hz: float, dims: int) -> np.ndarray:
    """A sum of random low-frequency sines: slow drift that never repeats exactly."""
    out = np.zeros((t.size, dims))
    for _ in range(3):
        f = freq_hz * rng.uniform(0.5, 1.5)
        phase = rng.uniform(0, 2 * np.pi, dims)
        out += np.sin(2 * np.pi * f * t[:, None] + phase) * rng.uniform(0.3, 1.0, dims)
    return out / 3.0


@dataclass
class _Motion:
    """Per frame: wrist position (m), hand yaw/pitch/roll (rad), finger curl, pinch, spread."""

    position: np.ndarray  # (F, 3)
    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    curl: np.ndarray
    pinch: np.ndarray
    spread: np.ndarray


def _primitive(activity: str, t: np.ndarray, speed: float, rng: np.random.Generator) -> _Motion:
    """The motion of one clip, ``t`` in seconds from its start."""
    n = t.size
    start = np.array([rng.uniform(-0.25, 0.25), rng.uniform(0.25, 0.55), rng.uniform(0.05, 0.2)])
    tremor = _smooth_noise(rng, t, 6.0, 3) * 0.0015
    drift = _smooth_noise(rng, t, 0.3 * speed, 3)
    yaw = np.full(n, rng.uniform(-0.7, 0.7)) + 0.05 * drift[:, 0]
    pitch = np.full(n, rng.uniform(-0.35, 0.35)) + 0.05 * drift[:, 1]
    roll = np.full(n, rng.uniform(-0.5, 0.5)) + 0.05 * drift[:, 2]
    position = start + tremor
    curl = np.zeros(n)
    pinch = np.zeros(n)
    spread = np.full(n, rng.uniform(0.6, 1.0))
    if activity == "idle":
        position = position + drift * rng.uniform(0.005, 0.04)
        curl += rng.uniform(0.1, 0.45) + 0.08 * _smooth_noise(rng, t, 0.4, 1)[:, 0]
        spread *= 0.5
    elif activity == "reach":
        period = rng.uniform(0.8, 1.3) / speed
        pause = rng.uniform(0.0, 0.15) / speed
        distance = rng.uniform(0.2, 0.4)
        direction = rng.normal(size=3) * (1.0, 1.0, 0.3)
        direction /= np.linalg.norm(direction)
        cycle = (t + rng.uniform(0, 2 * (period + pause))) % (2 * (period + pause))
        outward = _min_jerk(cycle / period)
        back = 1.0 - _min_jerk((cycle - period - pause) / period)
        amount = np.where(cycle < period + pause, outward, back)
        position = position + np.outer(amount, direction * distance)
        moving = np.sin(np.pi * np.clip(np.where(cycle < period + pause, cycle, cycle - period - pause)
                                        / period, 0, 1))
        curl += 0.25 - 0.2 * moving  # the hand opens while it travels (pre-shaping)
        spread *= 0.5 + 0.5 * moving
    elif activity == "grasp":
        period = rng.uniform(1.0, 1.6) / speed
        phase = ((t + rng.uniform(0, period)) % period) / period
        closing = _min_jerk(phase / 0.4) - _min_jerk((phase - 0.6) / 0.35)
        curl += 0.05 + rng.uniform(0.45, 0.9) * closing
        approach = rng.normal(size=3) * 0.02
        position = position + np.outer(closing, approach) + drift * 0.005
        spread *= 1.0 - closing
    elif activity == "screw":
        frequency = rng.uniform(0.9, 1.8) * speed
        amplitude = rng.uniform(0.3, 1.1)
        roll = roll + amplitude * np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi))
        pinch += rng.uniform(0.7, 1.0)
        curl += rng.uniform(0.25, 0.45)
        position = position + drift * 0.004
        spread *= 0.3
    elif activity == "insert":
        period = rng.uniform(1.0, 1.6) / speed
        phase = ((t + rng.uniform(0, period)) % period) / period
        depth = _min_jerk(phase / 0.5) - _min_jerk((phase - 0.7) / 0.3)
        direction = np.array([rng.normal() * 0.3, rng.normal() * 0.3, -1.0])
        direction /= np.linalg.norm(direction)
        wiggle = np.sin(2 * np.pi * rng.uniform(3.0, 5.0) * t) * (depth > 0.9) * rng.uniform(0.002, 0.005)
        position = position + np.outer(depth * rng.uniform(0.02, 0.08), direction)
        position[:, 0] += wiggle
        pinch += rng.uniform(0.8, 1.0)
        curl += rng.uniform(0.35, 0.55)
        spread *= 0.3
    elif activity == "hold":
        position = position + drift * rng.uniform(0.005, 0.04)
        curl += rng.uniform(0.6, 0.95) + 0.03 * _smooth_noise(rng, t, 0.5, 1)[:, 0]
        spread *= 0.1
    else:
        raise ValueError(f"unknown activity {activity!r}; known: {', '.join(ACTIVITIES)}")
    return _Motion(position, yaw, pitch, roll, np.clip(curl, 0, 1), np.clip(pinch, 0, 1), spread)


def _rotation(axis: int, angles: np.ndarray) -> np.ndarray:
    """``(F, 3, 3)`` rotations about a coordinate axis."""
    c, s = np.cos(angles), np.sin(angles)
    out = np.zeros((angles.size, 3, 3))
    i, j = [a for a in range(3) if a != axis]
    out[:, axis, axis] = 1.0
    out[:, i, i] = c
    out[:, j, j] = c
    out[:, i, j] = -s
    out[:, j, i] = s
    return out


def hand_keypoints_3d(motion_curl: np.ndarray, motion_pinch: np.ndarray, motion_spread: np.ndarray,
                      proportions: dict[str, np.ndarray]) -> np.ndarray:
    """``(F, 21, 3)`` keypoints of a right hand in its own frame, palm lengths."""
    n = motion_curl.size
    points = np.zeros((n, NUM_KEYPOINTS, 3))
    points[:, WRIST] = 0.0
    normal = np.array([0.0, 0.0, 1.0])
    for finger, chain in FINGER_KEYPOINTS.items():
        base = np.array(_MCP[finger])
        lengths = proportions[finger]
        points[:, chain[0]] = base
        if finger == "thumb":
            opposition = np.clip(np.maximum(0.8 * motion_curl, motion_pinch), 0, 1)[:, None]
            open_dir = np.array([0.75, 0.65, 0.05])
            opposed_dir = np.array([0.05, 0.75, 0.65])
            direction = (1 - opposition) * open_dir + opposition * opposed_dir
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            towards = np.array([-0.6, 0.35, 0.7]) / np.linalg.norm([-0.6, 0.35, 0.7])
            flex = np.stack([0.25 * motion_curl + 0.15 * motion_pinch,
                             0.45 * motion_curl + 0.3 * motion_pinch,
                             0.5 * motion_curl + 0.35 * motion_pinch], axis=1)
        else:
            spread = np.deg2rad(_SPREAD_DEG[finger]) * motion_spread
            axis_dir = base / np.linalg.norm(base)
            # rotate the finger's axis in the palm plane by its spread angle
            c, s = np.cos(spread), np.sin(spread)
            direction = np.stack([c * axis_dir[0] - s * axis_dir[1], s * axis_dir[0] + c * axis_dir[1],
                                  np.zeros(n)], axis=1)
            towards = np.broadcast_to(normal, (n, 3))
            pinch_weight = 1.0 if finger == "index" else (0.7 if finger == "middle" else 0.5)
            closing = np.maximum(motion_curl, pinch_weight * motion_pinch * 0.7)
            # closing 1 is a power grasp around a part (a tool handle), not a tight fist
            flex = np.stack([np.deg2rad(8 + 55 * closing), np.deg2rad(10 + 70 * closing),
                             np.deg2rad(6 + 40 * closing)], axis=1)
        angle = np.zeros(n)
        previous = points[:, chain[0]]
        for joint, length, bend_angle in zip(chain[1:], lengths, flex.T, strict=True):
            angle = angle + bend_angle
            segment = np.cos(angle)[:, None] * direction + np.sin(angle)[:, None] * towards
            segment /= np.linalg.norm(segment, axis=1, keepdims=True)
            points[:, joint] = previous + length * segment
            previous = points[:, joint]
    return points


@dataclass(frozen=True)
class _Camera:
    rotation: np.ndarray  # world -> camera
    position: np.ndarray
    focal_px: float
    centre: tuple[float, float]


def _camera(rng: np.random.Generator, image_size: tuple[int, int]) -> _Camera:
    """A camera looking at the workspace from a random viewpoint above the table."""
    target = np.array([0.0, 0.4, 0.12]) + rng.normal(0, 0.03, 3)
    azimuth = rng.uniform(-np.pi, np.pi)
    elevation = rng.uniform(np.deg2rad(35), np.deg2rad(85))
    distance = rng.uniform(0.7, 1.3)
    position = target + distance * np.array([np.cos(elevation) * np.cos(azimuth),
                                             np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    forward = (target - position) / distance
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    roll = rng.uniform(-0.2, 0.2)
    c, s = np.cos(roll), np.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    return _Camera(np.stack([right, down, forward]), position, float(rng.uniform(450, 750)),
                   (image_size[0] / 2.0, image_size[1] / 2.0))


def _project(camera: _Camera, world: np.ndarray) -> np.ndarray:
    local = (world - camera.position) @ camera.rotation.T
    depth = np.maximum(local[..., 2:3], 1e-3)
    return local[..., :2] / depth * camera.focal_px + np.asarray(camera.centre)


@dataclass(frozen=True)
class SyntheticClip:
    """One generated clip: raw pixel keypoints per frame (NaN where dropped) and its truth."""

    activity: str
    handedness: Handedness
    stamps_ns: np.ndarray  # (F,) from 0
    keypoints: np.ndarray  # (F, 21, 2) float32, NaN where dropped or the hand was missed
    scores: np.ndarray  # (F, 21)
    clean: np.ndarray  # (F, 21, 2) before noise and dropping
    palm_px: float


def generate_clip(activity: str, rng: np.random.Generator, subject: _Subject,
                  settings: SyntheticSettings, noise: float | None = None,
                  missing: float | None = None) -> SyntheticClip:
    """One clip of ``activity``; ``noise``/``missing`` override the settings' random ranges."""
    duration = rng.uniform(*settings.duration_s)
    fps = rng.uniform(*settings.fps)
    period = 1.0 / fps
    steps = rng.uniform(0.8, 1.2, int(duration * fps) + 2) * period
    t = np.cumsum(steps) - steps[0]
    t = t[t <= duration]
    speed = subject.speed * rng.uniform(0.8, 1.25)
    handedness = subject.dominant if rng.random() < 0.75 else subject.dominant.swapped()
    motion = _primitive(activity, t, speed, rng)
    local = hand_keypoints_3d(motion.curl, motion.pinch, motion.spread, subject.proportions)
    if handedness is Handedness.LEFT:
        local[..., 0] *= -1.0
    # Hand frame -> world: fingers forward (+y), palm down (-z) at yaw = pitch = roll = 0; roll turns
    # about the forearm (the hand's y axis), as when turning a screw.
    # (a half turn about y: a right hand's thumb then points to -x, a mirrored left hand's to +x).
    palm_down = np.diag([-1.0, 1.0, -1.0])
    rotation = (_rotation(2, motion.yaw) @ _rotation(0, motion.pitch) @ _rotation(1, motion.roll)
                @ palm_down)
    world = np.einsum("fij,fkj->fki", rotation, local * subject.palm_m) + motion.position[:, None, :]
    camera = _camera(rng, settings.image_size)
    pixels = _project(camera, world)
    # a keypoint outside the image is not seen (a hand reaching out of view loses its fingers)
    outside = ((pixels < 0) | (pixels >= np.asarray(settings.image_size, float))).any(axis=-1)
    palm_px = float(np.median(np.linalg.norm(pixels[:, 9] - pixels[:, WRIST], axis=-1)))
    palm_px = max(palm_px, 1.0)
    sigma = rng.uniform(*settings.noise) if noise is None else noise
    drop = rng.uniform(*settings.missing) if missing is None else missing
    noisy = pixels + rng.normal(0.0, sigma * palm_px, pixels.shape)
    scores = rng.uniform(0.6, 1.0, pixels.shape[:2])
    dropped = (rng.random(pixels.shape[:2]) < drop) | outside
    missed = rng.random(t.size) < settings.missed_detection
    dropped |= missed[:, None]
    noisy[dropped] = np.nan
    scores[dropped] = 0.0
    stamps = np.round(t * 1e9).astype(np.int64)
    return SyntheticClip(activity, handedness, stamps, noisy.astype(np.float32),
                         scores.astype(np.float32), pixels.astype(np.float32), palm_px)


def generate_recording(subject_seed: int, settings: SyntheticSettings = SyntheticSettings(),
                       noise: float | None = None, missing: float | None = None,
                       source: str = "") -> tuple[PoseRecording, list[ActivitySegment]]:
    """All clips of one subject (generator seed) in one recording, with their annotations.

    Clips come in random order, ``_GAP_BETWEEN_CLIPS_S`` apart; the recording starts at a
    ROS-like absolute stamp, and the segments are in seconds from the first frame.
    """
    rng = np.random.default_rng(subject_seed)
    subject = _subject(rng)
    order = [a for a in settings.activities for _ in range(settings.clips_per_class)]
    rng.shuffle(order)
    origin_ns = 1_700_000_000_000_000_000 + subject_seed * 10_000_000_000
    offset_ns = 0
    stamps, keypoints, scores, handedness, track_ids, segments = [], [], [], [], [], []
    name = source or f"subject_{subject_seed:03d}.npz"
    for clip_index, activity in enumerate(order):
        clip = generate_clip(str(activity), rng, subject, settings, noise, missing)
        clip_stamps = clip.stamps_ns + offset_ns
        stamps.append(clip_stamps)
        keypoints.append(clip.keypoints)
        scores.append(clip.scores)
        handedness.append(np.full(clip_stamps.size, int(clip.handedness), np.uint8))
        track_ids.append(np.full(clip_stamps.size, clip_index, np.int64))
        segments.append(ActivitySegment(name, clip_stamps[0] * 1e-9, clip_stamps[-1] * 1e-9,
                                        clip.handedness.name.lower(), clip.activity))
        offset_ns = int(clip_stamps[-1]) + round(_GAP_BETWEEN_CLIPS_S * 1e9)
    all_stamps = np.concatenate(stamps)
    recording = PoseRecording(
        stamps_ns=all_stamps + origin_ns,
        keypoints=np.concatenate(keypoints)[:, None],
        keypoint_scores=np.concatenate(scores)[:, None],
        handedness=np.concatenate(handedness)[:, None],
        image_width=settings.image_size[0], image_height=settings.image_size[1],
        track_ids=np.concatenate(track_ids)[:, None])
    return recording, segments


def generate_dataset(subject_seeds: Sequence[int], settings: SyntheticSettings = SyntheticSettings(),
                     noise: float | None = None, missing: float | None = None
                     ) -> list[tuple[PoseRecording, list[ActivitySegment]]]:
    """One recording and its annotations per subject."""
    return [generate_recording(seed, settings, noise, missing) for seed in subject_seeds]
