"""Conversion between ROS image messages and numpy arrays.

Pure core code: nothing here imports rclpy or a ROS message package. Messages are duck-typed:

* ``sensor_msgs/Image``: ``.encoding``, ``.height``, ``.width``, ``.step``, ``.is_bigendian``,
  ``.data``;
* ``sensor_msgs/CompressedImage``: ``.format``, ``.data``.

``.data`` may be ``bytes``, ``bytearray``, ``memoryview``, ``array.array('B')`` (what rclpy
gives) or a 1-D ``numpy.uint8`` array (what rosbags gives).

Conventions (from ``sensor_msgs/image_encodings.hpp``): ``"yuv422"`` is **UYVY** (deprecated
spelling of ``"uyvy"``) and ``"yuv422_yuy2"`` is **YUYV** (deprecated spelling of ``"yuyv"``).
``bayer_<pattern>8`` names the colours of the top-left 2x2 block (``rggb``: row 0 is R G,
row 1 is G B).

Packed 8-bit layouts (rgb8, bgr8, mono8, rgba8, bgra8) and mono16 in native byte order decode
to read-only numpy views over ``msg.data`` (no copy). YUV 4:2:2 and Bayer need a colour
conversion and decode to a new RGB array.
"""

from __future__ import annotations

import array
import enum
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from seg_perception.errors import ImageError

__all__ = [
    "SUPPORTED_COMPRESSED_FORMATS",
    "SUPPORTED_ENCODINGS",
    "ColorOrder",
    "DecodedImage",
    "decode_compressed",
    "decode_image",
    "encode_compressed",
    "encode_image",
    "to_rgb",
]


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

    pixels: np.ndarray
    order: ColorOrder
    _with_alpha: np.ndarray | None = field(default=None, repr=False)

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

SUPPORTED_COMPRESSED_FORMATS: frozenset[str] = frozenset(["jpeg", "png"])
"""Payload kinds :func:`decode_compressed` accepts (named anywhere in ``msg.format``)."""

_ENCODE_FORMATS = {"mono8": (1, 1), "mono16": (2, 1), "rgb8": (1, 3), "bgr8": (1, 3)}

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


def _as_uint8_buffer(data: Any) -> np.ndarray:
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


def _strided(
    buf: np.ndarray,
    shape: tuple[int, ...],
    strides: tuple[int, ...],
    dtype: np.dtype[Any] | type = np.uint8,
) -> np.ndarray:
    """Read-only view of ``buf`` with the given shape/strides (bounds checked by the caller)."""
    dtype = np.dtype(dtype)
    if dtype.itemsize == 1:
        return np.lib.stride_tricks.as_strided(buf, shape=shape, strides=strides, writeable=False)
    # Multi-byte items: reinterpret the bytes first. np.ndarray checks the extent itself.
    view = np.ndarray(shape=shape, dtype=dtype, buffer=buf, strides=strides)
    view.flags.writeable = False
    return view


def _check_geometry(msg: Any, encoding: str, buf: np.ndarray) -> tuple[int, int, int, int]:
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


def decode_image(msg: Any) -> DecodedImage:
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
    buf = _as_uint8_buffer(msg.data)
    height, width, step, bpp = _check_geometry(msg, encoding, buf)

    if encoding in _PACKED:
        _, channels, order = _PACKED[encoding]
        if bpp == 1:
            return DecodedImage(_strided(buf, (height, width), (step, 1)), order)
        if bpp == 4:
            full = _strided(buf, (height, width, 4), (step, 4, 1))
            return DecodedImage(full[:, :, :3], order, full)
        return DecodedImage(_strided(buf, (height, width, 3), (step, 3, 1)), order)

    if encoding == "mono16":
        big = bool(msg.is_bigendian)
        view = _strided(buf, (height, width), (step, 2), np.dtype(">u2" if big else "<u2"))
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
        rgb = cv2.cvtColor(src, code)
    except cv2.error as err:
        raise ImageError(f"cannot convert {width}x{height} {encoding!r} image to RGB: {err}") from err
    return DecodedImage(np.ascontiguousarray(rgb), ColorOrder.RGB)


_JPEG_RE = re.compile(r"\bjpe?g\b")
_PNG_RE = re.compile(r"\bpng\b")


