"""Gloves painted over a real bare hand (hand_pose_refiner.gloving), on a frame of a real clip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from support import SHARED_DATA

from hand_pose_refiner.api import HandPipeline
from hand_pose_refiner.gloving import (
    GloveStyle,
    cuff_mask,
    cuff_of,
    finds_reference_hand,
    glove_mask,
    hand_size,
    keypoint_boxes,
    paint_gloves,
)
from hand_pose_refiner.skeleton import WRIST

CLIP = SHARED_DATA / "bare_hand_clips" / "hands1.webm"


@pytest.fixture(scope="module")
def frame_and_hand() -> tuple[np.ndarray, np.ndarray]:
    """Frame 60 of a real bare-hand clip (BGR) and the general model's first hand on it."""
    capture = cv2.VideoCapture(str(CLIP))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 60)
    ok, bgr = capture.read()
    capture.release()
    assert ok, f"cannot read {CLIP}"
    hands = HandPipeline()(bgr)
    assert len(hands), "the general model finds the bare hand of this frame"
    return bgr, np.asarray(hands.keypoints[0], np.float64)


def test_the_glove_covers_every_keypoint_and_the_skin_between_them(frame_and_hand) -> None:
    bgr, hand = frame_and_hand
    mask = glove_mask(hand, bgr.shape[:2], cuff=False)
    inside = [mask[round(y), round(x)] for x, y in hand if 0 <= x < bgr.shape[1] and 0 <= y < bgr.shape[0]]
    assert len(inside) == 21 and all(value == 255 for value in inside)
    # Thick: the glove is wider than the keypoints' own box.
    ys, xs = np.nonzero(mask)
    assert xs.max() - xs.min() > np.ptp(hand[:, 0]) and ys.max() - ys.min() > np.ptp(hand[:, 1])


def test_the_cuff_runs_from_the_wrist_away_from_the_fingers(frame_and_hand) -> None:
    bgr, hand = frame_and_hand
    cuff = cuff_mask(hand, bgr.shape[:2])
    ys, xs = np.nonzero(cuff)
    assert len(xs) > 0
    towards_fingers = hand[9] - hand[WRIST]
    projection = (np.stack([xs, ys], 1) - hand[WRIST]) @ towards_fingers / np.hypot(*towards_fingers)
    size = hand_size(hand)
    # Beyond the wrist on the forearm's side, except the short overlap that joins it to the palm.
    assert np.median(projection) < 0
    assert projection.min() < -1.0 * size and projection.max() <= 0.25 * size + 2.0  # pixels drawn
    described = cuff_of(hand)
    assert described is not None and described.far > described.near


def test_painted_gloves_are_off_white_and_leave_the_rest_of_the_frame_alone(frame_and_hand) -> None:
    bgr, hand = frame_and_hand
    gloved = paint_gloves(bgr, [hand])
    assert gloved.shape == bgr.shape and gloved.dtype == np.uint8
    mask = glove_mask(hand, bgr.shape[:2]) > 0
    far = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    assert np.array_equal(gloved[far], bgr[far])
    core = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    hsv = cv2.cvtColor(gloved, cv2.COLOR_BGR2HSV)[core]
    original = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)[core]
    assert np.median(hsv[:, 1]) < 30  # nearly colourless (skin is not)
    assert np.median(hsv[:, 2]) > 140 and np.median(hsv[:, 2]) > np.median(original[:, 2])
    assert np.median(original[:, 1]) > np.median(hsv[:, 1]) + 20
    # Shading comes from the original: the glove is not one flat colour.
    assert np.std(hsv[:, 2].astype(float)) > 5


def test_no_hand_or_an_unusable_hand_paints_nothing(frame_and_hand) -> None:
    bgr, _ = frame_and_hand
    assert np.array_equal(paint_gloves(bgr, []), bgr)
    missing = np.full((21, 2), np.nan)
    assert not glove_mask(missing, bgr.shape[:2]).any()
    assert np.array_equal(paint_gloves(bgr, [missing]), bgr)
    with pytest.raises(ValueError):
        paint_gloves(bgr[..., 0], [missing])
    with pytest.raises(ValueError):
        hand_size(np.zeros((20, 2)))


def test_thicker_style_covers_more(frame_and_hand) -> None:
    bgr, hand = frame_and_hand
    thin = glove_mask(hand, bgr.shape[:2], GloveStyle(finger_radius=0.1, palm_margin=0.05), cuff=False)
    thick = glove_mask(hand, bgr.shape[:2], cuff=False)
    assert (thick > 0).sum() > (thin > 0).sum()
    assert not ((thin > 0) & (thick == 0)).any()


def test_a_found_hand_counts_only_where_it_overlaps_a_reference_hand(frame_and_hand) -> None:
    _, hand = frame_and_hand
    reference = hand[None]
    assert finds_reference_hand(hand[None] + 2.0, reference)
    elsewhere = hand + np.array([400.0, 0.0])
    assert not finds_reference_hand(elsewhere[None], reference)
    assert finds_reference_hand(np.stack([elsewhere, hand]), reference)
    assert not finds_reference_hand(np.zeros((0, 21, 2)), reference)
    assert not finds_reference_hand(reference, np.zeros((0, 21, 2)))
    box = keypoint_boxes(reference)[0]
    assert box[0] == np.nanmin(hand[:, 0]) and box[3] == np.nanmax(hand[:, 1])
