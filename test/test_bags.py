"""rosbags writes Image + HandPoseArray bags (sqlite3, mcap); rosbags and rclpy read them back."""

import numpy as np
import pytest
from helpers import frame_with_hands, open_hand, random_image, same_hands
from support import import_or_skip_ros

from hand_pose_refiner.ros.bags import HAND_POSE_ARRAY, IMAGE, BagWriter, read_hands, read_messages
from hand_pose_refiner.ros.conversions import message_to_frame_hands
from hand_pose_refiner.ros.images import image_to_numpy


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_bag_round_trip_through_rosbags_and_rclpy(tmp_path, storage, rclpy_types):
    serialization = import_or_skip_ros("rclpy.serialization")
    path = tmp_path / f"hands_{storage}"
    frames = [frame_with_hands(*[open_hand((80 + 10 * i, 90))] * (i % 3), stamp_ns=1_000 + i * 50_000_000,
                               seed=i) for i in range(6)]
    images = [random_image("bgr8", height=24, width=32, seed=i) for i in range(6)]
    with BagWriter(path, storage=storage) as writer:
        for hands, image in zip(frames, images, strict=True):
            writer.write_image("/cam/image_raw", image, "bgr8", hands.stamp_ns, hands.frame_id)
            writer.write_hands("/cam/hand_poses", hands)
    assert path.is_dir() and not path.with_name(path.name + ".partial").exists()

    messages = list(read_messages(path))
    assert [m.msgtype for m in messages[:2]] == [IMAGE, HAND_POSE_ARRAY]
    assert len(messages) == 12

    # rosbags' own reading
    for original, back in zip(frames, read_hands(path, "/cam/hand_poses"), strict=True):
        assert same_hands(back, original)

    # rclpy decodes the bytes rosbags wrote
    hand_messages = [m for m in messages if m.msgtype == HAND_POSE_ARRAY]
    image_messages = [m for m in messages if m.msgtype == IMAGE]
    for original, item in zip(frames, hand_messages, strict=True):
        decoded = serialization.deserialize_message(item.raw, rclpy_types.HandPoseArray)
        assert same_hands(message_to_frame_hands(decoded), original)
        assert item.log_time_ns == original.stamp_ns
    for image, item in zip(images, image_messages, strict=True):
        decoded = serialization.deserialize_message(item.raw, rclpy_types.Image)
        pixels, encoding = image_to_numpy(decoded)
        assert encoding == "bgr8"
        np.testing.assert_array_equal(pixels, image)


def test_interrupted_write_leaves_no_bag(tmp_path):
    path = tmp_path / "broken"
    with pytest.raises(RuntimeError, match="stop"), BagWriter(path) as writer:
        writer.write_hands("/hands", frame_with_hands(open_hand()))
        raise RuntimeError("stop")
    assert not path.exists()


def test_existing_output_is_not_overwritten(tmp_path):
    (tmp_path / "bag").mkdir()
    with pytest.raises(FileExistsError, match="exists already"):
        BagWriter(tmp_path / "bag")