def _compressed_kind(fmt: str) -> str:
    """Payload kind (``"jpeg"`` or ``"png"``) named in a CompressedImage ``format`` string."""
    low = fmt.lower()
    if "compresseddepth" in low:
        raise ImageError(
            f"compressed format {fmt!r} (compressedDepth, with its depth header) is not "
            "supported; expected a jpeg or png format such as 'jpeg', 'png' or "
            "'rgb8; jpeg compressed bgr8'"
        )
    if _JPEG_RE.search(low):
        return "jpeg"
    if _PNG_RE.search(low):
        return "png"
    raise ImageError(
        f"unknown compressed image format {fmt!r}; expected one naming jpeg or png, such as "
        "'jpeg', 'png', 'rgb8; jpeg compressed bgr8' or 'bgr8; png compressed bgr8'"
    )


def decode_compressed(msg: Any) -> DecodedImage:
    """Decode a ``sensor_msgs/CompressedImage``-like message (jpeg or png).

    Args:
        msg: Object with ``format`` (str naming jpeg/jpg or png, e.g. ``"jpeg"`` or
            ``"rgb8; jpeg compressed bgr8"``) and ``data`` (bytes-like payload).

    Returns:
        Colour payloads: ``(H, W, 3) uint8``, order BGR (as ``cv2.imdecode`` gives it; any
        alpha channel is dropped; 16-bit colour PNGs are scaled to 8 bits by ``>> 8``).
        Grayscale payloads: ``(H, W) uint8``, or ``(H, W) uint16`` for 16-bit PNG, order MONO.

    Raises:
        ImageError: unknown format string, empty payload, or a payload OpenCV cannot decode.
    """
    fmt = str(msg.format)
    kind = _compressed_kind(fmt)
    buf = _as_uint8_buffer(msg.data)
    if buf.size == 0:
        raise ImageError(f"empty compressed image payload (format {fmt!r}); expected {kind} data")
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    except cv2.error as err:
        img = None
        detail = f": {err}"
    else:
        detail = ""
    if img is None:
        raise ImageError(
            f"corrupt or undecodable compressed image: expected a {kind} payload (format "
            f"{fmt!r}), got {buf.size} bytes starting with {bytes(buf[:8]).hex()}{detail}"
        )
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        if img.dtype not in (np.uint8, np.uint16):
            img = img.astype(np.uint16)
        return DecodedImage(img, ColorOrder.MONO)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    if img.dtype != np.uint8:
        img = (img >> 8).astype(np.uint8) if img.dtype == np.uint16 else img.astype(np.uint8)
    return DecodedImage(img, ColorOrder.BGR)


# --------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------


