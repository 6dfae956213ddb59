"""Tests of seg_perception.io.image.

rosbags-image is the independent reference for colour conventions. It ignores ``step``, so
padded messages are compared with the reference's decode of the same pixels unpadded. Bayer
and YUV layouts additionally get reference-free checks (constant-colour mosaics, neutral-chroma
luma), since rosbags-image calls the same OpenCV conversions.
"""

from __future__ import annotations

import array
import sys

import cv2
import numpy as np
import pytest
from rosbags.image import compressed_image_to_cvimage, image_to_cvimage
from rosbags.typesys import Stores, get_typestore

from seg_perception.errors import ImageError
from seg_perception.io.compressed import decode_compressed, encode_compressed
from seg_perception.io.image import SUPPORTED_ENCODINGS, ColorOrder, DecodedImage, decode_image, to_rgb
from seg_perception.io.image_encode import encode_image

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
RbImage = TYPESTORE.types["sensor_msgs/msg/Image"]
RbCompressedImage = TYPESTORE.types["sensor_msgs/msg/CompressedImage"]
RbHeader = TYPESTORE.types["std_msgs/msg/Header"]
RbTime = TYPESTORE.types["builtin_interfaces/msg/Time"]

BYTES_PER_PIXEL = {
    "rgb8": 3,
    "bgr8": 3,
    "mono8": 1,
    "rgba8": 4,
    "bgra8": 4,
    "yuv422": 2,
    "uyvy": 2,
    "yuv422_yuy2": 2,
    "yuyv": 2,
    "bayer_rggb8": 1,
    "bayer_bggr8": 1,
    "bayer_gbrg8": 1,
    "bayer_grbg8": 1,
    "mono16": 2,
}
EIGHT_BIT_ENCODINGS = sorted(e for e in BYTES_PER_PIXEL if e != "mono16")
YUV_ENCODINGS = ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"]
SIZES = [(1, 2), (5, 7), (16, 31), (37, 64)]  # (height, width), odd widths included


def _header() -> object:
    return RbHeader(stamp=RbTime(sec=1, nanosec=2), frame_id="camera")


def rosbags_image(
    encoding: str,
    height: int,
    width: int,
    data: np.ndarray,
    step: int | None = None,
    is_bigendian: int = 0,
) -> object:
    """A rosbags sensor_msgs/Image (its data is a 1-D uint8 numpy array)."""
    bpp = BYTES_PER_PIXEL.get(encoding, 1)
    return RbImage(
        header=_header(),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=is_bigendian,
        step=width * bpp if step is None else step,
        data=np.ascontiguousarray(data, dtype=np.uint8).reshape(-1),
    )


def rosbags_compressed(fmt: str, payload: bytes) -> object:
    return RbCompressedImage(header=_header(), format=fmt, data=np.frombuffer(payload, dtype=np.uint8).copy())


def width_for(encoding: str, width: int) -> int:
    """YUV 4:2:2 needs an even width."""
    return width + (width % 2) if encoding in YUV_ENCODINGS else width


def random_rows(rng: np.random.Generator, encoding: str, height: int, width: int) -> np.ndarray:
    """(height, width * bpp) uint8 of random pixel bytes, unpadded."""
    return rng.integers(0, 256, (height, width * BYTES_PER_PIXEL[encoding]), dtype=np.uint8)


def pad_rows(rows: np.ndarray, pad: int, *, keep_last_padding: bool) -> np.ndarray:
    """Flatten rows with ``pad`` filler bytes after each row (optionally not the last)."""
    height, row_bytes = rows.shape
    padded = np.full((height, row_bytes + pad), 0xAB, dtype=np.uint8)
    padded[:, :row_bytes] = rows
    flat = padded.reshape(-1)
    return flat if keep_last_padding else flat[: flat.size - pad]


