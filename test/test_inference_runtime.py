"""The MediaPipe port's inference runtimes: OpenVINO, compiled from the torch networks, finds the
hands torch finds on real frames, follows every change of the weights, and is chosen by config."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from hand_pose_refiner.config import Config, config_from_mapping
from hand_pose_refiner.errors import ConfigError, ModelError
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector, MediaPipePoseEstimator, runtime
from hand_pose_refiner.models.mediapipe.geometry import crop
from hand_pose_refiner.models.mediapipe.palm_detector import INPUT_SIZE
from hand_pose_refiner.models.mediapipe.runtime import resolve_runtime

pytest.importorskip("openvino")

GLOVED_STILL = "hags_gloved_assembly/top_view/gloved/J_GL10.jpg"


def clip_frames(path, count: int, step: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames, index = [], 0
    while len(frames) < count:
        ok, frame = capture.read()
        assert ok, f"{path} ended after {index} frames"
        if index % step == 0:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        index += 1
    return frames


def hands_of(detector, estimator, frames):
    return [estimator.estimate([frame], detector.detect([frame]))[0] for frame in frames]


def test_openvino_finds_the_hands_torch_finds_on_real_frames(shared_data):
    """Bare-hand clips (one and two hands) and a gloved still through tiles: the same hands, their
    keypoints within a tenth of a pixel or so and their scores within 1e-3."""
    frames = [*clip_frames(shared_data / "bare_hand_clips" / "hands1.webm", 6, 25),
              *clip_frames(shared_data / "bare_hand_clips" / "hands5.webm", 4, 35)]
    found = {}
    for name in ("torch", "openvino"):
        detector = MediaPipeHandDetector(device="cpu", runtime=name)
        estimator = MediaPipePoseEstimator(device="cpu", runtime=name, self_check=True)
        assert (detector.runtime, estimator.runtime) == (name, name)
        found[name] = hands_of(detector, estimator, frames)
        still = cv2.cvtColor(cv2.imread(str(shared_data / GLOVED_STILL)), cv2.COLOR_BGR2RGB)
        tiled = MediaPipeHandDetector(device="cpu", runtime=name, tile_size=0.5)
        found[name].append(tiled.detect([still])[0])
    assert sum(len(hands) for hands in found["torch"][:-1]) >= 12
    assert len(found["torch"][-1]) >= 1  # a glove a tile finds
    for ours, theirs in zip(found["openvino"], found["torch"], strict=True):
        assert len(ours) == len(theirs)
        assert np.abs(ours.keypoints - theirs.keypoints).max(initial=0) < 0.5
    for ours, theirs in zip(found["openvino"][:-1], found["torch"][:-1], strict=True):
        assert np.abs(ours.keypoint_scores - theirs.keypoint_scores).max(initial=0) < 1e-3
    assert np.abs(found["openvino"][-1].scores - found["torch"][-1].scores).max() < 1e-3


def detector_outputs(detector: MediaPipeHandDetector, views: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The torch module's own decoded outputs, the reference for the compiled ones."""
    with torch.inference_mode():
        decoded, scores = detector._decoded_outputs(torch.from_numpy(views))
    return decoded.numpy(), scores.numpy()


def test_the_compiled_detector_follows_every_change_of_its_weights(shared_data, tmp_path):
    still = cv2.cvtColor(cv2.imread(str(shared_data / GLOVED_STILL)), cv2.COLOR_BGR2RGB)
    detector = MediaPipeHandDetector(device="cpu", runtime="openvino", tile_size=0.5)
    views = np.stack([crop(still, roi, INPUT_SIZE, border=cv2.BORDER_CONSTANT)
                      for roi in detector.rois(1280, 720)[:3]])

    def assert_follows() -> None:
        decoded, scores = detector.raw_outputs(views)
        expected_decoded, expected_scores = detector_outputs(detector, views)
        assert decoded.shape == expected_decoded.shape
        assert np.abs(scores - expected_scores).max() < 1e-4
        assert np.abs(decoded - expected_decoded).max() < 1e-4

    assert_follows()
    before = detector.raw_outputs(views)[1]
    with torch.no_grad():  # a fine-tuning step writes the weights in place
        detector.net.cls24.bias.add_(2.0)
    assert_follows()
    assert not np.allclose(detector.raw_outputs(views)[1], before, atol=1e-3)
    # The compilation of the weights as they were is shared: it kept its own copy of them.
    pretrained = MediaPipeHandDetector(device="cpu", runtime="openvino")
    assert np.abs(pretrained.raw_outputs(views)[1] - before).max() < 1e-4
    detector.net.keep_heads()  # a second set of heads: twice the anchors
    assert_follows()
    assert detector.raw_outputs(views)[1].shape[1] == 2 * before.shape[1]
    saved = detector.save(tmp_path / "refined.safetensors")
    fresh = MediaPipeHandDetector(device="cpu", runtime="openvino")
    assert fresh.raw_outputs(views)[1].shape == before.shape
    fresh.load(saved)  # loading a file: new weights, kept heads and all
    assert np.abs(fresh.raw_outputs(views)[1] - detector.raw_outputs(views)[1]).max() < 1e-4


