"""Fine-tuning both MediaPipe networks on a tiny real COCO dataset (labelled_hands)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hand_pose_refiner.coco import load_coco
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.models.augment import change_appearance, draw_geometry, recolour_skin, skin_mask
from hand_pose_refiner.models.base import AugmentSettings, FineTuneSettings, split_dataset
from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector, MediaPipePoseEstimator
from hand_pose_refiner.models.mediapipe.palm_training import palm_targets


@pytest.fixture(scope="module")
def labelled(shared_data):
    root = shared_data / "labelled_hands"
    return (load_coco(root / "onehand10k" / "test_onehand10k.json")
            + load_coco(root / "rhd" / "test_rhd.json", tip_first=True))


@pytest.fixture(autouse=True)
def _two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def test_landmark_fine_tuning_lowers_the_loss_and_keeps_held_out_pck(labelled, tmp_path):
    estimator = MediaPipePoseEstimator(device="cpu")
    config = FineTuneSettings(epochs=3, batch_size=8, samples_per_image=4, seed=1,
                            checkpoint_dir=tmp_path,
                            augment=AugmentSettings(glove_probability=0.3))
    report = estimator.fine_tune(labelled[:5], config, val_dataset=labelled[5:])
    assert report.train_images == 5 and report.val_images == 2
    final = report.epochs[-1].metrics
    assert final["fit_loss"] < 0.8 * report.initial_loss
    assert report.initial_metrics["pck"] >= 0.9
    assert final["pck"] >= report.initial_metrics["pck"] - 0.1
    assert final["epe"] < 2 * report.initial_metrics["epe"]
    checkpoints = [epoch.checkpoint for epoch in report.epochs]
    assert [c.name for c in checkpoints] == [f"hand_landmark-epoch{e:03d}.safetensors" for e in (1, 2, 3)]
    reloaded = MediaPipePoseEstimator(checkpoints[-1], device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(reloaded.net.state_dict().values(),
                                                 estimator.net.state_dict().values(), strict=True))


def test_detector_fine_tuning_lowers_the_loss_and_writes_checkpoints(labelled, tmp_path):
    detector = MediaPipeHandDetector(device="cpu")
    before = {name: p.clone() for name, p in detector.net.named_parameters()}
    config = FineTuneSettings(epochs=2, batch_size=8, samples_per_image=3, seed=0, checkpoint_dir=tmp_path)
    report = detector.fine_tune(labelled[:5], config, val_dataset=labelled[5:])
    assert report.epochs[-1].metrics["fit_loss"] < report.initial_loss
    assert report.initial_metrics["detection_rate"] == 1.0  # the pre-trained model finds both
    changed = {name for name, p in detector.net.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all(name.split(".")[0] in ("up12", "fpn12", "cls12", "reg12", "up24", "fpn24",
                                                  "cls24", "reg24") for name in changed)
    assert report.epochs[-1].checkpoint.is_file()
    MediaPipeHandDetector(report.epochs[-1].checkpoint, device="cpu")


def test_split_is_seeded_and_disjoint(labelled):
    config = FineTuneSettings(val_fraction=0.3, seed=3)
    train, val = split_dataset(labelled, config, None)
    again, _ = split_dataset(labelled, config, None)
    assert [i.image_id for i in train] == [i.image_id for i in again]
    assert not {i.image_id for i in train} & {i.image_id for i in val}
    assert len(val) == 2


def test_palm_targets_follow_the_labelled_palm(labelled):
    hands = labelled[4].hands  # RHD 00111, every keypoint labelled
    boxes, palm = palm_targets(hands.keypoints)
    assert palm.shape == (1, 7, 2)
    assert np.array_equal(palm[0, 0], hands.keypoints[0, 0])  # wrist
    assert np.array_equal(palm[0, 2], hands.keypoints[0, 9])  # middle finger MCP
    side = boxes[0, 2] - boxes[0, 0]
    assert side == pytest.approx(boxes[0, 3] - boxes[0, 1])
    centre = (boxes[0, :2] + boxes[0, 2:]) / 2
    assert np.allclose(centre, (palm[0].min(axis=0) + palm[0].max(axis=0)) / 2, atol=1e-3)


def test_augmentation_changes_appearance_and_recolours_skin(labelled):
    image = read_rgb(labelled[0].path)
    rng = np.random.default_rng(0)
    gloved = recolour_skin(image, rng)
    mask = skin_mask(image)
    assert mask.mean() > 0.05
    assert np.abs(gloved.astype(int) - image).sum(axis=-1)[mask].mean() > 20
    assert np.array_equal(gloved[~mask & ~_dilate(mask)], image[~mask & ~_dilate(mask)])
    config = AugmentSettings(colour_probability=1.0, blur_probability=1.0)
    changed = change_appearance(image, rng, config)
    assert changed.shape == image.shape and changed.dtype == np.uint8 and not np.array_equal(changed, image)
    geometry = draw_geometry(np.random.default_rng(5), AugmentSettings())
    assert 0.75 <= geometry.scale <= 1.3 and abs(geometry.rotation) <= math.radians(30)


def _dilate(mask: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0


def _clip_frames(path, step: int, count: int) -> list[np.ndarray]:
    from hand_pose_refiner.refinement.input_spec import InputSpec
    from hand_pose_refiner.refinement.inputs import read_frames

    return [frame.rgb for frame in read_frames(InputSpec(path, stride=step, max_frames=count))]


def _box_side_ratios(detector, images, hands_per_image, box_scale):
    """The pre-trained detector's palm box side over the target box side, per matched hand."""
    from hand_pose_refiner.hands import box_iou

    ratios = []
    for image, points in zip(images, hands_per_image, strict=True):
        detections = detector.detect([image])[0]
        boxes, _ = palm_targets(points, box_scale)
        for box in boxes:
            if len(detections):
                overlap = box_iou(box, detections.boxes)[0]
                best = int(overlap.argmax())
                if overlap[best] > 0.1:
                    detected = detections.boxes[best]
                    ratios.append((detected[2] - detected[0]) / (box[2] - box[0]))
    return np.array(ratios)


