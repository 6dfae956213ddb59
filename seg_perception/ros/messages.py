"""numpy -> sensor_msgs/Image for the node's outputs (inputs are decoded duck-typed in the core)."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from seg_perception.io.image_messages import build_image_message


def image_msg(pixels: np.ndarray, header: Header, encoding: str | None = None) -> Image:
    """An Image holding ``pixels`` ((H, W) uint8/uint16 or (H, W, 3) uint8) with one copy
    (:func:`~seg_perception.io.image_messages.build_image_message`); ``header`` as is."""
    return build_image_message(Image, pixels, header, encoding)