def reference_rgb(encoding: str, height: int, width: int, rows: np.ndarray) -> np.ndarray:
    """rosbags-image's RGB decode of the unpadded message."""
    return np.asarray(image_to_cvimage(rosbags_image(encoding, height, width, rows), "rgb8"))


class FakeImage:
    """Minimal duck-typed sensor_msgs/Image."""

    def __init__(self, encoding, height, width, step, data, is_bigendian=0):
        self.encoding = encoding
        self.height = height
        self.width = width
        self.step = step
        self.data = data
        self.is_bigendian = is_bigendian


class FakeCompressed:
    def __init__(self, fmt, data):
        self.format = fmt
        self.data = data


# ------------------------------------------------------------------------------------------
# Against rosbags-image
# ------------------------------------------------------------------------------------------


def test_supported_encodings_are_exactly_the_documented_set():
    assert set(BYTES_PER_PIXEL) == SUPPORTED_ENCODINGS


@pytest.mark.parametrize("height,width", SIZES)
@pytest.mark.parametrize("encoding", EIGHT_BIT_ENCODINGS)
def test_decoded_rgb_matches_rosbags_image_for_every_encoding(encoding, height, width):
    width = width_for(encoding, width)
    rng = np.random.default_rng(hash((encoding, height, width)) % 2**32)
    rows = random_rows(rng, encoding, height, width)
    msg = rosbags_image(encoding, height, width, rows)

    decoded = decode_image(msg)
    rgb = to_rgb(decoded)

    assert (decoded.height, decoded.width) == (height, width)
    assert rgb.shape == (height, width, 3)
    assert rgb.dtype == np.uint8
    assert rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, reference_rgb(encoding, height, width, rows))


@pytest.mark.parametrize("keep_last_padding", [True, False])
@pytest.mark.parametrize("pad", [1, 5, 64])
@pytest.mark.parametrize("encoding", EIGHT_BIT_ENCODINGS)
def test_decoded_rgb_honours_padded_step_for_every_encoding(encoding, pad, keep_last_padding):
    height, width = 9, width_for(encoding, 13)
    rng = np.random.default_rng(pad)
    rows = random_rows(rng, encoding, height, width)
    step = rows.shape[1] + pad
    data = pad_rows(rows, pad, keep_last_padding=keep_last_padding)
    msg = rosbags_image(encoding, height, width, data, step=step)

    rgb = to_rgb(decode_image(msg))

    np.testing.assert_array_equal(rgb, reference_rgb(encoding, height, width, rows))


@pytest.mark.parametrize("is_bigendian", [0, 1])
@pytest.mark.parametrize("pad", [0, 3])
def test_mono16_decodes_to_native_uint16_in_either_byte_order(is_bigendian, pad):
    height, width = 6, 11
    values = np.random.default_rng(7).integers(0, 2**16, (height, width), dtype=np.uint16)
    values[0, :3] = [0, 1, 65535]
    rows = values.astype(">u2" if is_bigendian else "<u2").view(np.uint8).reshape(height, -1)
    data = pad_rows(rows, pad, keep_last_padding=False)
    msg = rosbags_image("mono16", height, width, data, step=2 * width + pad, is_bigendian=is_bigendian)

    decoded = decode_image(msg)

    assert decoded.order is ColorOrder.MONO
    assert decoded.pixels.dtype == np.uint16
    assert decoded.pixels.dtype.isnative
    np.testing.assert_array_equal(decoded.pixels, values)
    unpadded = rosbags_image("mono16", height, width, rows, is_bigendian=is_bigendian)
    np.testing.assert_array_equal(decoded.pixels, image_to_cvimage(unpadded))
    np.testing.assert_array_equal(to_rgb(decoded), image_to_cvimage(unpadded, "rgb8"))


def test_mono16_to_rgb_maps_the_full_range_linearly():
    values = np.array([[0, 256, 257, 65534, 65535]], dtype=np.uint16)
    rgb = to_rgb(DecodedImage(values, ColorOrder.MONO))
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 0, 1, 254, 255])
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


