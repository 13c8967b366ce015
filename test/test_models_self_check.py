"""The pose estimator's self-check on real frames: hand-shaped objects out, real hands kept."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from helpers import labelled_pck

from hand_pose_refiner.coco import load_coco
from hand_pose_refiner.config import Config, MediaPipeConfig, ModelsConfig
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.refinement.cache import model_key

# Top-view glovebox frames in which the pre-trained model takes the wooden blocks in the tray
# (around x 705, y 284 of 1280x720) for a hand; no hand is in these frames.
BLOCK_FRAMES = ("J_GL12.jpg", "J_GL20.jpg", "J_GL26.jpg", "J_GL40.jpg")
BLOCKS = np.array([705.0, 284.0])


def _rgb(path) -> np.ndarray:
    return read_rgb(path)


@pytest.fixture(scope="module")
def backends():
    config = Config(models=ModelsConfig(device="cpu"))
    unchecked = create_backend(replace(config, mediapipe=MediaPipeConfig(self_check=False)))
    checked = create_backend(replace(config, mediapipe=MediaPipeConfig(self_check=True)))
    return unchecked, checked


def test_wooden_blocks_taken_for_a_hand_fail_the_self_check(shared_data, backends):
    (detector, unchecked), (_, checked) = backends
    folder = shared_data / "hags_gloved_assembly" / "top_view" / "gloved"
    for name in BLOCK_FRAMES:
        image = _rgb(folder / name)
        detections = detector.detect([image])
        (before,) = unchecked.estimate([image], detections)
        (after,) = checked.estimate([image], detections)
        # without the check the blocks come out as a confident hand ...
        on_blocks = np.linalg.norm(before.keypoints.mean(axis=1) - BLOCKS, axis=-1) < 40
        assert on_blocks.any(), (name, before.keypoints.mean(axis=1))
        # ... with it, nothing is left there (or anywhere: these frames hold no hand)
        assert len(after) == 0, (name, after.keypoints.mean(axis=1), after.detection_scores)


def test_live_video_mode_checks_the_hands_new_detections_bring_in(shared_data, backends):
    (detector, unchecked), (_, checked) = backends
    image = _rgb(shared_data / "hags_gloved_assembly" / "top_view" / "gloved" / BLOCK_FRAMES[0])
    (detections,) = detector.detect([image])
    nothing = FrameHands.empty(0, image.shape[1], image.shape[0])
    assert len(unchecked.estimate_tracked(image, nothing, 0, detections)) >= 1
    assert len(checked.estimate_tracked(image, nothing, 0, detections)) == 0


def test_labelled_hands_pass_the_self_check_with_their_keypoints(shared_data, backends):
    (detector, unchecked), (_, checked) = backends
    labelled = load_coco(shared_data / "labelled_hands" / "onehand10k" / "test_onehand10k.json")
    checked_hands = []
    for item in labelled:
        image = _rgb(item.path)
        detections = detector.detect([image])
        (before,) = unchecked.estimate([image], detections)
        (after,) = checked.estimate([image], detections)
        assert len(after) == len(before) >= 1, item.path
        # the second pass refines the landmarks a little, it does not move the hand
        shift = np.linalg.norm(after.keypoints - before.keypoints, axis=-1).mean(axis=-1)
        assert (shift < 0.1 * np.ptp(before.keypoints, axis=1).max(axis=-1)).all(), (item.path, shift)
        assert (after.detection_scores <= before.detection_scores + 1e-6).all()
        checked_hands.append(after)
    assert labelled_pck(checked_hands, labelled, 0.2) >= 0.9


def test_self_check_setting_is_part_of_the_prediction_cache_key(backends):
    (detector, unchecked), (_, checked) = backends
    assert model_key(detector, unchecked) != model_key(detector, checked)


def test_consistency_check_keeps_real_hands_and_refuses_hands_made_up_from_background(shared_data, backends):
    """A real hand's keypoints hold when its crop is turned, scaled and shifted; keypoints put on
    an empty stretch of the glovebox (or on the wooden blocks) scatter."""
    from hand_pose_refiner.models.mediapipe.estimator import CONSISTENCY_MAX_SPREAD

    (detector, unchecked), _ = backends
    for folder, tip_first in (("onehand10k/test_onehand10k.json", False), ("rhd/test_rhd.json", True)):
        for item in load_coco(shared_data / "labelled_hands" / folder, tip_first=tip_first):
            image = _rgb(item.path)
            (hands,) = unchecked.estimate([image], detector.detect([image]))
            assert (unchecked.keypoint_spread(image, hands.keypoints) < CONSISTENCY_MAX_SPREAD / 2).all()
    top = shared_data / "hags_gloved_assembly" / "top_view" / "gloved"
    image = _rgb(top / BLOCK_FRAMES[0])
    onehand = load_coco(shared_data / "labelled_hands" / "onehand10k" / "test_onehand10k.json")
    shape = onehand[0].hands.keypoints[0]
    shape = shape - np.nanmean(shape, axis=0)
    empty = np.stack([shape + centre for centre in ((300, 200), (640, 150), (900, 300), (200, 500))])
    assert (unchecked.keypoint_spread(image, empty) > CONSISTENCY_MAX_SPREAD).all()
    (made_up,) = unchecked.estimate([image], detector.detect([image]))
    on_blocks = np.linalg.norm(made_up.keypoints.mean(axis=1) - BLOCKS, axis=-1) < 40
    assert (unchecked.keypoint_spread(image, made_up.keypoints[on_blocks]) > CONSISTENCY_MAX_SPREAD).all()


def test_consistency_check_in_estimate_and_in_the_cache_key(shared_data, backends):
    (detector, unchecked), _ = backends
    before = model_key(detector, unchecked)
    image = _rgb(shared_data / "hags_gloved_assembly" / "top_view" / "gloved" / BLOCK_FRAMES[0])
    labelled = load_coco(shared_data / "labelled_hands" / "onehand10k" / "test_onehand10k.json")
    try:
        unchecked.consistency_check = True
        assert model_key(detector, unchecked) != before
        (hands,) = unchecked.estimate([image], detector.detect([image]))
        assert len(hands) == 0  # the blocks are out
        found = [unchecked.estimate([_rgb(item.path)], detector.detect([_rgb(item.path)]))[0]
                 for item in labelled]
        assert labelled_pck(found, labelled, 0.2) >= 0.9
    finally:
        unchecked.consistency_check = False
    assert model_key(detector, unchecked) == before  # off: the key of the caches made before it existed
