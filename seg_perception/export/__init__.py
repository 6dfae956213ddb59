"""What makes artifacts: the semantic ONNX export (:mod:`.onnx`, with :mod:`.precision` and
:mod:`.calibration`), the instance split export (:mod:`.instance`, :mod:`.instance_graphs`,
:mod:`.instance_check`), TensorRT engine builds (:mod:`.engine_build`), the accuracy gate
(:mod:`.accuracy`), and the child processes serving starts (:mod:`.background_build`,
:mod:`.for_serving`). Serving never imports this package."""
