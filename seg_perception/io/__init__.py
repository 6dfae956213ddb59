"""Data in and out, without rclpy: image messages <-> numpy arrays (:mod:`.image` decodes raw
images, :mod:`.compressed` jpeg/png, :mod:`.image_encode` and :mod:`.image_messages` build
outputs) and rosbag2 files (:mod:`.bags`)."""