def test_models_with_the_same_weights_compile_once(shared_data):
    frame = clip_frames(shared_data / "bare_hand_clips" / "hands1.webm", 1, 1)[0]
    runtime._compiled.clear()  # counted from none: a full cache would hide a new entry
    MediaPipeHandDetector(device="cpu", runtime="openvino").detect([frame])
    compiled = len(runtime._compiled)
    assert compiled == 1
    for _ in range(2):
        MediaPipeHandDetector(device="cpu", runtime="openvino").detect([frame])
    assert len(runtime._compiled) == compiled


def test_auto_is_openvino_on_the_cpu_and_torch_elsewhere():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert resolve_runtime("auto", cpu) == "openvino"
    assert resolve_runtime("auto", cpu, installed=False) == "torch"
    assert resolve_runtime("auto", gpu) == resolve_runtime("openvino", gpu) == "torch"
    assert resolve_runtime("torch", cpu) == "torch"
    with pytest.raises(ModelError, match="openvino package is not installed"):
        resolve_runtime("openvino", cpu, installed=False)
    with pytest.raises(ModelError, match="unknown inference runtime 'tflite'"):
        resolve_runtime("tflite", cpu)


def test_the_config_chooses_the_runtime_of_both_networks():
    detector, estimator = create_backend(config_from_mapping({"models": {"device": "cpu"},
                                                           "mediapipe": {"runtime": "torch"}}))
    assert (detector.runtime, estimator.runtime) == ("torch", "torch")
    detector, estimator = create_backend(Config())
    assert Config().mediapipe.runtime == "auto"
    assert (detector.runtime, estimator.runtime) == ("openvino", "openvino")
    with pytest.raises(ConfigError, match="runtime"):
        config_from_mapping({"mediapipe": {"runtime": "fast"}})


def test_a_warmed_up_model_has_compiled_and_a_pickled_one_compiles_its_own(shared_data):
    """The live nodes warm up when configured; Ray workers get models by pickle."""
    import pickle

    frame = clip_frames(shared_data / "bare_hand_clips" / "hands1.webm", 1, 1)[0]
    detector = MediaPipeHandDetector(device="cpu", runtime="openvino")
    assert detector._runner._request is None
    detector.warm_up()
    assert detector._runner._request is not None
    copy = pickle.loads(pickle.dumps(detector))
    assert copy._runner._request is None and copy.runtime == "openvino"
    found, again = detector.detect([frame])[0], copy.detect([frame])[0]
    assert len(found) >= 1 and np.array_equal(found.boxes, again.boxes)


def test_fine_tuning_evaluates_with_torch_and_the_next_inference_compiles_its_weights(shared_data):
    """Compiling every epoch's weights for the epoch's evaluation would cost more than it saves."""
    from hand_pose_refiner.coco import load_coco
    from hand_pose_refiner.images import read_rgb
    from hand_pose_refiner.models.base import FineTuneSettings

    labelled = load_coco(shared_data / "labelled_hands" / "onehand10k" / "test_onehand10k.json")
    detector = MediaPipeHandDetector(device="cpu", runtime="openvino")
    runtime._compiled.clear()  # counted from none: a full cache would hide a new entry
    detector.warm_up()
    compiled = len(runtime._compiled)
    assert compiled == 1
    detector.fine_tune(labelled[:3], FineTuneSettings(epochs=2, batch_size=4, samples_per_image=1, seed=0,
                                                      learning_rate=1e-3), val_dataset=labelled[3:5])
    assert len(runtime._compiled) == compiled and detector._runner.runtime == "openvino"
    image = read_rgb(labelled[0].path)
    found = detector.detect([image])[0]
    assert len(runtime._compiled) == compiled + 1  # the fine-tuned weights, once
    with detector._runner.torch_only():
        expected = detector.detect([image])[0]
    assert len(found) == len(expected) and np.allclose(found.boxes, expected.boxes, atol=0.05)
