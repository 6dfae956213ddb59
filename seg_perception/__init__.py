"""seg_perception: real-time camera segmentation for ROS 2 (DeepLab, Mask R-CNN).

The core (everything outside ``seg_perception.ros``) never imports rclpy, so offline
replay, benchmarks and tests drive exactly the code the nodes run.
"""

__version__ = "0.1.0"
