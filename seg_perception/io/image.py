"""Conversion between ROS image messages and numpy arrays.

Pure core code: nothing here imports rclpy or a ROS message package. Messages are duck-typed:

* ``sensor_msgs/Image``: ``.encoding``, ``.height``, ``.width``, ``.step``, ``.is_bigendian``,
  ``.data``;
* ``sensor_msgs/CompressedImage``: ``.format``, ``.data``.

``.data`` may be ``bytes``, ``bytearray``, ``memoryview``, ``array.array('B')`` (what rclpy
gives) or a 1-D ``numpy.uint8`` array (what rosbags gives). :class:`ImageMessage` and
:class:`CompressedImageMessage` spell these out for the type checker.

Conventions (from ``sensor_msgs/image_encodings.hpp``): ``"yuv422"`` is **UYVY** (deprecated
spelling of ``"uyvy"``) and ``"yuv422_yuy2"`` is **YUYV** (deprecated spelling of ``"yuyv"``).
``bayer_<pattern>8`` names the colours of the top-left 2x2 block (``rggb``: row 0 is R G,
row 1 is G B).

Packed 8-bit layouts (rgb8, bgr8, mono8, rgba8, bgra8) and mono16 in native byte order decode
to read-only numpy views over ``msg.data`` (no copy). YUV 4:2:2 and Bayer need a colour
conversion and decode to a new RGB array.
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

import cv2
import numpy as np
import numpy.typing as npt

from seg_perception.errors import ImageError

if TYPE_CHECKING:
    from cv2.typing import MatLike

__all__ = [
    "SUPPORTED_ENCODINGS",
    "ColorOrder",
    "DecodedImage",
    "ImageMessage",
    "decode_image",
    "eight_bit",
    "to_rgb",
]

# Pixels of a decoded image: uint8, or uint16 for mono16 and 16-bit grey PNGs.
Pixels = npt.NDArray[np.uint8 | np.uint16]


class ImageMessage(Protocol):
    """What :func:`decode_image` reads of a ``sensor_msgs/Image`` (rclpy or rosbags)."""

    encoding: str
    height: int
    width: int
    step: int
    is_bigendian: int
    data: Any  # bytes-like or a sequence of ints, checked by as_uint8_buffer


def as_uint8(mat: MatLike) -> npt.NDArray[np.uint8]:
    """An OpenCV result of uint8 input: OpenCV keeps the depth (uint8 in, uint8 out), but
    its stubs type every result as an array of any numeric dtype."""
    return cast("npt.NDArray[np.uint8]", mat)


class ColorOrder(enum.Enum):
    """Channel order of :attr:`DecodedImage.pixels`."""

    RGB = "rgb"
    BGR = "bgr"
    MONO = "mono"


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A decoded image.

    Attributes:
        pixels: ``(H, W, 3) uint8`` for :attr:`ColorOrder.RGB` / :attr:`ColorOrder.BGR`;
            ``(H, W) uint8`` for :attr:`ColorOrder.MONO` (``(H, W) uint16``, native byte order,
            for mono16). May be a zero-copy, strided and **read-only** view of the message's
            data: copy it (or use :func:`to_rgb`) before writing to it, and do not keep it
            past the message's lifetime if the message buffer gets reused.
        order: Channel order of ``pixels``.
        _with_alpha: Internal: for rgba8/bgra8 messages, the ``(H, W, 4) uint8`` view that
            ``pixels`` slices, so :func:`to_rgb` can convert it at memory speed. ``None``
            otherwise; leave it out when constructing a DecodedImage.
    """

    pixels: Pixels
    order: ColorOrder
    _with_alpha: npt.NDArray[np.uint8] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        pixels = self.pixels
        if self.order is ColorOrder.MONO:
            ok = pixels.ndim == 2 and pixels.dtype in (np.uint8, np.uint16)
            expected = "(H, W) uint8 or uint16"
        else:
            ok = pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8
            expected = "(H, W, 3) uint8"
        if not ok:
            raise ImageError(
                f"DecodedImage with order {self.order.name} expects pixels of shape {expected}, "
                f"got shape {pixels.shape} dtype {pixels.dtype}"
            )

    @property
    def height(self) -> int:
        """Number of rows (H)."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Number of columns (W)."""
        return int(self.pixels.shape[1])


# --------------------------------------------------------------------------------------------
# Encoding tables
# --------------------------------------------------------------------------------------------

# Packed layouts decoded as views: encoding -> (bytes per pixel, channels kept, order).
_PACKED: dict[str, tuple[int, int, ColorOrder]] = {
    "rgb8": (3, 3, ColorOrder.RGB),
    "bgr8": (3, 3, ColorOrder.BGR),
    "mono8": (1, 1, ColorOrder.MONO),
    "rgba8": (4, 3, ColorOrder.RGB),
    "bgra8": (4, 3, ColorOrder.BGR),
}


def _cv_code(*names: str) -> int:
    """First OpenCV constant of ``names`` that exists (names differ across OpenCV versions)."""
    for name in names:
        code = getattr(cv2, name, None)
        if code is not None:
            return int(code)
    raise ImportError(f"OpenCV has none of {names}")  # pragma: no cover


