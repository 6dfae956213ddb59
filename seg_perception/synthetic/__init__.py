"""Procedural forward-camera road scenes with exact Cityscapes ground truth.

The project has no downloadable data, so it renders its own: a pinhole camera 1.2-1.8 m above
a (possibly curving) road, looking forward with a small pitch and yaw. Every frame has the RGB
image (uint8), Cityscapes *label ids* per pixel and Cityscapes *instanceIds* per pixel
(``label_id * 1000 + k`` for thing pixels, else the label id), both produced by the same
painter's-algorithm rasteriser, so occlusion in the ground truth is exact. Imaging conditions
(day, dusk, night, fog, rain, noise, motion blur, over/under exposure) change only the image.

Entry points (import them from the module that defines them):

* :mod:`.frames` -- ``generate_frame``, ``generate_drive``, ``SyntheticFrame``;
* :mod:`.params` -- ``CONDITIONS``, ``SceneParams``;
* :mod:`.writers` -- ``write_cityscapes``, ``write_drive_bag``, ``write_cityscapes_and_drive_bag``;
* :mod:`.label_ids` -- the label id constants and ``colorize_label_ids``.

Inside: :mod:`.scene` (layout :mod:`.layout`, static world :mod:`.world` / :mod:`.roadside`,
traffic :mod:`.traffic` / :mod:`.agent_looks`), :mod:`.render` (camera :mod:`.camera`, ground
:mod:`.ground`, :mod:`.builder` with the painters :mod:`.structures`, :mod:`.street_furniture`,
:mod:`.vehicles`, :mod:`.people`, rasteriser :mod:`.raster`) and :mod:`.conditions`. Pure
numpy/OpenCV: no rclpy, no torch.
"""