@pytest.mark.parametrize("fmt", ["jpeg", "rgb8; jpeg compressed bgr8", "jpg"])
def test_compressed_jpeg_decodes_exactly_like_rosbags_image(fmt):
    rgb = np.random.default_rng(3).integers(0, 256, (24, 37, 3), dtype=np.uint8)
    ok, payload = cv2.imencode(".jpg", rgb[:, :, ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    msg = rosbags_compressed(fmt, payload.tobytes())

    decoded = decode_compressed(msg)

    assert decoded.order is ColorOrder.BGR
    np.testing.assert_array_equal(decoded.pixels, compressed_image_to_cvimage(msg))
    np.testing.assert_array_equal(to_rgb(decoded), compressed_image_to_cvimage(msg, "rgb8"))


@pytest.mark.parametrize("fmt", ["png", "bgr8; png compressed bgr8"])
def test_compressed_png_decodes_losslessly_and_like_rosbags_image(fmt):
    rgb = np.random.default_rng(4).integers(0, 256, (19, 23, 3), dtype=np.uint8)
    ok, payload = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    msg = rosbags_compressed(fmt, payload.tobytes())

    decoded = decode_compressed(msg)

    np.testing.assert_array_equal(to_rgb(decoded), rgb)
    np.testing.assert_array_equal(to_rgb(decoded), compressed_image_to_cvimage(msg, "rgb8"))


def test_grayscale_compressed_payload_decodes_as_mono():
    gray = np.random.default_rng(5).integers(0, 256, (10, 14), dtype=np.uint8)
    ok, payload = cv2.imencode(".png", gray)
    assert ok

    decoded = decode_compressed(FakeCompressed("mono8; png compressed mono8", payload.tobytes()))

    assert decoded.order is ColorOrder.MONO
    np.testing.assert_array_equal(decoded.pixels, gray)
    np.testing.assert_array_equal(to_rgb(decoded), np.repeat(gray[:, :, None], 3, axis=2))


def test_sixteen_bit_png_decodes_as_mono16():
    depth = np.random.default_rng(6).integers(0, 2**16, (8, 9), dtype=np.uint16)
    ok, payload = cv2.imencode(".png", depth)
    assert ok

    decoded = decode_compressed(FakeCompressed("png", bytearray(payload.tobytes())))

    assert decoded.order is ColorOrder.MONO
    np.testing.assert_array_equal(decoded.pixels, depth)


# ------------------------------------------------------------------------------------------
# Reference-free colour convention checks
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoding,pattern",
    [
        ("bayer_rggb8", "RGGB"),
        ("bayer_bggr8", "BGGR"),
        ("bayer_gbrg8", "GBRG"),
        ("bayer_grbg8", "GRBG"),
    ],
)
def test_bayer_pattern_of_a_constant_colour_is_demosaiced_to_that_colour(encoding, pattern):
    colour = {"R": 200, "G": 90, "B": 30}
    height, width = 10, 12
    mosaic = np.zeros((height, width), dtype=np.uint8)
    for index, letter in enumerate(pattern):
        mosaic[index // 2 :: 2, index % 2 :: 2] = colour[letter]

    rgb = to_rgb(decode_image(FakeImage(encoding, height, width, width, mosaic.tobytes())))

    np.testing.assert_array_equal(rgb[2:-2, 2:-2], np.broadcast_to([200, 90, 30], (6, 8, 3)))


@pytest.mark.parametrize(
    "encoding,luma_offset",
    [("yuv422", 1), ("uyvy", 1), ("yuv422_yuy2", 0), ("yuyv", 0)],
)
def test_ros_yuv422_is_uyvy_and_yuv422_yuy2_is_yuyv(encoding, luma_offset):
    # Luma 200 at the Y byte positions, neutral chroma 128 elsewhere: decoding with the
    # wrong byte order would read 128 as luma and give ~130 instead of ~214.
    height, width = 2, 8
    data = np.full((height, width * 2), 128, dtype=np.uint8)
    data[:, luma_offset::2] = 200

    rgb = to_rgb(decode_image(FakeImage(encoding, height, width, width * 2, data.tobytes())))

    expected = round(1.164 * (200 - 16))
    assert np.abs(rgb.astype(int) - expected).max() <= 1


# ------------------------------------------------------------------------------------------
# Data containers and rclpy messages
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "container",
    [
        bytes,
        bytearray,
        memoryview,
        lambda b: array.array("B", b),
        lambda b: np.frombuffer(b, np.uint8),
    ],
    ids=["bytes", "bytearray", "memoryview", "array.array", "numpy"],
)
def test_decode_accepts_every_bytes_like_data_container(container):
    height, width, pad = 4, 5, 3
    rgb = np.random.default_rng(8).integers(0, 256, (height, width, 3), dtype=np.uint8)
    data = pad_rows(rgb.reshape(height, -1), pad, keep_last_padding=True).tobytes()

    decoded = decode_image(FakeImage("rgb8", height, width, width * 3 + pad, container(data)))

    np.testing.assert_array_equal(to_rgb(decoded), rgb)


def test_decode_works_with_rclpy_rgb8_message_with_padded_step():
    sensor_msgs = pytest.importorskip("sensor_msgs.msg")
    height, width, pad = 5, 7, 4
    rgb = np.random.default_rng(9).integers(0, 256, (height, width, 3), dtype=np.uint8)
    msg = sensor_msgs.Image()
    msg.height, msg.width, msg.encoding = height, width, "rgb8"
    msg.step = width * 3 + pad
    padded = pad_rows(rgb.reshape(height, -1), pad, keep_last_padding=True)
    msg.data = array.array("B", padded.tobytes())
    assert isinstance(msg.data, array.array)

    decoded = decode_image(msg)

    assert decoded.order is ColorOrder.RGB
    np.testing.assert_array_equal(to_rgb(decoded), rgb)
    assert np.shares_memory(decoded.pixels, np.frombuffer(msg.data, dtype=np.uint8))


def test_decode_works_with_rclpy_bgr8_message():
    sensor_msgs = pytest.importorskip("sensor_msgs.msg")
    height, width = 6, 9
    rgb = np.random.default_rng(10).integers(0, 256, (height, width, 3), dtype=np.uint8)
    msg = sensor_msgs.Image(height=height, width=width, encoding="bgr8", step=width * 3)
    msg.data = array.array("B", rgb[:, :, ::-1].tobytes())

    decoded = decode_image(msg)

    assert decoded.order is ColorOrder.BGR
    np.testing.assert_array_equal(decoded.pixels, rgb[:, :, ::-1])
    np.testing.assert_array_equal(to_rgb(decoded), rgb)


def test_decode_compressed_works_with_rclpy_message():
    sensor_msgs = pytest.importorskip("sensor_msgs.msg")
    rgb = np.random.default_rng(11).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    fmt, payload = encode_compressed(rgb, "png")
    msg = sensor_msgs.CompressedImage(format=fmt)
    msg.data = array.array("B", payload)

    np.testing.assert_array_equal(to_rgb(decode_compressed(msg)), rgb)


def test_encoded_image_fills_an_rclpy_message_that_decodes_back():
    sensor_msgs = pytest.importorskip("sensor_msgs.msg")
    rgb = np.random.default_rng(12).integers(0, 256, (7, 3, 3), dtype=np.uint8)
    height, width, step, data = encode_image(rgb, "rgb8")
    msg = sensor_msgs.Image(height=height, width=width, encoding="rgb8", step=step, is_bigendian=0)
    msg.data = data

    np.testing.assert_array_equal(to_rgb(decode_image(msg)), rgb)


# ------------------------------------------------------------------------------------------
# Zero copy
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "rgba8", "bgra8", "mono16"])
@pytest.mark.parametrize("pad", [0, 2])
def test_packed_encodings_decode_to_read_only_views_of_the_message_data(encoding, pad):
    height, width = 4, 6
    rows = random_rows(np.random.default_rng(13), encoding, height, width)
    is_big = int(sys.byteorder == "big")  # mono16 in native order is a view too
    msg = rosbags_image(
        encoding,
        height,
        width,
        pad_rows(rows, pad, keep_last_padding=True),
        step=rows.shape[1] + pad,
        is_bigendian=is_big,
    )

    decoded = decode_image(msg)

    assert np.shares_memory(decoded.pixels, msg.data)
    assert not decoded.pixels.flags.writeable


