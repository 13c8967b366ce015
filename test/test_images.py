import numpy as np
import pytest
from helpers import random_image

from hand_pose_refiner.errors import ImageSizeError, UnsupportedEncodingError
from hand_pose_refiner.images import (
    ENCODINGS,
    decode_compressed,
    decode_raw,
    encode_compressed,
    encode_raw,
    to_rgb,
)


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("padding", [0, 3, 16])
@pytest.mark.parametrize("big_endian", [False, True])
def test_raw_round_trip_every_encoding(encoding, padding, big_endian):
    image = random_image(encoding)
    dtype, channels = ENCODINGS[encoding]
    row_bytes = image.shape[1] * channels * np.dtype(dtype).itemsize
    raw = encode_raw(image, encoding, step=row_bytes + padding, is_bigendian=big_endian)
    assert raw.step == row_bytes + padding
    assert len(raw.data) == raw.height * raw.step
    decoded = decode_raw(raw.height, raw.width, raw.encoding, raw.step, raw.is_bigendian, raw.data)
    assert decoded.dtype == image.dtype and decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, image)


def test_padded_rows_are_read_from_the_right_offset():
    # 2x2 mono8 with step 4: each row carries two pad bytes that must be skipped.
    data = bytes([1, 2, 99, 99, 3, 4, 99, 99])
    np.testing.assert_array_equal(decode_raw(2, 2, "mono8", 4, False, data), [[1, 2], [3, 4]])


def test_16uc1_byte_order():
    big = bytes([0x01, 0x02, 0x03, 0x04])
    np.testing.assert_array_equal(decode_raw(1, 2, "16UC1", 4, True, big), [[0x0102, 0x0304]])
    np.testing.assert_array_equal(decode_raw(1, 2, "16UC1", 4, False, big), [[0x0201, 0x0403]])


def test_unsupported_encoding_is_named():
    with pytest.raises(UnsupportedEncodingError, match="'yuv422'"):
        decode_raw(2, 2, "yuv422", 4, False, bytes(8))
    with pytest.raises(UnsupportedEncodingError, match="'bayer_rggb8'"):
        encode_raw(np.zeros((2, 2), np.uint8), "bayer_rggb8")


def test_data_length_mismatch_names_the_sizes():
    with pytest.raises(ImageSizeError, match=r"has 17 bytes, expected height \* step = 2 \* 9 = 18"):
        decode_raw(2, 3, "bgr8", 9, False, bytes(17))


def test_step_too_small_is_refused():
    with pytest.raises(ImageSizeError, match="step 8 is smaller than one bgr8 row of width 3"):
        decode_raw(2, 3, "bgr8", 8, False, bytes(16))


def test_wrong_array_for_encoding_is_refused():
    with pytest.raises(ImageSizeError, match=r"shape \(h, w, 3\)"):
        encode_raw(np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(UnsupportedEncodingError, match="needs dtype uint16"):
        encode_raw(np.zeros((2, 2), np.uint8), "16UC1")


def test_to_rgb_reorders_channels():
    bgr = np.zeros((1, 1, 3), np.uint8)
    bgr[0, 0] = (1, 2, 3)
    assert to_rgb(bgr, "bgr8")[0, 0].tolist() == [3, 2, 1]
    assert to_rgb(bgr, "rgb8")[0, 0].tolist() == [1, 2, 3]
    assert to_rgb(np.full((1, 1), 9, np.uint8), "mono8")[0, 0].tolist() == [9, 9, 9]
    with pytest.raises(UnsupportedEncodingError):
        to_rgb(np.zeros((1, 1), np.uint16), "16UC1")


@pytest.mark.parametrize("encoding, order", [("rgb8", [0, 1, 2]), ("rgba8", [0, 1, 2]), ("bgr8", [2, 1, 0]),
                                             ("bgra8", [2, 1, 0]), ("8UC3", [2, 1, 0]), ("8UC4", [2, 1, 0])])
def test_to_rgb_of_every_colour_encoding_from_a_padded_buffer(encoding, order):
    """Every channel of a decoded message with padded rows (a strided view), as a new array."""
    channels = ENCODINGS[encoding][1]
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, channels), np.uint8)
    raw = encode_raw(pixels, encoding, step=7 * channels + 3)
    decoded = decode_raw(raw.height, raw.width, raw.encoding, raw.step, raw.is_bigendian, raw.data)
    rgb = to_rgb(decoded, encoding)
    np.testing.assert_array_equal(rgb, pixels[:, :, order])
    assert rgb.flags.c_contiguous and rgb.dtype == np.uint8 and not np.shares_memory(rgb, decoded)


def test_png_round_trip_is_lossless_and_jpeg_is_close():
    rows, cols = np.mgrid[0:32, 0:48]
    image = np.stack([rows * 6, cols * 4, (rows + cols) * 3], axis=-1).astype(np.uint8)
    np.testing.assert_array_equal(decode_compressed("png", encode_compressed(image, "png")), image)
    jpeg = decode_compressed("bgr8; jpeg compressed bgr8", encode_compressed(image, "jpeg", 95))
    assert jpeg.shape == image.shape
    assert np.abs(jpeg.astype(int) - image).mean() < 3


def test_compressed_errors():
    with pytest.raises(UnsupportedEncodingError, match="'tiff'"):
        decode_compressed("tiff", b"abc")
    with pytest.raises(ImageSizeError, match="cannot decode 3 bytes as jpeg"):
        decode_compressed("jpeg", b"abc")
