"""FrameHands <-> rclpy messages, and sensor_msgs/Image <-> numpy through rclpy messages."""

import numpy as np
import pytest
from helpers import frame_with_hands, open_hand, random_image
from support import import_or_skip_ros

from hand_pose_refiner.errors import ImageSizeError, UnsupportedEncodingError
from hand_pose_refiner.images import ENCODINGS
from hand_pose_refiner.ros.conversions import frame_hands_to_message, message_to_frame_hands
from hand_pose_refiner.ros.images import (
    compressed_to_numpy,
    image_to_numpy,
    numpy_to_compressed,
    numpy_to_image,
)
from hand_pose_refiner.skeleton import KeypointState


def serialize_round_trip(message):
    serialization = import_or_skip_ros("rclpy.serialization")
    return serialization.deserialize_message(serialization.serialize_message(message), type(message))


def test_frame_hands_survive_an_rclpy_message_and_serialization(rclpy_types):
    hands = frame_with_hands(open_hand(), open_hand((300, 200), angle=1.0), stamp_ns=12_345_678_901)
    hands.keypoints[1, 3] = np.nan
    hands.keypoint_states[1, 3] = KeypointState.MISSING
    message = frame_hands_to_message(hands, rclpy_types)
    assert message.header.stamp.sec == 12 and message.header.stamp.nanosec == 345_678_901
    assert message.hands[0].HANDEDNESS_RIGHT == 2 and message.hands[0].KEYPOINT_REJECTED == 2
    assert message_to_frame_hands(serialize_round_trip(message)).equals(hands)


def test_empty_frame_message(rclpy_types):
    hands = frame_with_hands(stamp_ns=5)
    back = message_to_frame_hands(serialize_round_trip(frame_hands_to_message(hands, rclpy_types)))
    assert len(back) == 0 and back.stamp_ns == 5 and back.image_width == 640


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "mono8", "bgra8", "rgba8", "16UC1", "mono16", "32FC1"])
@pytest.mark.parametrize("padding", [0, 5])
def test_image_message_round_trip(rclpy_types, encoding, padding):
    image = random_image(encoding, height=6, width=9, seed=3)
    dtype, channels = ENCODINGS[encoding]
    step = 9 * channels * np.dtype(dtype).itemsize + padding
    message = numpy_to_image(image, encoding, 42, "cam", rclpy_types, step=step)
    assert message.step == step and len(message.data) == 6 * step
    decoded, decoded_encoding = image_to_numpy(serialize_round_trip(message))
    assert decoded_encoding == encoding
    np.testing.assert_array_equal(decoded, image)


def test_big_endian_16uc1_message(rclpy_types):
    message = rclpy_types.Image(height=1, width=2, encoding="16UC1", is_bigendian=1, step=4,
                                data=bytes([0x01, 0x02, 0x03, 0x04]))
    decoded, _ = image_to_numpy(message)
    np.testing.assert_array_equal(decoded, [[0x0102, 0x0304]])


def test_image_message_errors_name_encoding_and_sizes(rclpy_types):
    bad_encoding = rclpy_types.Image(height=2, width=2, encoding="yuv422", step=4, data=bytes(8))
    try:
        import cv_bridge  # noqa: F401
    except ImportError:
        with pytest.raises(UnsupportedEncodingError, match="'yuv422'"):
            image_to_numpy(bad_encoding)
    short = rclpy_types.Image(height=4, width=3, encoding="rgb8", step=9, data=bytes(30))
    with pytest.raises(ImageSizeError, match="has 30 bytes, expected height \\* step = 4 \\* 9 = 36"):
        image_to_numpy(short)


def test_compressed_message_round_trip(rclpy_types):
    image = random_image("bgr8", height=16, width=16, seed=4)
    message = numpy_to_compressed(image, 7, "cam", rclpy_types, format_="png")
    np.testing.assert_array_equal(compressed_to_numpy(serialize_round_trip(message)), image)