def test_to_rgb_of_unpadded_rgb8_returns_the_view_without_copying():
    rgb = np.random.default_rng(14).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    data = array.array("B", rgb.tobytes())

    out = to_rgb(decode_image(FakeImage("rgb8", 3, 4, 12, data)))

    assert np.shares_memory(out, np.frombuffer(data, dtype=np.uint8))
    np.testing.assert_array_equal(out, rgb)


def test_rgba8_view_drops_alpha_and_keeps_rgb_order():
    rgba = np.random.default_rng(15).integers(0, 256, (3, 5, 4), dtype=np.uint8)
    decoded = decode_image(FakeImage("rgba8", 3, 5, 20, rgba.tobytes()))
    assert decoded.order is ColorOrder.RGB
    assert decoded.pixels.shape == (3, 5, 3)
    np.testing.assert_array_equal(decoded.pixels, rgba[:, :, :3])


def test_to_rgb_handles_hand_built_bgr_images_with_any_strides():
    rgb = np.random.default_rng(16).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    flipped = rgb[:, ::-1, ::-1]  # BGR of the mirrored image, negative strides
    np.testing.assert_array_equal(to_rgb(DecodedImage(flipped, ColorOrder.BGR)), rgb[:, ::-1])


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["rgb16", "32FC1", "nv12", ""])
def test_decode_raises_on_unsupported_encoding_and_lists_supported_ones(encoding):
    with pytest.raises(ImageError, match=r"unsupported image encoding .*supported: .*bgr8.*yuyv"):
        decode_image(FakeImage(encoding, 2, 2, 8, bytes(16)))