# YUV 4:2:2, 2 bytes per pixel -> cv2 code to RGB.
_YUV422: dict[str, int] = {
    "uyvy": _cv_code("COLOR_YUV2RGB_UYVY"),
    "yuv422": _cv_code("COLOR_YUV2RGB_UYVY"),  # ROS: deprecated spelling of uyvy
    "yuyv": _cv_code("COLOR_YUV2RGB_YUYV"),
    "yuv422_yuy2": _cv_code("COLOR_YUV2RGB_YUYV"),  # ROS: deprecated spelling of yuyv
}

# Bayer, 1 byte per pixel -> cv2 code to RGB. OpenCV's historic names (BayerBG, ...) name the
# pattern by the second row's 2nd/3rd pixel, so ROS rggb == OpenCV "BayerBG"; newer OpenCV
# also has the explicit aliases (BayerRGGB == BayerBG).
_BAYER: dict[str, int] = {
    "bayer_rggb8": _cv_code("COLOR_BayerRGGB2RGB", "COLOR_BayerBG2RGB"),
    "bayer_bggr8": _cv_code("COLOR_BayerBGGR2RGB", "COLOR_BayerRG2RGB"),
    "bayer_gbrg8": _cv_code("COLOR_BayerGBRG2RGB", "COLOR_BayerGR2RGB"),
    "bayer_grbg8": _cv_code("COLOR_BayerGRBG2RGB", "COLOR_BayerGB2RGB"),
}

SUPPORTED_ENCODINGS: frozenset[str] = frozenset([*_PACKED, *_YUV422, *_BAYER, "mono16"])
"""``sensor_msgs/Image`` encodings :func:`decode_image` accepts."""

_SUPPORTED_LIST = ", ".join(sorted(SUPPORTED_ENCODINGS))

"""Payload kinds :func:`decode_compressed` accepts (named anywhere in ``msg.format``)."""

_NATIVE_BIG = sys.byteorder == "big"


def _bytes_per_pixel(encoding: str) -> int:
    if encoding in _PACKED:
        return _PACKED[encoding][0]
    if encoding in _YUV422 or encoding == "mono16":
        return 2
    return 1  # Bayer


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def as_uint8_buffer(data: Any) -> npt.NDArray[np.uint8]:
    """Return ``data`` as a 1-D uint8 array, sharing memory whenever ``data`` is a buffer.

    Args:
        data: bytes, bytearray, memoryview, ``array.array('B')``, numpy array or a sequence of
            ints.

    Returns:
        ``(N,) uint8`` array (a view of ``data`` if it exposes a contiguous buffer).
    """
    if isinstance(data, np.ndarray):
        if data.dtype == np.uint8 and data.ndim == 1:
            return data
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError):
        try:
            return np.asarray(data, dtype=np.uint8).reshape(-1)
        except (TypeError, ValueError) as err:
            raise ImageError(
                f"image data must be bytes-like or a sequence of uint8, got {type(data).__name__}"
            ) from err


def _strided(buf: npt.NDArray[np.uint8], shape: tuple[int, ...], strides: tuple[int, ...]) -> npt.NDArray[np.uint8]:
    """Read-only uint8 view of ``buf`` with the given shape/strides (bounds checked by the caller)."""
    return np.lib.stride_tricks.as_strided(buf, shape=shape, strides=strides, writeable=False)


def _strided_uint16(
    buf: npt.NDArray[np.uint8], shape: tuple[int, int], strides: tuple[int, int], big_endian: bool
) -> npt.NDArray[np.uint16]:
    """Read-only uint16 view of ``buf`` in the given byte order (bounds checked by the caller)."""
    # Multi-byte items: reinterpret the bytes first. np.ndarray checks the extent itself.
    view: npt.NDArray[np.uint16] = np.ndarray(
        shape=shape, dtype=np.dtype(">u2" if big_endian else "<u2"), buffer=buf, strides=strides
    )
    view.flags.writeable = False
    return view


