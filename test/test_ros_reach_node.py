"""The activity_recognizer node with a reach model and real rclpy: a real recording, replayed at its
recorded time stamps as HandPoseArray, gives per-pose HandActivity phases and one onset event."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from ros_graph import activity_node_probe
from support import import_or_skip_ros

from hand_pose_refiner.activity.reach_features import PHASE_NAMES, REACH
from hand_pose_refiner.config import Config
from hand_pose_refiner.filters.pipeline import PoseFilterPipeline
from hand_pose_refiner.filters.temporal import FilterMode
from hand_pose_refiner.ros.conversions import frame_hands_to_message


def _stamp(message_time) -> int:
    return message_time.sec * 10**9 + message_time.nanosec


@pytest.mark.slow
def test_node_publishes_phases_and_an_onset_for_a_real_recording(small_reach_split, small_reach_model,
                                                                 rclpy_types, tmp_path):
    import_or_skip_ros("rclpy")
    checkpoint = small_reach_model.save(tmp_path / "reach.safetensors")
    sequence = small_reach_split[1][0].sequence  # a held-out participant
    # what the temporal_filter node publishes for this recording
    pipeline = PoseFilterPipeline(Config(), FilterMode.ONLINE)
    filtered = [out for _, frame in sequence.frames() for out in pipeline.push(frame)]
    label_at = {sequence.stamp_ns(i): int(sequence.phase[i]) for i in np.flatnonzero(sequence.usable)}

    parameters = {"activity.checkpoint": str(checkpoint), "activity.publish_rate_hz": 1000.0}
    with activity_node_probe(rclpy_types, parameters, depth=1000) as (executor, publisher, received):
        # replay at the recorded pace: each message leaves when its stamp is due
        start_wall, start_stamp = time.monotonic(), filtered[0].stamp_ns
        for frame in filtered:
            while time.monotonic() - start_wall < (frame.stamp_ns - start_stamp) * 1e-9:
                executor.spin_once(timeout_sec=0.002)
            publisher.publish(frame_hands_to_message(frame, rclpy_types))
        deadline = time.monotonic() + 5
        while len(received) < sum(len(f) for f in filtered) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)

    with_hand = sum(len(frame) > 0 for frame in filtered)
    assert len(received) >= 0.95 * with_hand  # one decision per pose (reliable QoS, no rate limit)
    labels = [(message.label, PHASE_NAMES[label_at[_stamp(message.header.stamp)]]) for message in received]
    matching = sum(said == true for said, true in labels)
    assert matching >= 0.8 * len(labels), labels
    onsets = [message for message in received if message.onset]
    assert len(onsets) == 1
    onset_s = (_stamp(onsets[0].header.stamp) - sequence.onset_ns) * 1e-9
    assert -0.3 <= onset_s <= (sequence.end_ns - sequence.onset_ns) * 1e-9
    for message in received:
        assert list(message.class_names) == list(PHASE_NAMES)
        assert math.isclose(sum(message.class_scores), 1.0, abs_tol=1e-3)
        assert list(message.grasp_size_names) == ["S", "M", "L"]
        assert math.isclose(sum(message.grasp_size_scores), 1.0, abs_tol=1e-3)
        assert math.isnan(message.time_to_grasp) == (message.label != PHASE_NAMES[REACH])
    reaching = [m for m in received if m.label == PHASE_NAMES[REACH]]
    assert reaching and all(0 <= m.time_to_grasp < 3 for m in reaching)
    onset_stamp = _stamp(onsets[0].header.stamp)
    assert all(_stamp(m.reach_start) == onset_stamp for m in reaching if _stamp(m.reach_start))
