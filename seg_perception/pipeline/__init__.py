"""The pipeline core shared by nodes, replay, benchmarks and tests (no rclpy here)."""