@pytest.mark.parametrize("height,width", [(0, 4), (4, 0), (0, 0)])
def test_decode_raises_on_zero_size(height, width):
    with pytest.raises(ImageError, match=rf"non-zero size, got height={height} width={width}"):
        decode_image(FakeImage("rgb8", height, width, 12, bytes(48)))


def test_decode_raises_on_truncated_data_with_expected_and_actual_byte_counts():
    # 3 rows of 4 rgb8 pixels with step 16: 16 * 2 + 12 = 44 bytes needed.
    with pytest.raises(ImageError, match=r"expected at least 44 bytes .*got 43 bytes"):
        decode_image(FakeImage("rgb8", 3, 4, 16, bytes(43)))


def test_decode_accepts_a_last_row_without_its_padding():
    decoded = decode_image(FakeImage("rgb8", 3, 4, 16, bytes(44)))
    assert decoded.pixels.shape == (3, 4, 3)


def test_decode_raises_when_step_is_smaller_than_a_row():
    with pytest.raises(ImageError, match=r"step 11 is smaller than .* = 12"):
        decode_image(FakeImage("rgb8", 3, 4, 11, bytes(48)))


@pytest.mark.parametrize("encoding", YUV_ENCODINGS)
def test_decode_raises_on_odd_width_yuv422(encoding):
    with pytest.raises(ImageError, match=r"even width, got width=5"):
        decode_image(FakeImage(encoding, 2, 5, 10, bytes(20)))


