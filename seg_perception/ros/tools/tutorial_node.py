"""What a user writes instead of seg_perception: the tutorial-style segmentation node, as a
baseline for the camera benchmark (docs/BENCHMARKS.md, "Behind a stock camera").

A plain rclpy node, no project code: a subscription with the default QoS (reliable, keep last
10), a cv_bridge-style copy of the image into numpy, eager torchvision DeepLabV3 on the same
checkpoint (resize, normalise, forward, argmax, nearest resize back) inside the callback, and
a mono8 class map published with the input's header. No tuning: no DDS profile, no
newest-frame-wins, default torch threads. Run as a script with a clean environment.
"""

from __future__ import annotations

import argparse
import contextlib


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--image", default="/camera/image")
    parser.add_argument("--class-map", default="/camera/semantic/class_map")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    args = parser.parse_args()

    import numpy as np
    import rclpy
    import torch
    from rclpy.executors import ExternalShutdownException
    from sensor_msgs.msg import Image
    from torch.nn import functional
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    state = checkpoint.get("model", checkpoint)
    model = deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=19, aux_loss=any(k.startswith("aux_classifier") for k in state)
    )
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    rclpy.init()
    node = rclpy.create_node("tutorial_segmentation")
    pub = node.create_publisher(Image, args.class_map, 10)

    def on_image(msg: Image) -> None:
        frame = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3).copy()  # cv_bridge-style
        with torch.no_grad():
            x = torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0).float() / 255.0
            x = functional.interpolate(x, size=(args.height, args.width), mode="bilinear", align_corners=False)
            logits = model((x - mean) / std)["out"]
            labels = logits.argmax(1, keepdim=True).float()
            full = functional.interpolate(labels, size=(msg.height, msg.width), mode="nearest")
        out = Image(header=msg.header, height=msg.height, width=msg.width, encoding="mono8", step=msg.width)
        out.data = full[0, 0].to(torch.uint8).numpy().tobytes()
        pub.publish(out)

    node.create_subscription(Image, args.image, on_image, 10)
    with contextlib.suppress(KeyboardInterrupt, ExternalShutdownException):  # Ctrl-C: stop quietly
        rclpy.spin(node)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
