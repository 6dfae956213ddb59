"""Pre-processing in torch, on whatever device the frames are on: the GPU twin of
:func:`seg_perception.pipeline.preprocess.resize_batch`.

On a GPU the full-resolution uint8 frame is uploaded once and resized there, so the host
never touches a float pixel and the upload is the only per-frame host work. The algorithm is
:func:`seg_perception.pipeline.preprocess.downscale`'s, step for step, so the CPU and GPU paths give the same model
input up to rounding (cv2 resizes uint8 with 11-bit fixed-point weights and rounds after
every step; we stay in float32 until the end): every pixel within 1 grey level on the sizes
the tests cover.
"""

from __future__ import annotations

import torch
from torch.nn.functional import interpolate

from seg_perception.io.image import ColorOrder


def resize_frames(frames: torch.Tensor, size: tuple[int, int], order: ColorOrder) -> torch.Tensor:
    """uint8 frames of one shape and colour order -> uint8 (N, height, width, 3) RGB.

    ``frames``: (N, H, W, 3) for RGB/BGR, (N, H, W) or (N, H, W, 1) for MONO, on any
    device; ``size`` = (height, width). The result is on the same device, C-contiguous; it
    may share memory with ``frames`` when nothing needs to change (RGB at the model size).

    Each axis that is more than twice the target is halved (bilinear at half size: at an
    even size the sample points fall midway between pixel pairs, i.e. the 2-pixel box
    average; at an odd size the scale is W / (W // 2), which is what ``downscale``'s
    ``cv2.resize`` to ``W // 2`` samples too, so ``avg_pool2d`` would not match there), then
    one bilinear step (``align_corners=False``: OpenCV's pixel-centre convention) to the
    target, rounded to uint8. Colour order is fixed last, on the small image.
    """
    if frames.dtype != torch.uint8:
        raise TypeError(f"frames must be 8-bit, got {frames.dtype} ({order.value})")
    if order is ColorOrder.MONO and frames.ndim == 3:
        frames = frames.unsqueeze(-1)
    channels = 1 if order is ColorOrder.MONO else 3
    if frames.ndim != 4 or frames.shape[-1] != channels:
        raise ValueError(
            f"{order.value} frames must be (N, H, W{', 3' if channels == 3 else ''}), got {tuple(frames.shape)}"
        )
    height, width = size
    if tuple(frames.shape[1:3]) != (height, width):
        x = frames.permute(0, 3, 1, 2).float()  # float32 even for fp16 models: rounding as on the CPU
        while True:
            h, w = x.shape[-2:]
            halve_y, halve_x = h > 2 * height, w > 2 * width
            if not (halve_x or halve_y):
                break
            x = interpolate(
                x, size=(h // 2 if halve_y else h, w // 2 if halve_x else w), mode="bilinear", align_corners=False
            )
        if tuple(x.shape[-2:]) != (height, width):
            x = interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
        # floor(x + 0.5): round half up like cv2 (torch.round rounds half to even)
        frames = (x + 0.5).floor_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    if order is ColorOrder.BGR:
        frames = frames.flip(-1)
    elif order is ColorOrder.MONO:
        frames = frames.expand(-1, -1, -1, 3)
    return frames.contiguous()
