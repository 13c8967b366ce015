import numpy as np
import pytest

from hand_pose_refiner.skeleton import (
    BONE_NAMES,
    BONES,
    FINGER_KEYPOINTS,
    KEYPOINT_NAMES,
    NUM_KEYPOINTS,
    Handedness,
    bone_lengths,
    tip_first_to_base_first,
)


def test_keypoint_order_is_wrist_then_fingers_base_to_tip():
    assert len(KEYPOINT_NAMES) == NUM_KEYPOINTS == 21
    assert KEYPOINT_NAMES[0] == "wrist"
    assert KEYPOINT_NAMES[1:5] == ("thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip")
    assert KEYPOINT_NAMES[5] == "index_mcp" and KEYPOINT_NAMES[8] == "index_tip"
    assert KEYPOINT_NAMES[20] == "pinky_tip"
    assert FINGER_KEYPOINTS["middle"] == (9, 10, 11, 12)


def test_bones_form_a_tree_rooted_at_the_wrist():
    assert BONES.shape == (20, 2)
    children = sorted(BONES[:, 1].tolist())
    assert children == list(range(1, 21)), "every keypoint but the wrist has exactly one parent"
    assert all(parent < child for parent, child in BONES)
    assert BONE_NAMES[0] == "wrist->thumb_cmc"
    assert BONE_NAMES[5] == "index_mcp->index_pip"


def test_bone_lengths_vectorised_and_nan_aware():
    points = np.zeros((2, 21, 2))
    points[0, 1] = (3.0, 4.0)
    points[1, 2] = np.nan
    lengths = bone_lengths(points)
    assert lengths.shape == (2, 20)
    assert lengths[0, 0] == pytest.approx(5.0)
    assert np.isnan(lengths[1, 1]) and np.isnan(lengths[1, 2])
    with pytest.raises(ValueError, match="21 keypoints"):
        bone_lengths(np.zeros((20, 2)))


def test_tip_first_reordering_is_an_involution():
    points = np.arange(21 * 3).reshape(21, 3)
    reordered = tip_first_to_base_first(points)
    assert reordered[0, 0] == 0
    assert reordered[1:5, 0].tolist() == [12, 9, 6, 3]
    np.testing.assert_array_equal(tip_first_to_base_first(reordered), points)


def test_handedness_labels_and_mirror():
    assert Handedness.from_label(" Left ") is Handedness.LEFT
    assert Handedness.from_label("right") is Handedness.RIGHT
    assert Handedness.from_label("") is Handedness.UNKNOWN
    assert Handedness.LEFT.swapped() is Handedness.RIGHT
    assert Handedness.UNKNOWN.swapped() is Handedness.UNKNOWN
