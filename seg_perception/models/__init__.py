"""The torchvision models and their checkpoints: DeepLabV3 and the in-graph head every semantic
backend runs (:mod:`.semantic`), Mask R-CNN (:mod:`.instance`). Nothing here downloads."""
