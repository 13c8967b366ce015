"""The crop search for hands the palm detector misses (refinement's bootstrap on gloves)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import labelled_pck

from hand_pose_refiner.coco import load_coco
from hand_pose_refiner.config import ModelsConfig
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.models.base import Detections
from hand_pose_refiner.models.mediapipe.estimator import SEARCH_MIN_PRESENCE
from hand_pose_refiner.models.mediapipe.geometry import search_rois
from hand_pose_refiner.refinement.cache import model_key


def test_search_grid_covers_the_image_at_every_size_and_angle():
    rois = search_rois(640, 480, (0.25, 0.5), 4)
    for fraction in (0.25, 0.5):
        side = fraction * 480
        mine = rois[np.isclose(rois[:, 2], side)]
        # crops touch both edges, neighbours overlap by half a side, four angles per position
        for axis, extent in ((0, 640), (1, 480)):
            assert mine[:, axis].min() == pytest.approx(side / 2)
            assert mine[:, axis].max() == pytest.approx(extent - side / 2)
            assert np.diff(np.unique(mine[:, axis])).max() <= side / 2 + 1e-3
        angles = sorted(np.unique(np.round(mine[:, 3], 4)))
        assert angles == pytest.approx([0, np.pi / 2, np.pi, 3 * np.pi / 2], abs=1e-4)
    assert len(search_rois(100, 80, (2.0,), 1)) == 1  # a crop larger than the image: its centre
    assert search_rois(640, 480, (), 4).shape == (0, 4)


@pytest.fixture(scope="module")
def searching():
    detector, estimator = create_backend(ModelsConfig(device="cpu"))
    _, plain = create_backend(ModelsConfig(device="cpu"))
    estimator.search_sizes = (0.35, 0.55, 0.8)
    estimator.min_presence = 0.1  # a refinement round's low candidate threshold: not for searched crops
    return detector, estimator, plain


@pytest.mark.slow
def test_search_finds_labelled_hands_without_any_detection(shared_data, searching):
    """Given no detections at all, the search alone must find the OneHand10K hands, at their
    labelled keypoints (PCK@0.2 box-normalised), each with the live presence at least."""
    _, estimator, plain = searching
    labelled = load_coco(shared_data / "labelled_hands" / "onehand10k" / "test_onehand10k.json")
    found_hands = []
    for item in labelled:
        image = read_rgb(item.path)
        height, width = image.shape[:2]
        nothing = Detections(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 7, 2)), width, height)
        assert len(plain.estimate([image], [nothing])[0]) == 0  # without the search: nothing
        (found,) = estimator.estimate([image], [nothing])
        assert len(found) >= 1, item.path
        assert (found.detection_scores >= SEARCH_MIN_PRESENCE).all()
        found_hands.append(found)
    assert labelled_pck(found_hands, labelled, 0.2) >= 0.9


def test_search_settings_are_part_of_the_prediction_cache_key(searching):
    detector, estimator, plain = searching
    assert model_key(detector, estimator) != model_key(detector, plain)
