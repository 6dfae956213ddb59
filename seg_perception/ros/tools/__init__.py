"""Tools around the ROS layer: graph harness, benchmarks and the stock camera they drive."""