def test_palm_targets_match_the_pretrained_boxes_for_annotated_and_predicted_keypoints(labelled, shared_data):
    """Annotated keypoints and the landmark network's own differ in palm extent by ~1.3x; the
    target box of each convention must be the box the pre-trained detector draws, or fine-tuning
    teaches the anchors that find a hand that they are background."""
    from hand_pose_refiner.models.mediapipe.palm_training import (
        ANNOTATED_PALM_BOX_SCALE,
        PREDICTED_PALM_BOX_SCALE,
    )

    detector = MediaPipeHandDetector(device="cpu")
    estimator = MediaPipePoseEstimator(device="cpu")
    annotated = _box_side_ratios(detector, [read_rgb(item.path) for item in labelled],
                                 [item.hands.keypoints for item in labelled], ANNOTATED_PALM_BOX_SCALE)
    frames = _clip_frames(shared_data / "bare_hand_clips" / "hands2.webm", step=12, count=10)
    predicted = [hands.keypoints for hands in estimator.estimate(frames, detector.detect(frames))]
    landmark = _box_side_ratios(detector, frames, predicted, PREDICTED_PALM_BOX_SCALE)
    wrong = _box_side_ratios(detector, frames, predicted, ANNOTATED_PALM_BOX_SCALE)
    assert len(annotated) >= 6 and len(landmark) >= 10
    assert 0.9 <= np.median(annotated) <= 1.1
    assert 0.9 <= np.median(landmark) <= 1.1
    assert np.median(wrong) > 1.2  # the annotated convention on predicted keypoints: boxes too small


