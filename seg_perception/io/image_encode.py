"""numpy arrays -> image message payloads: raw ``sensor_msgs/Image`` data in the encodings the
node publishes, and jpeg/png ``CompressedImage`` data. The inverse of :mod:`.image`.
"""

from __future__ import annotations

import array

import numpy as np
import numpy.typing as npt

from seg_perception.errors import ImageError

_ENCODE_FORMATS = {"mono8": (1, 1), "mono16": (2, 1), "rgb8": (1, 3), "bgr8": (1, 3)}


def encode_image(array_in: npt.ArrayLike, encoding: str) -> tuple[int, int, int, array.array[int]]:
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
