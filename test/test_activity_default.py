"""The packaged activity model: what an empty activity.checkpoint loads, what it was trained on, and
the default graph's activity_recognizer publishing reach decisions for real recordings with no
activity setting at all."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from ros_graph import activity_node_probe
from support import REPO, import_or_skip_ros, launch_file_namespace

from hand_pose_refiner.activity.packaged import PACKAGED_REACH_CHECKPOINT, activity_checkpoint
from hand_pose_refiner.activity.reach import ReachRecognizer
from hand_pose_refiner.activity.reach_checkpoint import checkpoint_training
from hand_pose_refiner.activity.reach_features import PHASE_NAMES, REACH
from hand_pose_refiner.activity.reach_model import ReachModel
from hand_pose_refiner.config import ActivityConfig, Config, load_config
from hand_pose_refiner.errors import ActivityCheckpointError
from hand_pose_refiner.filters.pipeline import PoseFilterPipeline
from hand_pose_refiner.filters.temporal import FilterMode
from hand_pose_refiner.ros.conversions import frame_hands_to_message
from hand_pose_refiner.ros.nodes import DEFAULT_GRAPH

RECORDING = "P3_M_05"


def _stamp(message_time) -> int:
    return message_time.sec * 10**9 + message_time.nanosec


@pytest.fixture(scope="module")
def recording(rtg_sequences):
    """One real reach-to-grasp recording and what the temporal_filter node publishes for it."""
    sequence = next(s for s in rtg_sequences if s.name == RECORDING)
    pipeline = PoseFilterPipeline(Config(), FilterMode.ONLINE)
    filtered = [out for _, frame in sequence.frames() for out in pipeline.push(frame)]
    return sequence, filtered


def test_an_empty_checkpoint_is_the_packaged_reach_model():
    assert ActivityConfig().checkpoint == ""
    assert load_config(REPO / "config/assembly.yaml").activity.checkpoint == ""
    assert activity_checkpoint(ActivityConfig()) == PACKAGED_REACH_CHECKPOINT
    assert PACKAGED_REACH_CHECKPOINT.stat().st_size < 1_000_000
    model = ReachModel.load(PACKAGED_REACH_CHECKPOINT)
    assert model.size_names == ("S", "M", "L")
    own = ActivityConfig(checkpoint="/cell/models/window.safetensors")
    assert str(activity_checkpoint(own)) == own.checkpoint


def test_the_packaged_model_says_what_it_was_trained_on():
    training = checkpoint_training(PACKAGED_REACH_CHECKPOINT)
    assert training["data"] == "rtg_object_size"
    assert training["participants"] == [f"P{n}" for n in range(1, 9)]
    assert training["sequences"] == 715 and training["frames"] == 246_727
    assert training["seed"] == 0 and training["epochs"] == 20 and training["threads"] == 1
    assert str(training["command"]).startswith("hand-pose-refiner train-activity --rtg ")


@pytest.mark.slow
def test_training_on_the_recordings_twice_writes_the_same_bytes_and_says_how(shared_data, tmp_path):
    """The recipe of scripts/train_default_activity.sh on two recordings of two people: the same
    command gives the same file, whose metadata names the data and the command."""
    from hand_pose_refiner.cli import main

    written = []
    for run in ("first", "second"):
        out = tmp_path / run / "reach.safetensors"
        assert main(["train-activity", "--rtg", str(shared_data / "hand_actions/rtg_object_size"),
                     "--participants", "P2", "P7", "--max-sequences", "2", "--epochs", "1", "--seed", "3",
                     "--out", str(out)]) == 0
        written.append(out.read_bytes())
    assert written[0] == written[1]
    training = checkpoint_training(tmp_path / "first" / "reach.safetensors")
    assert training["participants"] == ["P2", "P7"] and training["sequences"] == 4
    assert training["seed"] == 3 and training["epochs"] == 1
    assert training["command"].endswith("--seed 3 --epochs 1 --threads 1 --participants P2 P7 "
                                        "--max-sequences 2 --out reach.safetensors")


def test_a_missing_packaged_model_is_named(monkeypatch, tmp_path):
    import hand_pose_refiner.activity.packaged as packaged

    monkeypatch.setattr(packaged, "PACKAGED_REACH_CHECKPOINT", tmp_path / "gone.safetensors")
    with pytest.raises(ActivityCheckpointError, match=r"packaged reach model .*gone\.safetensors"):
        packaged.activity_checkpoint(ActivityConfig())


def test_the_packaged_model_recognises_a_real_recording(recording, one_torch_thread):
    """It is trained on all eight participants, this recording included: a check that the shipped
    weights are the trained ones, not a held-out figure (see docs/results/activity_default_model.md)."""
    sequence, filtered = recording
    recognizer = ReachRecognizer(ReachModel.load(activity_checkpoint(ActivityConfig())))
    decisions = [result for frame in filtered for result in recognizer.push(frame)]
    truth = {sequence.stamp_ns(i): int(sequence.phase[i]) for i in np.flatnonzero(sequence.usable)}
    right = sum(d.phase == truth[d.stamp_ns] for d in decisions)
    assert right >= 0.9 * len(decisions)
    onsets = [d for d in decisions if d.onset]
    assert len(onsets) == 1
    assert -0.3e9 <= onsets[0].stamp_ns - sequence.onset_ns <= sequence.end_ns - sequence.onset_ns


def test_config_check_passes_on_the_default_config(capsys):
    from hand_pose_refiner.cli import main

    assert main(["config", "check"]) == 0
    assert main(["config", "check", "--config", str(REPO / "config/assembly.yaml")]) == 0
    assert capsys.readouterr().out.count(": ok") == 2


def test_the_default_graph_has_the_activity_recognizer_in_the_runner_and_the_launch_file():
    from hand_pose_refiner.cli import build_parser

    assert "activity_recognizer" in DEFAULT_GRAPH
    assert launch_file_namespace()["DEFAULT_NODES"].split(",") == list(DEFAULT_GRAPH)
    assert build_parser().parse_args(["run"]).nodes == list(DEFAULT_GRAPH)


def test_the_node_configures_with_the_default_config(ros_context):
    from rclpy.lifecycle import TransitionCallbackReturn

    from hand_pose_refiner.ros.nodes.activity_recognizer import ActivityRecognizerNode

    node = ActivityRecognizerNode(context=ros_context)
    started = time.perf_counter()
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    print(f"activity_recognizer configured in {time.perf_counter() - started:.2f} s")
    assert isinstance(node.recognizer, ReachRecognizer)
    node.destroy_node()


def test_the_node_publishes_reach_decisions_with_no_activity_setting(recording, rclpy_types):
    import_or_skip_ros("rclpy")
    sequence, filtered = recording
    with activity_node_probe(rclpy_types, {}, depth=2000) as (executor, publisher, received):
        for frame in filtered:
            publisher.publish(frame_hands_to_message(frame, rclpy_types))
            executor.spin_once(timeout_sec=0.0)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (received and _stamp(received[-1].header.stamp)
                                                   >= filtered[-1].stamp_ns - 10**8):
            executor.spin_once(timeout_sec=0.05)

    # publish_rate_hz (10 per track and second of stamp time), and never an onset dropped
    seconds = (filtered[-1].stamp_ns - filtered[0].stamp_ns) * 1e-9
    assert 0.8 * 10 * seconds <= len(received) <= 10 * seconds + 3
    truth = {sequence.stamp_ns(i): PHASE_NAMES[sequence.phase[i]] for i in np.flatnonzero(sequence.usable)}
    right = sum(m.label == truth[_stamp(m.header.stamp)] for m in received)
    assert right >= 0.85 * len(received)
    onsets = [m for m in received if m.onset]
    assert len(onsets) == 1
    assert -0.3e9 <= _stamp(onsets[0].header.stamp) - sequence.onset_ns <= sequence.end_ns - sequence.onset_ns
    for message in received:
        assert list(message.class_names) == list(PHASE_NAMES)
        assert math.isclose(sum(message.class_scores), 1.0, abs_tol=1e-3)
        assert list(message.grasp_size_names) == ["S", "M", "L"]
        assert math.isnan(message.time_to_grasp) == (message.label != PHASE_NAMES[REACH])