def test_anchors_that_already_find_the_palm_are_never_background(shared_data):
    """The detecting anchor of a small palm can sit half an anchor cell off its centre, beyond
    0.75 palm sides: it must be a positive or left out, never a hard negative."""
    import torch

    from hand_pose_refiner.models.mediapipe.anchors import decode_boxes, scores_from_logits
    from hand_pose_refiner.models.mediapipe.palm_training import (
        PREDICTED_PALM_BOX_SCALE,
        _assign,
        _detector_sample,
    )

    detector = MediaPipeHandDetector(device="cpu")
    estimator = MediaPipePoseEstimator(device="cpu")
    frames = _clip_frames(shared_data / "bare_hand_clips" / "hands2.webm", step=12, count=10)
    checked = 0
    for frame, hands in zip(frames, estimator.estimate(frames, detector.detect(frames)), strict=True):
        patch, points = _detector_sample(frame, hands.keypoints, None, FineTuneSettings())
        inputs = torch.from_numpy(patch[None]).permute(0, 3, 1, 2).float() / 255
        with torch.inference_mode():
            regressions, logits = detector.net(inputs)
        predicted = decode_boxes(regressions, detector.anchors)[0, :, :4].numpy()
        scores = scores_from_logits(logits)[0].numpy()
        boxes, _ = palm_targets(points, PREDICTED_PALM_BOX_SCALE)
        owner = _assign(detector.anchors.numpy(), predicted, boxes, np.zeros((0, 4), np.float32))
        assert (owner >= 0).sum() >= len(boxes)
        assert scores[owner == -1].max() < 0.5  # every confident anchor is on a labelled palm
        checked += int((scores >= 0.5).sum())
    assert checked >= 20


def test_kept_heads_keep_what_the_detector_found_before_fine_tuning(labelled, tmp_path):
    """With keep_initial the pre-trained heads stay, frozen, next to the fine-tuned ones on the
    shared backbone; detections of both are merged, so the hands found before are found after."""
    from hand_pose_refiner.errors import ModelError

    images = [read_rgb(item.path) for item in labelled]
    plain = MediaPipeHandDetector(device="cpu")
    before = plain.detect(images)
    detector = MediaPipeHandDetector(device="cpu")
    detector.net.keep_heads()
    for found, again in zip(before, detector.detect(images), strict=True):  # identical heads: same hands
        assert len(found) == len(again) and np.allclose(found.boxes, again.boxes, atol=1e-3)

    with pytest.raises(ModelError, match="freeze_backbone"):
        detector.fine_tune(labelled[:5], FineTuneSettings(epochs=1, freeze_backbone=False, keep_initial=True))
    initial = {name: p.clone() for name, p in detector.net.kept_heads.named_parameters()}
    config = FineTuneSettings(epochs=1, batch_size=8, samples_per_image=2, seed=0, keep_initial=True,
                            learning_rate=1e-3)
    detector.fine_tune(labelled[:5], config, val_dataset=labelled[5:])
    assert all(torch.equal(p, initial[name]) for name, p in detector.net.kept_heads.named_parameters())
    for found, again in zip(before, detector.detect(images), strict=True):
        for box in found.boxes:  # every box the initial heads drew comes out unmoved
            assert np.abs(again.boxes - box).max(axis=1).min() < 1e-3, (box, again.boxes)
    with torch.no_grad():  # own heads that find nothing: the kept ones still find every hand
        for name in ("cls12", "cls24"):
            getattr(detector.net, name).bias.fill_(-50.0)
    for found, again in zip(before, detector.detect(images), strict=True):
        assert len(again) >= len(found)
    path = detector.save(tmp_path / "kept.safetensors")
    reloaded = MediaPipeHandDetector(path, device="cpu")
    assert reloaded.net.kept_heads is not None
    assert all(torch.equal(a, b) for a, b in zip(reloaded.net.state_dict().values(),
                                                 detector.net.state_dict().values(), strict=True))
    reloaded.load(plain.checkpoint)  # a file without kept heads drops them
    assert reloaded.net.kept_heads is None
