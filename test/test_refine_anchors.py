"""Anchor hands: zoomed-in copies that keep the labels on the pixels."""

from __future__ import annotations

import cv2
import numpy as np
from helpers import frame_with_hands, open_hand

from hand_pose_refiner.coco import CocoImage, build_coco, load_coco
from hand_pose_refiner.refinement.anchors import ZOOM_HAND_SHARE, ZOOM_SIZE, write_zoomed_copies, zoomed_hands
from hand_pose_refiner.skeleton import KeypointState


def _labelled_image(tmp_path):
    """A 640x480 image with two hands drawn as white dots where their keypoints are."""
    hands = frame_with_hands(open_hand(center=(200, 240), scale=1.2), open_hand(center=(470, 200), scale=0.8))
    hands = hands.with_arrays(keypoint_states=np.zeros((2, 21), np.uint8))  # all observed
    image = np.zeros((480, 640, 3), np.uint8)
    for point in hands.keypoints.reshape(-1, 2):
        cv2.circle(image, (round(float(point[0])), round(float(point[1]))), 2, (255, 255, 255), -1)
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), image)
    return CocoImage(1, path, hands)


def test_zoomed_copies_keep_every_label_on_its_pixel(tmp_path):
    item = _labelled_image(tmp_path)
    annotations = write_zoomed_copies([item], tmp_path / "zoomed", seed=3, copies=4)
    copies = load_coco(annotations)
    assert len(copies) == 8  # 4 of each hand
    assert not list(tmp_path.glob("*.partial"))
    for copy in copies:
        image = cv2.imread(str(copy.path), cv2.IMREAD_GRAYSCALE)
        assert image.shape == (ZOOM_SIZE, ZOOM_SIZE)
        labelled = copy.hands.keypoints[np.isfinite(copy.hands.keypoints).all(axis=-1)]
        assert len(labelled) >= 21  # the zoomed hand is whole (the other may be cut or absent)
        for x, y in labelled:
            row, column = min(round(float(y)), ZOOM_SIZE - 1), min(round(float(x)), ZOOM_SIZE - 1)
            assert image[row, column] > 100  # the dot drawn at the original point
        extents = [np.ptp(points[np.isfinite(points).all(axis=-1)], axis=0).max() / ZOOM_SIZE
                   for points in copy.hands.keypoints]
        assert any(ZOOM_HAND_SHARE[0] - 0.02 <= e <= ZOOM_HAND_SHARE[1] + 0.02 for e in extents)
    # with a second run the folder is replaced, not mixed
    write_zoomed_copies([item], tmp_path / "zoomed", seed=4, copies=1)
    assert len(load_coco(tmp_path / "zoomed" / "annotations.json")) == 2
    assert len(list((tmp_path / "zoomed").glob("*.jpg"))) == 2


def test_keypoints_outside_a_copy_become_missing():
    hands = frame_with_hands(open_hand(center=(100, 100), scale=1.0))
    window = (100.0, 60.0, 100.0)  # the right half of the hand
    zoomed = zoomed_hands(hands, window)
    inside = (hands.keypoints[0, :, 0] >= 100) & (hands.keypoints[0, :, 0] < 200) \
        & (hands.keypoints[0, :, 1] >= 60) & (hands.keypoints[0, :, 1] < 160)
    assert 0 < inside.sum() < 21
    assert np.isnan(zoomed.keypoints[0, ~inside]).all()
    assert (zoomed.keypoint_states[0, ~inside] == KeypointState.MISSING).all()
    expected = (hands.keypoints[0, inside] - (100, 60)) * ZOOM_SIZE / 100
    assert np.allclose(zoomed.keypoints[0, inside], expected, atol=1e-3)
    assert (zoomed.image_width, zoomed.image_height) == (ZOOM_SIZE, ZOOM_SIZE)
    assert len(zoomed_hands(hands, (1000.0, 1000.0, 50.0))) == 0  # a window without the hand
    assert build_coco([("x.jpg", zoomed)])["annotations"]
