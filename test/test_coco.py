import json

import numpy as np
import pytest
from helpers import frame_with_hands, open_hand

from hand_pose_refiner.coco import (
    annotations_to_frame_hands,
    build_coco,
    frame_hands_to_annotations,
    hand_category,
    load_coco,
)
from hand_pose_refiner.errors import AnnotationError
from hand_pose_refiner.skeleton import FINGER_KEYPOINTS, WRIST, Handedness, KeypointState


def test_round_trip_keeps_every_field():
    hands = frame_with_hands(open_hand(), open_hand((300, 200), angle=0.5))
    hands.keypoint_states[0, 4] = KeypointState.INTERPOLATED
    annotations = frame_hands_to_annotations(hands, image_id=3, first_id=10)
    assert [a["id"] for a in annotations] == [10, 11]
    back = annotations_to_frame_hands(json.loads(json.dumps(annotations)), hands.image_width,
                                      hands.image_height, stamp_ns=hands.stamp_ns)
    back.frame_id, back.model_name = hands.frame_id, hands.model_name
    assert back.equals(hands, atol=1e-4)


def test_written_annotation_is_standard_coco():
    hands = frame_with_hands(open_hand())
    hands.keypoint_states[0, 5] = KeypointState.REJECTED
    hands.keypoint_states[0, 6] = KeypointState.INTERPOLATED
    hands.keypoint_states[0, 7] = KeypointState.OBSERVED
    (annotation,) = frame_hands_to_annotations(hands, image_id=1, first_id=1)
    triples = np.asarray(annotation["keypoints"]).reshape(21, 3)
    assert triples[5].tolist() == [0, 0, 0], "rejected keypoints are unlabelled"
    assert triples[6, 2] == 1 and triples[7, 2] == 2
    x, y, w, h = annotation["bbox"]
    np.testing.assert_allclose([x, y, x + w, y + h], hands.boxes[0], rtol=1e-6)
    assert annotation["area"] == pytest.approx(w * h)
    assert annotation["num_keypoints"] == int((triples[:, 2] > 0).sum())
    back = annotations_to_frame_hands([annotation], 640, 480)
    assert back.keypoint_states[0, 5] == KeypointState.REJECTED
    assert np.isnan(back.keypoints[0, 5]).all()


def test_pycocotools_reads_what_we_write(tmp_path):
    from pycocotools.coco import COCO

    document = build_coco([("a.jpg", frame_with_hands(open_hand(), open_hand((300, 200)))),
                           ("b.jpg", frame_with_hands(open_hand((50, 60))))])
    path = tmp_path / "hands.json"
    path.write_text(json.dumps(document))
    coco = COCO(str(path))
    assert sorted(coco.getImgIds()) == [1, 2]
    assert len(coco.getAnnIds(imgIds=[1])) == 2
    assert coco.loadCats(1)[0]["keypoints"][0] == "wrist"
    assert hand_category()["skeleton"][0] == [1, 2], "COCO skeletons are 1-based"


def test_onehand10k_labels_load_with_missing_keypoints(shared_data):
    images = load_coco(shared_data / "labelled_hands/onehand10k/test_onehand10k.json")
    assert len(images) == 4
    for image in images:
        assert image.path.exists()
        hands = image.hands
        assert len(hands) == 1
        missing = hands.keypoint_states[0] == KeypointState.MISSING
        assert np.isnan(hands.keypoints[0][missing]).all(), "0,0,0 is missing, not the image corner"
        assert np.isfinite(hands.keypoints[0][~missing]).all()
        box = hands.boxes[0]
        labelled = hands.keypoints[0][~missing]
        assert (labelled >= box[:2] - 1).all() and (labelled <= box[2:] + 1).all()
    first = next(i for i in images if i.image_id == 9)
    assert first.hands.keypoint_states[0, WRIST] == KeypointState.MISSING


def base_closer_to_wrist_than_tip(images) -> int:
    """How many fingers have their base nearer the wrist than their tip (most, on open hands)."""
    count = 0
    for image in images:
        keypoints = image.hands.keypoints[0]
        for chain in FINGER_KEYPOINTS.values():
            count += np.linalg.norm(keypoints[chain[0]] - keypoints[WRIST]) < np.linalg.norm(
                keypoints[chain[-1]] - keypoints[WRIST])
    return count


def test_rhd_tip_first_order_is_converted_to_base_first(shared_data):
    path = shared_data / "labelled_hands/rhd/test_rhd.json"
    converted = load_coco(path, tip_first=True)
    as_listed = load_coco(path, tip_first=False)
    assert len(converted) == 3
    raw = json.loads(path.read_text())["annotations"][0]["keypoints"]
    np.testing.assert_allclose(converted[0].hands.keypoints[0][4], raw[1][:2], rtol=1e-6)
    np.testing.assert_allclose(converted[0].hands.keypoints[0][1], raw[4][:2], rtol=1e-6)
    # 15 fingers; two of them are curled into the palm, so their tips lie nearer the wrist.
    assert base_closer_to_wrist_than_tip(converted) >= 12
    assert base_closer_to_wrist_than_tip(as_listed) <= 3
    assert all(image.hands.handedness[0] in (Handedness.LEFT, Handedness.RIGHT) for image in converted)


@pytest.mark.parametrize(("annotation", "message"), [
    ({"id": 4, "keypoints": [1, 2, 2] * 20}, r"21 x, y, v triples"),
    ({"id": 5, "keypoints": [1, 2, 7] * 21}, "visibility must be 0, 1 or 2"),
    ({"id": 6, "keypoints": [1, 2, 2] * 21, "bbox": [1, 2, 3]}, r"'bbox' must be x, y, w, h"),
])
def test_malformed_annotations_are_refused(annotation, message):
    with pytest.raises(AnnotationError, match=message):
        annotations_to_frame_hands([annotation], 100, 100)


def test_unreadable_file_is_refused(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(AnnotationError, match=r"broken\.json"):
        load_coco(path)
