"""The ROS 2 layer: the only part of seg_perception that imports rclpy and messages."""