def to_rgb(img: DecodedImage) -> np.ndarray:
    """Convert a decoded image to RGB.

    Args:
        img: Any :class:`DecodedImage`.

    Returns:
        ``(H, W, 3) uint8`` C-contiguous RGB. Returns ``img.pixels`` itself (no copy, possibly
        read-only) when it already is C-contiguous RGB; otherwise a new array. mono16 maps
        linearly to 8 bits as ``value // 257`` (0 -> 0, 65535 -> 255).
    """
    px = img.pixels
    if img._with_alpha is not None:  # rgba8 / bgra8: cv2 on the 4-channel view is ~30x faster
        code = cv2.COLOR_RGBA2RGB if img.order is ColorOrder.RGB else cv2.COLOR_BGRA2RGB
        return cv2.cvtColor(img._with_alpha, code)
    if img.order is ColorOrder.RGB:
        return np.ascontiguousarray(px)
    if img.order is ColorOrder.BGR:
        if px.strides[1:] == (3, 1):  # rows may be padded; pixels packed: cv2 handles it
            return cv2.cvtColor(px, cv2.COLOR_BGR2RGB)
        return np.ascontiguousarray(px[:, :, ::-1])
    if px.dtype == np.uint16:
        px = (px // 257).astype(np.uint8)
    if px.strides[1] != 1:
        px = np.ascontiguousarray(px)
    return cv2.cvtColor(px, cv2.COLOR_GRAY2RGB)


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def encode_image(array_in: np.ndarray, encoding: str) -> tuple[int, int, int, array.array]:
    """Pack an array into the fields of a ``sensor_msgs/Image``.

    No channel reordering happens: ``array_in`` must already be in ``encoding``'s order.

    Args:
        array_in: mono8: ``(H, W)`` (or ``(H, W, 1)``) uint8; mono16: ``(H, W)`` (or
            ``(H, W, 1)``) uint16, any byte order; rgb8 / bgr8: ``(H, W, 3)`` uint8 in that
            channel order. Any strides.
        encoding: ``"mono8"``, ``"mono16"``, ``"rgb8"`` or ``"bgr8"``.

    Returns:
        ``(height, width, step, data)`` with ``step = width * bytes_per_pixel`` and ``data``
        an ``array.array('B')`` of ``height * step`` bytes (bytes-like; rclpy's
        ``Image.data`` takes it without a copy or per-byte check, ``np.frombuffer`` views it).
        mono16 data is little-endian: set ``is_bigendian = 0``. Exactly one copy is made.

    Raises:
        ImageError: unsupported output encoding, wrong shape or dtype, zero size.
    """
    enc = encoding.strip().lower()
    if enc not in _ENCODE_FORMATS:
        raise ImageError(
            f"cannot encode to {encoding!r}; supported output encodings: {', '.join(sorted(_ENCODE_FORMATS))}"
        )
    itemsize, channels = _ENCODE_FORMATS[enc]
    arr = np.asarray(array_in)
    if channels == 1 and arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    want_ndim = 2 if channels == 1 else 3
    want_dtype = np.uint16 if itemsize == 2 else np.uint8
    ok_shape = arr.ndim == want_ndim and (channels == 1 or arr.shape[2] == channels)
    ok_dtype = arr.dtype.kind == "u" and arr.dtype.itemsize == itemsize
    if not (ok_shape and ok_dtype):
        shape_txt = "(H, W)" if channels == 1 else f"(H, W, {channels})"
        raise ImageError(
            f"encoding {enc!r} expects a {shape_txt} {np.dtype(want_dtype)} array, "
            f"got shape {arr.shape} dtype {arr.dtype}"
        )
    height, width = int(arr.shape[0]), int(arr.shape[1])
    if height == 0 or width == 0:
        raise ImageError(f"cannot encode an empty image, got shape {arr.shape}")
    step = width * channels * itemsize
    data = array.array("B", bytes(1)) * (height * step)  # zero-filled, writable buffer
    dst = np.frombuffer(data, dtype="<u2" if itemsize == 2 else np.uint8).reshape(arr.shape)
    np.copyto(dst, arr, casting="equiv")  # the one copy (byte swap included)
    return height, width, step, data


def encode_compressed(array_rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> tuple[str, bytes]:
    """Compress an RGB (or mono8) image as a ``sensor_msgs/CompressedImage`` payload.

    Follows image_transport's convention: colour is stored as a BGR jpeg/png and the format
    string reads ``"rgb8; jpeg compressed bgr8"``; mono images give
    ``"mono8; jpeg compressed mono8"``.

    Args:
        array_rgb: ``(H, W, 3) uint8`` RGB, or ``(H, W)`` uint8 mono.
        fmt: ``"jpeg"`` (or ``"jpg"``) or ``"png"``.
        quality: JPEG quality 1..100 (ignored for png, which is lossless).

    Returns:
        ``(format string, payload bytes)``.

    Raises:
        ImageError: unsupported format, bad quality, wrong shape/dtype, or encoding failure.
    """
    kind = fmt.strip().lower()
    if kind == "jpg":
        kind = "jpeg"
    if kind not in SUPPORTED_COMPRESSED_FORMATS:
        raise ImageError(f"unsupported compressed format {fmt!r}; expected 'jpeg' or 'png'")
    arr = np.asarray(array_rgb)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)) or arr.size == 0:
        raise ImageError(
            "encode_compressed expects a non-empty (H, W, 3) uint8 RGB or (H, W) uint8 array, "
            f"got shape {arr.shape} dtype {arr.dtype}"
        )
    if kind == "jpeg":
        if not 1 <= int(quality) <= 100:
            raise ImageError(f"jpeg quality must be in 1..100, got {quality}")
        params = [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
    else:
        params = []
    if arr.ndim == 3:
        src, source_enc, target_enc = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), "rgb8", "bgr8"
    else:
        src, source_enc, target_enc = np.ascontiguousarray(arr), "mono8", "mono8"
    ok, payload = cv2.imencode(".jpg" if kind == "jpeg" else ".png", src, params)
    if not ok:  # pragma: no cover - OpenCV failure
        raise ImageError(f"OpenCV failed to encode a {arr.shape} image as {kind}")
    return f"{source_enc}; {kind} compressed {target_enc}", payload.tobytes()