def _check_geometry(msg: ImageMessage, encoding: str, buf: npt.NDArray[np.uint8]) -> tuple[int, int, int, int]:
    """Validate size, step and data length of an Image message.

    Returns:
        ``(height, width, step, bytes_per_pixel)``.
    """
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    bpp = _bytes_per_pixel(encoding)
    if height <= 0 or width <= 0:
        raise ImageError(f"image must have non-zero size, got height={height} width={width} (encoding {encoding!r})")
    row_bytes = width * bpp
    if step < row_bytes:
        raise ImageError(
            f"step {step} is smaller than width * bytes per pixel = {width} * {bpp} = "
            f"{row_bytes} for encoding {encoding!r}"
        )
    needed = step * (height - 1) + row_bytes
    if buf.size < needed:
        raise ImageError(
            f"image data too short for {width}x{height} {encoding!r} with step {step}: "
            f"expected at least {needed} bytes (step * (height - 1) + width * {bpp}), "
            f"got {buf.size} bytes"
        )
    if encoding in _YUV422 and width % 2:
        raise ImageError(f"encoding {encoding!r} packs 2 pixels per 4 bytes and needs an even width, got width={width}")
    return height, width, step, bpp


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def decode_image(msg: ImageMessage) -> DecodedImage:
    """Decode a ``sensor_msgs/Image``-like message.

    Args:
        msg: Object with ``encoding`` (str), ``height``, ``width``, ``step`` (int, bytes per
            row, may include padding), ``is_bigendian`` (int/bool, used for mono16 only) and
            ``data`` (bytes-like, ``len >= step * (height - 1) + width * bytes_per_pixel``).

    Returns:
        rgb8/bgr8/rgba8/bgra8: ``(H, W, 3) uint8`` read-only view, order RGB or BGR (alpha is
        dropped by slicing). mono8: ``(H, W) uint8`` read-only view, MONO. mono16:
        ``(H, W) uint16`` native byte order, MONO (a view when the message byte order is
        native, else a swapped copy). yuv422/uyvy/yuv422_yuy2/yuyv and bayer_*8:
        ``(H, W, 3) uint8`` new C-contiguous array, order RGB.

    Raises:
        ImageError: unsupported encoding, zero size, ``step`` too small, data too short, odd
            width for YUV 4:2:2, or a failed colour conversion.
    """
    raw_encoding = str(msg.encoding)
    encoding = raw_encoding.strip().lower()
    if encoding not in SUPPORTED_ENCODINGS:
        raise ImageError(f"unsupported image encoding {raw_encoding!r}; supported: {_SUPPORTED_LIST}")
    buf = as_uint8_buffer(msg.data)
    height, width, step, bpp = _check_geometry(msg, encoding, buf)

    if encoding in _PACKED:
        order = _PACKED[encoding][2]
        if bpp == 1:
            return DecodedImage(_strided(buf, (height, width), (step, 1)), order)
        if bpp == 4:
            full = _strided(buf, (height, width, 4), (step, 4, 1))
            return DecodedImage(full[:, :, :3], order, full)
        return DecodedImage(_strided(buf, (height, width, 3), (step, 3, 1)), order)

    if encoding == "mono16":
        big = bool(msg.is_bigendian)
        view = _strided_uint16(buf, (height, width), (step, 2), big)
        if big != _NATIVE_BIG:
            view = view.astype(np.uint16)  # byte swap (copy) to native order
        return DecodedImage(view, ColorOrder.MONO)

    if encoding in _YUV422:
        src = _strided(buf, (height, width, 2), (step, 2, 1))
        code = _YUV422[encoding]
    else:
        src = _strided(buf, (height, width), (step, 1))
        code = _BAYER[encoding]
    try:
        rgb = as_uint8(cv2.cvtColor(src, code))
    except cv2.error as err:
        raise ImageError(f"cannot convert {width}x{height} {encoding!r} image to RGB: {err}") from err
    return DecodedImage(np.ascontiguousarray(rgb), ColorOrder.RGB)


# --------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------


def to_rgb(img: DecodedImage) -> npt.NDArray[np.uint8]:
    """Convert a decoded image to RGB.

    Args:
        img: Any :class:`DecodedImage`.

    Returns:
        ``(H, W, 3) uint8`` C-contiguous RGB. Returns ``img.pixels`` itself (no copy, possibly
        read-only) when it already is C-contiguous RGB; otherwise a new array. mono16 maps
        linearly to 8 bits as ``value // 257`` (0 -> 0, 65535 -> 255).
    """
    if img._with_alpha is not None:  # rgba8 / bgra8: cv2 on the 4-channel view is ~30x faster
        code = cv2.COLOR_RGBA2RGB if img.order is ColorOrder.RGB else cv2.COLOR_BGRA2RGB
        return as_uint8(cv2.cvtColor(img._with_alpha, code))
    px = cast("npt.NDArray[np.uint8]", eight_bit(img).pixels)
    if img.order is ColorOrder.RGB:
        return np.ascontiguousarray(px)
    if img.order is ColorOrder.BGR:
        if px.strides[1:] == (3, 1):  # rows may be padded; pixels packed: cv2 handles it
            return as_uint8(cv2.cvtColor(px, cv2.COLOR_BGR2RGB))
        return np.ascontiguousarray(px[:, :, ::-1])
    if px.strides[1] != 1:
        px = np.ascontiguousarray(px)
    return as_uint8(cv2.cvtColor(px, cv2.COLOR_GRAY2RGB))


def eight_bit(img: DecodedImage) -> DecodedImage:
    """``img`` with 8-bit pixels: itself when they are, else (mono16, 16-bit grey PNGs) its
    values mapped linearly as ``value // 257`` (0 -> 0, 65535 -> 255), as rosbags-image's
    ``image_to_cvimage(msg, "mono8")`` maps them. The models take 8-bit frames only."""
    if img.pixels.dtype == np.uint8:
        return img
    return DecodedImage((img.pixels // 257).astype(np.uint8), img.order)
