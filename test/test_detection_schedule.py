"""The live detection schedule (``mediapipe.detector_tiles_per_frame``): the whole frame on every frame,
tiles in rotation, all of a frame's views in one forward pass."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from support import REPO

from hand_pose_refiner.config import Config, MediaPipeConfig, ModelsConfig, load_config
from hand_pose_refiner.hands import boxes_from_keypoints
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.models.following import DetectionSchedule, HandFollower
from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector
from hand_pose_refiner.models.mediapipe.geometry import crop
from hand_pose_refiner.models.mediapipe.palm_detector import INPUT_SIZE
from hand_pose_refiner.models.tile_rotation import TileRotation
from hand_pose_refiner.refinement.scoring import judge, load_judgements

JUDGEMENTS = REPO / "bench" / "data" / "gloved_stills_judgements.json"
# A ceiling-camera still whose glove the general model finds in a tile of 0.5 and not in the
# whole frame (judged a hand in the judgements file).
HELD_STILL = "top_view/gloved/J_GL34.jpg"


def looks(rotation: TileRotation, tiles: int, frames: int, hot: tuple[int, ...] = ()) -> list[list[int]]:
    """The tiles each of ``frames`` frames looks at; a hand is seen in each tile of ``hot`` on every
    frame that looks at it (the detections the schedule counts)."""
    centres = np.stack([np.arange(tiles) * 100.0 + 50, np.full(tiles, 50.0)], axis=1)
    rois = np.concatenate([centres, np.full((tiles, 1), 100.0), np.zeros((tiles, 1))], axis=1)
    seen = []
    for _ in range(frames):
        chosen = rotation.select(tiles)
        seen.append(chosen.tolist())
        rotation.saw(rois.astype(np.float32), centres[[t for t in hot if t in chosen]].astype(np.float32))
    return seen


@pytest.mark.parametrize(("tiles", "per_frame", "period", "hot"),
                         [(21, 3, 0, ()), (21, 3, 0, (4, 17)), (21, 4, 8, (5,)), (21, 4, 8, (1, 2, 20)),
                          (18, 5, 0, (0,)), (21, 2, 30, (3, 9, 10))])
def test_the_rotation_looks_at_every_tile_within_its_cycle(tiles, per_frame, period, hot):
    rotation = TileRotation(per_frame, period)
    cycle = max(period, math.ceil(tiles / per_frame))
    assert rotation.cycle(tiles) == cycle
    seen = looks(rotation, tiles, 12 * cycle, hot)
    assert all(len(chosen) == per_frame for chosen in seen)
    # The stream's first frames look at every tile once ...
    first = math.ceil(tiles / per_frame)
    assert {t for chosen in seen[:first] for t in chosen} == set(range(tiles))
    # ... and from then on every window of `cycle` frames looks at every tile.
    for start in range(len(seen) - cycle + 1):
        assert {t for chosen in seen[start:start + cycle] for t in chosen} == set(range(tiles)), start


def test_tiles_where_hands_were_seen_come_first_in_the_slots_the_cycle_leaves():
    rotation = TileRotation(4, 8)  # 21 tiles: 32 looks per 8 frames, 21 of them owed
    seen = looks(rotation, 21, 40, hot=(13,))
    assert 13 in seen[0] or 13 in seen[3]  # grid order first: tile 13 is in the 4th frame
    later = seen[8:]
    assert all(13 in chosen for chosen in later)  # once seen there, looked at on every frame
    plain = looks(TileRotation(3), 21, 40, hot=(13,))
    assert sum(13 in chosen for chosen in plain[7:]) == len(plain[7:]) // 7 + (len(plain[7:]) % 7 > 0)


def test_a_new_frame_size_starts_the_rotation_over():
    rotation = TileRotation(3)
    rotation.select(21)
    rotation.select(21)
    assert rotation.select(18).tolist() == [0, 1, 2]


@pytest.fixture(scope="module")
def gloved_still(shared_data: Path) -> np.ndarray:
    image = cv2.imread(str(shared_data / "hags_gloved_assembly" / HELD_STILL))
    assert image is not None and image.shape == (720, 1280, 3)
    return np.ascontiguousarray(image[..., ::-1])


def test_one_batched_pass_finds_what_one_pass_per_tile_finds(gloved_still):
    """All views of a real 1280x720 frame in one forward pass give each view's outputs of a pass
    of its own, and the same detections as those passes."""
    detector = MediaPipeHandDetector(device="cpu", tile_size=0.5)
    views = detector.rois(1280, 720)
    assert len(views) == 22
    crops = np.stack([crop(gloved_still, roi, INPUT_SIZE, border=cv2.BORDER_CONSTANT) for roi in views])
    together = detector.raw_outputs(crops)
    alone = []
    for index, roi in enumerate(views):
        rows, scores = (output[0] for output in detector.raw_outputs(crops[index:index + 1]))
        assert np.allclose(together[0][index], rows, atol=1e-4)
        assert np.allclose(together[1][index], scores, atol=1e-5)
        alone.append((rows, scores, roi))
    one_pass = detector.detect_views(gloved_still, views)
    per_view = detector._postprocess(alone, 1280, 720)
    assert len(per_view) >= 2  # tiles find gloves here
    assert len(one_pass) == len(per_view)
    assert np.allclose(one_pass.boxes, per_view.boxes, atol=0.05)
    assert np.allclose(one_pass.keypoints, per_view.keypoints, atol=0.05)
    assert np.allclose(one_pass.scores, per_view.scores, atol=1e-5)


def test_the_schedule_with_every_tile_is_the_detector_and_off_without_tiles(gloved_still):
    config = Config(models=ModelsConfig(device="cpu"),
                    mediapipe=MediaPipeConfig(detector_tile_size=0.5, detector_tiles_per_frame=21))
    detector, _ = create_backend(config)
    (everything,) = detector.detect([gloved_still])
    scheduled = DetectionSchedule(detector).detect(gloved_still)
    assert np.allclose(scheduled.boxes, everything.boxes, atol=0.05)
    unscheduled, _ = create_backend(replace(config, mediapipe=MediaPipeConfig(detector_tile_size=0.5)))
    assert DetectionSchedule(unscheduled).rotation is None


def test_a_held_stills_glove_is_found_within_the_rotation_from_any_phase(shared_data, gloved_still):
    """The still held for the rotation's cycle, after any number of empty frames: the glove is
    among the frame's accepted hands by the cycle's last frame (the whole frame alone never
    finds it)."""
    base = load_config(REPO / "config" / "glovebox.yaml")
    mediapipe = replace(base.mediapipe, detector_tiles_per_frame=3, detector_tile_period=0)
    config = replace(base, models=replace(base.models, device="cpu"), mediapipe=mediapipe)
    assert config.mediapipe.detector_tile_size == 0.5
    regions = load_judgements(JUDGEMENTS)[HELD_STILL]
    detector, estimator = create_backend(config)
    cycle = math.ceil(21 / 3)

    from hand_pose_refiner.filters.spatial import SpatialFilter

    spatial = SpatialFilter(config.spatial_filter)

    def true_hand(hands) -> bool:
        accepted = spatial(hands).accepted if hands is not None else None
        return accepted is not None and len(accepted) > 0 and any(
            judge(box.tolist(), regions) == "hand" for box in boxes_from_keypoints(accepted.keypoints))

    whole_only = create_backend(replace(config, mediapipe=replace(mediapipe, detector_tile_size=0.0)))
    follower = HandFollower(whole_only[1], config)
    assert not any(true_hand(follower.estimate(gloved_still, 33_000_000 * (i + 1),
                                               whole_only[0].detect([gloved_still])[0])) for i in range(2))

    for phase in range(cycle):
        schedule = DetectionSchedule(detector)
        follower = HandFollower(estimator, config)
        stamp = 0
        for _ in range(phase):  # frames without a hand: the rotation moves on, nothing is seen
            assert schedule.rotation is not None
            schedule.rotation.select(21)
        found_on = None
        for frame in range(cycle):
            stamp += 33_333_333
            detections = schedule.detect(gloved_still) if follower.needs_detections(stamp) else None
            if true_hand(follower.estimate(gloved_still, stamp, detections)):
                found_on = frame
                break
        assert found_on is not None, f"not found within {cycle} frames after {phase} empty ones"


def test_the_glovebox_cell_uses_the_schedule():
    config = load_config(REPO / "config" / "glovebox.yaml")
    assert config.mediapipe.detector_tile_size == 0.5
    assert config.mediapipe.detector_tiles_per_frame > 0
    rotation = TileRotation(config.mediapipe.detector_tiles_per_frame, config.mediapipe.detector_tile_period)
    assert rotation.cycle(21) <= 10  # a still held a third of a second at 30 Hz is searched whole
    assert Config().mediapipe.detector_tiles_per_frame == 0  # the defaults look at every tile
    detector, _ = create_backend(replace(config, models=replace(config.models, device="cpu")))
    schedule = DetectionSchedule(detector)
    assert schedule.rotation is not None and schedule.rotation.tiles_per_frame == 3