def test_decode_compressed_raises_on_corrupt_jpeg():
    _, payload = encode_compressed(np.zeros((8, 8, 3), np.uint8), "jpeg")
    corrupt = payload[:2] + bytes(len(payload) - 2)  # SOI marker, then garbage
    with pytest.raises(ImageError, match=r"corrupt or undecodable .*expected a jpeg payload"):
        decode_compressed(FakeCompressed("jpeg", corrupt))


def test_decode_compressed_raises_on_empty_payload():
    with pytest.raises(ImageError, match=r"empty compressed image payload"):
        decode_compressed(FakeCompressed("rgb8; jpeg compressed bgr8", array.array("B")))


@pytest.mark.parametrize("fmt", ["", "tiff", "16UC1; compressedDepth png"])
def test_decode_compressed_raises_on_unknown_format(fmt):
    with pytest.raises(ImageError, match=r"compressed.*format"):
        decode_compressed(FakeCompressed(fmt, b"\x89PNG"))


def test_encode_image_raises_on_wrong_dtype_or_encoding():
    expected = r"expects a \(H, W\) uint16 array, got shape \(2, 2\) dtype uint8"
    with pytest.raises(ImageError, match=expected):
        encode_image(np.zeros((2, 2), np.uint8), "mono16")
    with pytest.raises(ImageError, match=r"supported output encodings"):
        encode_image(np.zeros((2, 2), np.uint8), "yuyv")


# ------------------------------------------------------------------------------------------
# Encoding round trips
# ------------------------------------------------------------------------------------------


def test_mono8_round_trips_through_encode_and_decode():
    mono = np.random.default_rng(17).integers(0, 256, (5, 9), dtype=np.uint8)
    height, width, step, data = encode_image(mono, "mono8")
    assert (height, width, step, len(data)) == (5, 9, 9, 45)
    decoded = decode_image(FakeImage("mono8", height, width, step, data))
    assert decoded.order is ColorOrder.MONO
    np.testing.assert_array_equal(decoded.pixels, mono)


@pytest.mark.parametrize("byte_order", ["<", ">", "="])
def test_mono16_round_trips_as_little_endian(byte_order):
    mono = np.random.default_rng(18).integers(0, 2**16, (4, 7), dtype=np.uint16)
    height, width, step, data = encode_image(mono.astype(f"{byte_order}u2"), "mono16")
    assert (height, width, step, len(data)) == (4, 7, 14, 56)
    np.testing.assert_array_equal(np.frombuffer(data, "<u2").reshape(4, 7), mono)
    decoded = decode_image(FakeImage("mono16", height, width, step, data, is_bigendian=0))
    np.testing.assert_array_equal(decoded.pixels, mono)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_colour_round_trips_from_a_non_contiguous_array(encoding):
    rgb = np.random.default_rng(19).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    view = rgb[::2, ::-1]  # strided input, copied exactly once
    height, width, step, data = encode_image(view, encoding)
    assert isinstance(data, array.array)
    assert (height, width, step, len(data)) == (3, 10, 30, 90)
    decoded = decode_image(FakeImage(encoding, height, width, step, data))
    np.testing.assert_array_equal(decoded.pixels, view)


def test_encode_compressed_png_round_trips_exactly_and_jpeg_closely():
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:, :12] = (220, 40, 10)
    rgb[:, 12:] = (10, 60, 230)

    fmt, payload = encode_compressed(rgb, "png")
    assert fmt == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(to_rgb(decode_compressed(FakeCompressed(fmt, payload))), rgb)

    fmt, payload = encode_compressed(rgb, "jpeg", quality=95)
    assert fmt == "rgb8; jpeg compressed bgr8"
    decoded = to_rgb(decode_compressed(FakeCompressed(fmt, payload)))
    error = np.abs(decoded.astype(int) - rgb)
    assert error[:, :8].max() <= 6 and error[:, 16:].max() <= 6  # away from the colour edge
