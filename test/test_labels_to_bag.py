"""The labels-to-bag job on the real labelled images."""

import numpy as np

from hand_pose_refiner.cli import main
from hand_pose_refiner.coco import load_coco
from hand_pose_refiner.ros.bags import read_hands, read_messages
from hand_pose_refiner.ros.images import compressed_to_numpy


def test_onehand10k_to_mcap(shared_data, tmp_path, capsys):
    annotations = shared_data / "labelled_hands/onehand10k/test_onehand10k.json"
    out = tmp_path / "onehand10k"
    assert main(["labels-to-bag", str(annotations), "--out", str(out)]) == 0
    assert "4 images, 4 hands" in capsys.readouterr().out
    labels = load_coco(annotations)
    for label, hands in zip(labels, read_hands(out, "/hand_poses"), strict=True):
        np.testing.assert_allclose(hands.keypoints, label.hands.keypoints, equal_nan=True)
        assert (hands.image_width, hands.image_height) == (label.hands.image_width, label.hands.image_height)


def test_rhd_to_sqlite3_with_compressed_images(shared_data, tmp_path):
    annotations = shared_data / "labelled_hands/rhd/test_rhd.json"
    out = tmp_path / "rhd"
    assert main(["labels-to-bag", str(annotations), "--out", str(out), "--tip-first", "--storage", "sqlite3",
                 "--compressed"]) == 0
    images = [m for m in read_messages(out, ["/camera/image_raw/compressed"])]
    assert len(images) == 3
    assert compressed_to_numpy(images[0].message).shape == (320, 320, 3)


def test_missing_image_is_a_clear_error(shared_data, tmp_path, capsys):
    annotations = shared_data / "labelled_hands/onehand10k/test_onehand10k.json"
    out = tmp_path / "bag"
    assert main(["labels-to-bag", str(annotations), "--out", str(out), "--images-dir", str(tmp_path)]) == 2
    assert "cannot read image" in capsys.readouterr().err
    assert not out.exists()
