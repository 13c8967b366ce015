"""The OpenMMLab backend with real, tiny, randomly initialised mmdet and mmpose models.

A small Cascade R-CNN and a small HRNet train for a few iterations on the COCO dataset that
``replay`` writes from a real bare-hand clip, are saved, loaded back, and run through the backend
interface, ``refine`` and the in-process node graph. Marked ``mmlab``: scripts/test.sh runs them
in the OpenMMLab environment (.venv-mmlab), where a missing mmdet or mmpose fails them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from support import REPO, import_mmlab_or_skip

from hand_pose_refiner.cli import main
from hand_pose_refiner.coco import load_coco
from hand_pose_refiner.config import ModelsConfig
from hand_pose_refiner.errors import ConfigError, WeightsError
from hand_pose_refiner.hands import Detections
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.models.base import FineTuneSettings
from hand_pose_refiner.refinement.replay import ANNOTATIONS

pytestmark = pytest.mark.mmlab


@pytest.fixture(scope="module", autouse=True)
def _mmlab():
    import_mmlab_or_skip()
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def replayed(shared_data, tmp_path_factory):
    """The COCO dataset ``replay`` (default backend) writes from 12 frames of a bare-hand clip."""
    out = tmp_path_factory.mktemp("replay") / "run"
    clip = shared_data / "bare_hand_clips" / "hands1.webm"
    assert main(["replay", str(clip), "--out", str(out), "--stride", "10", "--max-frames", "12",
                 "--device", "cpu", "--quiet"]) == 0
    images = [item for item in load_coco(out / ANNOTATIONS) if len(item.hands)]
    assert len(images) >= 6, "the default backend found hands in too few frames of a bare-hand clip"
    return images


@pytest.fixture(scope="module")
def trained(replayed, tmp_path_factory):
    """Small detector and pose model, randomly initialised, trained 2 iterations each, saved."""
    from hand_pose_refiner.models.mmlab import MMLabHandDetector, MMLabPoseEstimator

    folder = tmp_path_factory.mktemp("mmlab")
    train, val = replayed[:4], replayed[4:6]
    config = FineTuneSettings(epochs=1, batch_size=2, learning_rate=1e-3, freeze_backbone=False, seed=0,
                            checkpoint_dir=folder)
    detector = MMLabHandDetector(config="small", device="cpu", score_threshold=0.0)
    pose = MMLabPoseEstimator(config="small", device="cpu")
    reports = {"detector": detector.fine_tune(train, config, val_dataset=val),
               "pose": pose.fine_tune(train, config, val_dataset=val)}
    paths = {"detector": detector.save(folder / "detector.safetensors"),
             "pose": pose.save(folder / "pose.safetensors")}
    return {"detector": detector, "pose": pose, "reports": reports, "paths": paths, "val": val}


def test_fine_tuning_trains_and_writes_checkpoints(trained):
    for kind, report in trained["reports"].items():
        assert report.train_images == 4 and report.val_images == 2, kind
        assert len(report.epochs) == 1
        epoch = report.epochs[0]
        assert np.isfinite(report.initial_loss) and np.isfinite(epoch.train_loss), kind
        assert epoch.checkpoint is not None and epoch.checkpoint.is_file()
    assert "detection_rate" in trained["reports"]["detector"].epochs[0].metrics
    assert 0.0 <= trained["reports"]["pose"].epochs[0].metrics["pck"] <= 1.0


def test_checkpoints_load_back_with_the_same_weights_and_outputs(trained):
    from hand_pose_refiner.models.mmlab import MMLabHandDetector, MMLabPoseEstimator

    image = read_rgb(trained["val"][0].path)
    detector = MMLabHandDetector(trained["paths"]["detector"], device="cpu", score_threshold=0.0)
    pose = MMLabPoseEstimator(trained["paths"]["pose"], device="cpu")
    for loaded, original in ((detector, trained["detector"]), (pose, trained["pose"])):
        assert loaded.source.endswith("(stored config)")
        ours, theirs = loaded.net.state_dict(), original.net.state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[name], theirs[name]) for name in ours)
    before = trained["detector"].detect([image])[0]
    after = detector.detect([image])[0]
    np.testing.assert_allclose(after.boxes, before.boxes, atol=1e-3)
    boxes = trained["val"][0].hands.boxes
    np.testing.assert_allclose(pose.predict_boxes(image, boxes)[0],
                               trained["pose"].predict_boxes(image, boxes)[0], atol=1e-3)


def test_backend_interface_gives_what_the_default_backend_gives(trained):
    config = ModelsConfig(backend="mmlab", device="cpu", detection_score_threshold=0.0,
                          detector_checkpoint=str(trained["paths"]["detector"]),
                          pose_checkpoint=str(trained["paths"]["pose"]))
    detector, estimator = create_backend(config)
    default_detector, default_estimator = create_backend(ModelsConfig(device="cpu"))
    images = [read_rgb(item.path) for item in trained["val"]]
    found = detector.detect(images)
    reference = default_detector.detect(images)
    assert [type(d) for d in found] == [type(d) for d in reference]
    for detections, image in zip(found, images, strict=True):
        assert (detections.image_width, detections.image_height) == (image.shape[1], image.shape[0])
        assert detections.boxes.shape[1:] == (4,) and np.all(np.diff(-detections.scores) >= 0)
    labelled = [Detections(item.hands.boxes, np.ones(len(item.hands), np.float32), np.zeros((0, 0, 2)),
                           item.hands.image_width, item.hands.image_height) for item in trained["val"]]
    hands = estimator.estimate(images, labelled, stamps_ns=[1, 2])
    expected = default_estimator.estimate(images, labelled, stamps_ns=[1, 2])
    for ours, theirs in zip(hands, expected, strict=True):
        assert ours.keypoints.shape[1:] == theirs.keypoints.shape[1:] == (21, 2)
        assert ours.stamp_ns == theirs.stamp_ns and ours.image_width == theirs.image_width
        assert set(ours.arrays()) == set(theirs.arrays())
        assert np.all((ours.keypoint_scores >= 0) & (ours.keypoint_scores <= 1))
        assert ours.model_name == "mmlab/HRNet"
    # keypoints land on or near their hand box
    box = labelled[0].boxes[0]
    size = max(box[2] - box[0], box[3] - box[1])
    points = hands[0].keypoints[0]
    assert np.all((points >= box[:2] - size) & (points <= box[2:] + size))


def write_config(path, **models):
    path.write_text(yaml.safe_dump({"models": models}))
    return path


def test_refine_runs_one_full_iteration_with_the_mmlab_backend(trained, shared_data, tmp_path):
    config = write_config(tmp_path / "mmlab.yaml", detector_checkpoint=str(trained["paths"]["detector"]),
                          pose_checkpoint=str(trained["paths"]["pose"]))
    clip = shared_data / "bare_hand_clips" / "hands2.webm"
    out = tmp_path / "run"
    labelled = shared_data / "labelled_hands" / "onehand10k" / "test_onehand10k.json"
    assert main(["refine", str(clip), "--backend", "mmlab", "--config", str(config), "--out", str(out),
                 "--max-frames", "4", "--stride", "20", "--iterations", "1", "--epochs", "1",
                 "--train-batch-size", "2", "--samples-per-image", "1", "--device", "cpu", "--quiet",
                 "--patience", "1", "--labelled", str(labelled), "--grid-frames", "2"]) == 0
    state = json.loads((out / "state.json").read_text())
    names = [step["name"] for step in state["steps"]]
    assert names == ["iter0/evaluate", "iter1/pseudo_labels", "iter1/detector", "iter1/estimator",
                     "iter1/evaluate"]
    for which in ("detector", "estimator"):
        weights = out / "iter1" / f"{which}.safetensors"
        assert weights.is_file()
    from hand_pose_refiner.models.mmlab import MMLabHandDetector

    MMLabHandDetector(out / "iter1" / "detector.safetensors", device="cpu")
    assert (out / "report.html").is_file()


def test_refine_fine_tunes_both_mmlab_models_on_its_pseudo_labels(trained, replayed, tmp_path):
    """Thresholds low enough for the barely trained models' hands to become pseudo-labels, so the
    round really trains both networks through mmengine and evaluates the result."""
    import cv2

    from hand_pose_refiner.config import load_config
    from hand_pose_refiner.refinement.input_spec import InputSpec
    from hand_pose_refiner.refinement.refine import Refinement, RefineSettings, Thresholds
    from hand_pose_refiner.refinement.replay import ReplaySettings

    stills = tmp_path / "stills"
    stills.mkdir()
    for item in replayed[:3]:
        cv2.imwrite(str(stills / item.path.name), cv2.imread(str(item.path)))
    config = write_config(tmp_path / "mmlab.yaml", backend="mmlab", device="cpu",
                          detector_checkpoint=str(trained["paths"]["detector"]),
                          pose_checkpoint=str(trained["paths"]["pose"]))
    config_text = yaml.safe_load(config.read_text())
    config_text["spatial_filter"] = {"rules": ["hand_score", "max_hands"]}
    config.write_text(yaml.safe_dump(config_text))
    options = RefineSettings(targets=(InputSpec(stills, stills=True),), iterations=1, epochs=1, batch_size=2,
                            samples_per_image=1, learning_rate=1e-3, freeze_backbone=False,
                            schedule=(Thresholds(0.0, 0.0, 0.0, 0.0, 2, 100.0, 180.0),))
    state = Refinement(tmp_path / "run", options, load_config(config), ReplaySettings(progress=False)).run()
    results = {step["name"]: step["result"] for step in state.to_json()["steps"]}
    assert results["iter1/pseudo_labels"]["accepted_hands"] > 0
    for which in ("detector", "estimator"):
        result = results[f"iter1/{which}"]
        assert "skipped" not in result and result["train_images"] > 0, result
        assert np.isfinite(result["final_loss"])
    from safetensors.torch import load_file

    before = load_file(str(trained["paths"]["pose"]))
    after = load_file(str(tmp_path / "run" / "iter1" / "estimator.safetensors"))
    assert any(not torch.equal(before[name], after[name]) for name in before)


def test_in_process_node_graph_runs_the_mmlab_backend(trained, shared_data, tmp_path, rclpy_types):
    from support import import_or_skip_ros

    from hand_pose_refiner.ros.probe import GraphProbe, read_clip, start_process, stop_processes

    rclpy = import_or_skip_ros("rclpy")
    config = write_config(tmp_path / "graph.yaml", backend="mmlab", device="cpu",
                          detection_score_threshold=0.0,
                          detector_checkpoint=str(trained["paths"]["detector"]),
                          pose_checkpoint=str(trained["paths"]["pose"]))
    frames, _ = read_clip(shared_data / "bare_hand_clips" / "hands1.webm", 6)
    process = start_process(["-m", "hand_pose_refiner.cli", "run", "--config", str(config)], cwd=REPO)
    probe = GraphProbe(rclpy, rclpy_types)
    try:
        probe.wait_for_graph(image_subscribers=2, timeout=120.0)
        published = probe.publish_clip(frames, 2.0, rclpy_types, 1_700_000_000_000_000_000)
        probe.spin_for(6.0)
    finally:
        probe.close()
        output = stop_processes([process])[0]
    assert process.returncode == 0, output
    for stage in ("detections", "raw"):
        stamps = {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in probe.received[stage]}
        assert stamps and stamps <= set(published), f"{stage}: {len(stamps)} frames"
    raw = [m for _, m in probe.received["raw"]]
    assert any(len(m.hands) for m in raw), "the mmlab pose node published no hands"
    assert all(h.model_name == "mmlab/HRNet" for m in raw for h in m.hands)


# ---------------------------------------------------------------------------------- bad input


def test_missing_config_and_checkpoint_files_are_named(tmp_path):
    from hand_pose_refiner.models.mmlab import MMLabHandDetector, MMLabPoseEstimator

    with pytest.raises(ConfigError, match=r"nowhere\.py: detector config file not found"):
        MMLabHandDetector(config=str(tmp_path / "nowhere.py"), device="cpu")
    with pytest.raises(WeightsError, match=r"gone\.safetensors: pose checkpoint not found"):
        MMLabPoseEstimator(tmp_path / "gone.safetensors", device="cpu")


def test_configs_with_the_wrong_number_of_keypoints_or_classes_are_refused(tmp_path):
    from mmengine.config import Config

    from hand_pose_refiner.models.mmlab import MMLabHandDetector, MMLabPoseEstimator
    from hand_pose_refiner.models.mmlab.configs import builtin_config

    pose = builtin_config("pose", "small")
    pose["model"]["head"]["out_channels"] = 17
    Config(pose).dump(str(tmp_path / "pose17.py"))
    with pytest.raises(ConfigError,
                       match=r"pose17\.py: the pose config has 17 keypoints; the backend needs 21"):
        MMLabPoseEstimator(config=str(tmp_path / "pose17.py"), device="cpu")
    detector = builtin_config("detector", "small")
    for head in detector["model"]["roi_head"]["bbox_head"]:
        head["num_classes"] = 80
    Config(detector).dump(str(tmp_path / "coco80.py"))
    with pytest.raises(ConfigError,
                       match=r"coco80\.py: the detector config has 80 classes; the backend needs 1"):
        MMLabHandDetector(config=str(tmp_path / "coco80.py"), device="cpu")


def _foreign_checkpoint(kind, path, change):
    """A .pth as OpenMMLab writes it (state_dict + meta) of a model with other head sizes."""
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.config import Config
    from mmpose.registry import MODELS as POSE_MODELS

    from hand_pose_refiner.models.mmlab.configs import builtin_config
    from hand_pose_refiner.models.mmlab.runtime import scope

    config = builtin_config(kind, "small")
    change(config["model"])
    with scope(kind):
        net = (DET_MODELS if kind == "detector" else POSE_MODELS).build(Config(config).model)
    torch.save({"meta": {"epoch": 3, "dataset_meta": {"classes": ["a", "b", "c"]}},
                "state_dict": net.state_dict()}, path)
    return path


def test_checkpoints_with_the_wrong_number_of_keypoints_or_classes_are_refused(tmp_path):
    from hand_pose_refiner.models.mmlab import MMLabHandDetector, MMLabPoseEstimator

    def seventeen(model):
        model["head"]["out_channels"] = 17

    def three_classes(model):
        for head in model["roi_head"]["bbox_head"]:
            head["num_classes"] = 3

    pose = _foreign_checkpoint("pose", tmp_path / "hrnet_coco17.pth", seventeen)
    with pytest.raises(WeightsError,
                       match=r"hrnet_coco17\.pth: the pose checkpoint has 17 keypoints.*needs 21"):
        MMLabPoseEstimator(pose, config="small", device="cpu")
    detector = _foreign_checkpoint("detector", tmp_path / "cascade3.pth", three_classes)
    with pytest.raises(WeightsError, match=r"cascade3\.pth: the detector checkpoint has 3 classes.*needs 1"):
        MMLabHandDetector(detector, config="small", device="cpu")
    with pytest.raises(WeightsError, match=r"cascade3\.pth: does not fit the pose model"):
        MMLabPoseEstimator(detector, config="small", device="cpu")


def test_own_openmmlab_checkpoint_with_its_config_file_loads(tmp_path):
    from mmengine.config import Config

    from hand_pose_refiner.models.mmlab import MMLabPoseEstimator
    from hand_pose_refiner.models.mmlab.configs import builtin_config

    config = builtin_config("pose", "small")
    config["model"]["backbone"]["init_cfg"] = dict(type="Pretrained", checkpoint="open-mmlab://msra/hrnetv2_w18")
    Config(config).dump(str(tmp_path / "my_hrnet.py"))
    checkpoint = _foreign_checkpoint("pose", tmp_path / "my_hrnet.pth", lambda model: None)
    estimator = MMLabPoseEstimator(checkpoint, config=str(tmp_path / "my_hrnet.py"), device="cpu")
    assert estimator.source == str(tmp_path / "my_hrnet.py")
    saved = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert all(torch.equal(saved[k], v) for k, v in estimator.net.state_dict().items())


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    from hand_pose_refiner.models.mmlab import MMLabHandDetector

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsError, match=r"other\.safetensors: not an OpenMMLab checkpoint"):
        MMLabHandDetector(tmp_path / "other.safetensors", device="cpu")


def test_models_without_a_checkpoint_start_from_the_same_weights():
    from hand_pose_refiner.models.mmlab import MMLabHandDetector, MMLabPoseEstimator

    for make in (lambda: MMLabHandDetector(config="small", device="cpu"),
                 lambda: MMLabPoseEstimator(config="small", device="cpu")):
        first, second = make().net.state_dict(), make().net.state_dict()
        assert all(torch.equal(first[name], second[name]) for name in first)


def test_a_checkpoint_that_needs_unpickling_is_refused_not_loaded(tmp_path):
    import argparse

    from hand_pose_refiner.models.mmlab import MMLabPoseEstimator

    path = tmp_path / "full_runner_state.pth"
    torch.save({"state_dict": {}, "message_hub": argparse.Namespace(epoch=3)}, path)
    with pytest.raises(WeightsError, match=r"full_runner_state\.pth: cannot be read with "
                                           r"torch\.load\(weights_only=True\).*'state_dict'"):
        MMLabPoseEstimator(path, config="small", device="cpu")
