"""Things to look at: replay bags with overlay images, and the Foxglove layout that shows them."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import fields

import numpy as np
import pytest
from support import REPO

from hand_pose_refiner.cli import main
from hand_pose_refiner.config import TopicsConfig
from hand_pose_refiner.refinement.overlay_bag import OVERLAY_TOPIC
from hand_pose_refiner.ros.bags import COMPRESSED_IMAGE, HAND_POSE_ARRAY, read_messages
from hand_pose_refiner.ros.images import compressed_to_numpy

FRAMES = 10
IMAGE_TOPIC = "/camera/image_raw/compressed"


@pytest.mark.usefixtures("one_torch_thread")
def test_replay_bag_overlay_holds_one_drawn_image_per_frame(tmp_path, shared_data):
    clip = shared_data / "bare_hand_clips" / "hands1.webm"
    out = tmp_path / "replay"
    assert main(["replay", str(clip), "--max-frames", str(FRAMES), "--out", str(out), "--bag-overlay",
                 "--device", "cpu", "--quiet"]) == 0
    messages = list(read_messages(out / "poses_bag"))
    assert Counter((m.topic, m.msgtype) for m in messages) == {
        (IMAGE_TOPIC, COMPRESSED_IMAGE): FRAMES, (OVERLAY_TOPIC, COMPRESSED_IMAGE): FRAMES,
        ("/hand_poses", HAND_POSE_ARRAY): FRAMES}
    by_stamp: dict[int, dict[str, object]] = {}
    for message in messages:
        by_stamp.setdefault(message.log_time_ns, {})[message.topic] = message.message
    assert len(by_stamp) == FRAMES
    drawn = 0
    for topics in by_stamp.values():
        image, overlay = topics[IMAGE_TOPIC], topics[OVERLAY_TOPIC]
        assert overlay.format == "jpeg" and overlay.header.stamp == image.header.stamp
        pixels, overlay_pixels = compressed_to_numpy(image), compressed_to_numpy(overlay)
        assert overlay_pixels.shape == pixels.shape == (360, 640, 3)
        changed = (np.abs(overlay_pixels.astype(np.int16) - pixels.astype(np.int16)).max(axis=-1) > 80).sum()
        if len(topics["/hand_poses"].hands):
            assert changed > 200  # the skeletons are drawn
            drawn += 1
        else:
            assert bytes(overlay.data) == bytes(image.data)  # nothing to draw: the same picture
    assert drawn >= FRAMES - 2


def _layout_topics(layout):
    """Every topic a Foxglove layout's panels read (images, raw messages, plot paths)."""
    topics = []
    for config in layout["configById"].values():
        if "imageMode" in config:
            topics.append(config["imageMode"]["imageTopic"])
        if "topicPath" in config:
            topics.append(config["topicPath"])
        topics += [path["value"].split(".")[0] for path in config.get("paths", [])]
    return topics


def _panel_ids(node):
    if isinstance(node, str):
        return [node]
    return _panel_ids(node["first"]) + _panel_ids(node["second"])


def test_the_foxglove_layout_shows_the_package_topics():
    layout = json.loads((REPO / "config" / "foxglove_layout.json").read_text())
    assert sorted(_panel_ids(layout["layout"])) == sorted(layout["configById"])
    assert {panel.split("!")[0] for panel in layout["configById"]} == {"Image", "RawMessages", "Plot"}
    topics = _layout_topics(layout)
    package_topics = {getattr(TopicsConfig(), item.name) for item in fields(TopicsConfig)}
    assert all(topic.startswith("/") and topic[1:] in package_topics for topic in topics), topics
    assert OVERLAY_TOPIC in topics and f"/{TopicsConfig().activity}" in topics
