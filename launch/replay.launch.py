"""Replay a recorded drive through the live graph: bag_player -> perception_node -> bag_recorder,
all on the bag's clock (use_sim_time).

    ros2 launch seg_perception replay.launch.py bag:=/data/drive_0042 out_bag:=/tmp/drive_0042_outputs
    ros2 launch seg_perception replay.launch.py bag:=drive rate:=0.5 loop:=true namespace:=front image:=image_raw
    rviz2 -d $(ros2 pkg prefix seg_perception)/share/seg_perception/config/seg_perception.rviz
"""

from seg_perception.ros.launch_description import replay_launch


def generate_launch_description():
    return replay_launch()
