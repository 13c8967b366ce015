"""The activity_recognizer node with real rclpy: tracked poses in, HandActivity out."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np
import pytest
from ros_graph import activity_node_probe
from support import import_or_skip_ros

from hand_pose_refiner.activity.dataset import WindowSet, labelled_windows
from hand_pose_refiner.activity.synthetic import SyntheticSettings, generate_recording
from hand_pose_refiner.activity.training import TrainSettings, train_activity_model
from hand_pose_refiner.config import Config
from hand_pose_refiner.filters.pipeline import PoseFilterPipeline
from hand_pose_refiner.filters.temporal import FilterMode
from hand_pose_refiner.ros.conversions import frame_hands_to_message

CLASSES = ("idle", "screw")


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    """A small model the test trains itself on two clearly different synthetic activities."""
    logging.getLogger("hand_pose_refiner.filters").setLevel(logging.ERROR)
    config = replace(Config(), activity=replace(Config().activity, class_names=CLASSES))
    settings = SyntheticSettings(clips_per_class=3, activities=CLASSES, noise=(0.0, 0.01),
                                 missing=(0.0, 0.05))
    sets = []
    for seed in (21, 22, 23, 24):
        recording, segments = generate_recording(seed, settings)
        sets.append(labelled_windows(recording.frames(), segments, config, stride_frames=4))
    model, _ = train_activity_model(WindowSet.concatenate(sets), config.activity,
                                    TrainSettings(epochs=8, batch_size=32, learning_rate=5e-3, threads=1,
                                                  channels=(16, 32), strides=(1, 2), temporal_kernel=5),
                                    log=None)
    path = model.save(tmp_path_factory.mktemp("activity") / "idle_screw.safetensors")
    return config, path


def tracked_recording(config: Config, seed: int):
    """A held-out subject doing each activity twice, tracked and filtered as the live graph does;
    with the truth as (start_ns, end_ns, label) spans."""
    settings = SyntheticSettings(clips_per_class=2, activities=CLASSES, noise=(0.005, 0.005),
                                 missing=(0.0, 0.0), missed_detection=0.0)
    recording, segments = generate_recording(seed, settings)
    raw = recording.frames()
    origin = raw[0].stamp_ns
    pipeline = PoseFilterPipeline(config, FilterMode.ONLINE)
    frames = [frame for item in raw for frame in pipeline.push(item)]
    truth = [(origin + round(seg.start_s * 1e9), origin + round(seg.end_s * 1e9), seg.label)
             for seg in segments]
    return frames, truth


def test_node_publishes_the_activity_of_a_generated_sequence(trained_checkpoint, rclpy_types):
    import_or_skip_ros("rclpy")
    config, checkpoint = trained_checkpoint
    frames, truth = tracked_recording(config, seed=900)
    assert len(frames) > 4 * config.activity.window_frames
    parameters = {"activity.checkpoint": str(checkpoint), "activity.class_names": list(CLASSES),
                  "activity.publish_rate_hz": 100.0}
    with activity_node_probe(rclpy_types, parameters, depth=200) as (executor, publisher, received):
        for frame in frames:
            publisher.publish(frame_hands_to_message(frame, rclpy_types))
            executor.spin_once(timeout_sec=0.0)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)

    assert len(received) >= 8, "too few HandActivity messages"

    def truth_at(stamp_ns: int) -> str | None:
        return next((label for start, end, label in truth if start <= stamp_ns <= end), None)

    judged = [(m.label, truth_at(m.window_end.sec * 10**9 + m.window_end.nanosec)) for m in received]
    judged = [(label, true) for label, true in judged if true is not None]
    correct = sum(label == true for label, true in judged)
    assert correct >= 0.8 * len(judged), judged
    assert {label for label, _ in judged} == set(CLASSES)
    message = received[-1]
    assert list(message.class_names) == list(CLASSES)
    assert abs(sum(message.class_scores) - 1.0) < 1e-3
    assert message.confidence == max(message.class_scores)
    window_start = message.window_start.sec * 10**9 + message.window_start.nanosec
    window_end = message.window_end.sec * 10**9 + message.window_end.nanosec
    assert window_start < window_end
    assert {m.track_id for m in received} <= {int(t) for f in frames for t in f.track_ids}
    assert np.isclose(message.header.stamp.sec * 10**9 + message.header.stamp.nanosec, window_end)


def test_node_with_a_missing_checkpoint_refuses_to_configure(ros_context, tmp_path):
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from hand_pose_refiner.ros.nodes.activity_recognizer import ActivityRecognizerNode

    missing = str(tmp_path / "missing.safetensors")
    node = ActivityRecognizerNode(context=ros_context,
                                  parameter_overrides=[Parameter("activity.checkpoint", value=missing)])
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert not hasattr(node, "recognizer")
    node.destroy_node()
