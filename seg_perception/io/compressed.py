"""``sensor_msgs/CompressedImage`` payloads: jpeg and png decoded into a :class:`DecodedImage`
(duck-typed messages, whatever ``format`` spelling a driver uses), and arrays encoded back."""

from __future__ import annotations

import re
from typing import Any, Protocol, cast

import cv2
import numpy as np
import numpy.typing as npt

from seg_perception.errors import ImageError
from seg_perception.io.image import ColorOrder, DecodedImage, Pixels, as_uint8, as_uint8_buffer


class CompressedImageMessage(Protocol):
    """What :func:`decode_compressed` reads of a ``sensor_msgs/CompressedImage``."""

    format: str
    data: Any  # bytes-like or a sequence of ints, checked by as_uint8_buffer


SUPPORTED_COMPRESSED_FORMATS: frozenset[str] = frozenset(["jpeg", "png"])


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


def decode_compressed(msg: CompressedImageMessage) -> DecodedImage:
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
    buf = as_uint8_buffer(msg.data)
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
        return DecodedImage(cast("Pixels", img), ColorOrder.MONO)  # uint8 or uint16, checked above
    if img.shape[2] == 4:
        img = img[:, :, :3]
    if img.dtype == np.uint8:
        bgr = as_uint8(img)
    elif img.dtype == np.uint16:
        bgr = (img.astype(np.uint16, copy=False) >> 8).astype(np.uint8)
    else:
        bgr = img.astype(np.uint8)
    return DecodedImage(bgr, ColorOrder.BGR)


def encode_compressed(array_rgb: npt.ArrayLike, fmt: str = "jpeg", quality: int = 90) -> tuple[str, bytes]:
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
