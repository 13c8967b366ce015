"""A cell integrator's path end to end on real frames: record a bag, refine on it with a recipe file,
deploy the run's parameter file to the live graph, and receive hand poses and activities."""

from __future__ import annotations

import os
import time
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
import torch
import yaml
from support import REPO, import_or_skip_ros

from hand_pose_refiner.cli import main
from hand_pose_refiner.config import load_config
from hand_pose_refiner.refinement.deploy import DEPLOY_FILE
from hand_pose_refiner.ros.bags import BagWriter
from hand_pose_refiner.ros.probe import GraphProbe, read_clip, start_process, stop_processes

CAMERA_TOPIC = "/camera/image_raw"
CLIP_FRAMES = 60
START_NS = 1_700_000_000_000_000_000
PUBLISH_HZ = 10.0


@pytest.fixture(scope="module")
def clip(shared_data):
    frames, fps = read_clip(shared_data / "bare_hand_clips" / "hands1.webm", CLIP_FRAMES)
    assert len(frames) == CLIP_FRAMES
    return frames, fps


@pytest.fixture(scope="module")
def recording(clip, tmp_path_factory) -> Path:
    """The clip as `ros2 bag record` would store a camera: bgr8 images on one topic, in MCAP."""
    frames, fps = clip
    bag = tmp_path_factory.mktemp("cell") / "recording"
    with BagWriter(bag) as writer:
        for index, frame in enumerate(frames):
            stamp = START_NS + round(index * 1e9 / fps)
            writer.write_image(CAMERA_TOPIC, frame, "bgr8", stamp, "camera_optical_frame")
    return bag


@pytest.fixture(scope="module")
def deployed(recording) -> tuple[Path, str]:
    """refine --config RECIPE --out RUN on the bag (one short round); RUN/deploy.yaml and the output."""
    recipe = recording.parent / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"refinement": {
        "targets": [recording.name], "image_topic": CAMERA_TOPIC, "stride": 3, "iterations": 1,
        "epochs": 1, "detector_epochs": 1, "train_batch_size": 4, "samples_per_image": 1,
        "grid_frames": 2, "threads": 1}}))
    run = recording.parent / "run"
    printed = StringIO()
    previous = torch.get_num_threads()
    with redirect_stdout(printed):
        assert main(["refine", "--config", str(recipe), "--out", str(run), "--device", "cpu", "--quiet"]) == 0
    torch.set_num_threads(previous)
    return run / DEPLOY_FILE, printed.getvalue()


def test_refine_on_a_recorded_bag_hands_over_a_parameter_file(deployed):
    deploy, printed = deployed
    assert f"hand-pose-refiner run --config {os.path.abspath(deploy)}" in printed
    assert f"assembly.launch.py config_file:={os.path.abspath(deploy)}" in printed
    config = load_config(deploy)
    for checkpoint in (config.models.detector_checkpoint, config.models.pose_checkpoint):
        assert checkpoint == "" or (Path(checkpoint).is_absolute() and Path(checkpoint).is_file())
    assert main(["config", "check", "--config", str(deploy)]) == 0


def test_the_deployed_graph_publishes_poses_and_activities(deployed, clip, rclpy_types):
    rclpy = import_or_skip_ros("rclpy")
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    deploy, _ = deployed
    process = start_process(["-m", "hand_pose_refiner.cli", "run", "--config", str(deploy)], cwd=REPO)
    probe = GraphProbe(rclpy, rclpy_types)
    activities: list = []
    probe.node.create_subscription(rclpy_types.HandActivity, "hand_activity", activities.append,
                                   QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    try:
        probe.wait_for_graph(image_subscribers=2)
        deadline = time.monotonic() + 30
        while probe.node.count_publishers("hand_activity") == 0 and time.monotonic() < deadline:
            probe.spin_for(0.1)
        frames, _ = clip
        probe.publish_clip(frames, PUBLISH_HZ, rclpy_types, START_NS)  # a rate a loaded CI machine keeps
        probe.spin_for(4.0)
    finally:
        probe.close()
        output = stop_processes([process])[0]
    assert process.returncode == 0, output
    poses = [message for _, message in probe.received["poses"]]
    with_hands = [message for message in poses if message.hands]
    assert len(with_hands) >= CLIP_FRAMES // 2, f"hands in {len(with_hands)} of {len(poses)} frames"
    tracks = {hand.track_id for message in with_hands for hand in message.hands}
    assert activities, "no HandActivity from the default graph"
    assert {activity.track_id for activity in activities} <= tracks
    assert all(activity.label for activity in activities)
