"""Benchmark metrics equal to the official Cityscapes and COCO tools.

===========================  =====================================================  =========================
metric                       equals                                                 defined in
===========================  =====================================================  =========================
IoU, iIoU, categories, mIoU  ``cityscapesscripts`` evalPixelLevelSemanticLabeling   ``cityscapes.semantic``
AP, AP50 (Cityscapes)        ``cityscapesscripts`` evalInstanceLevelSemanticLabeling  ``cityscapes.instance``
PQ, SQ, RQ                   ``cityscapesscripts`` evalPanopticSemanticLabeling     ``cityscapes.panoptic``
COCO mask AP / AP50 / AP75   ``pycocotools`` COCOeval (segm), called itself         ``coco``
train-id mIoU, pixel acc.    no official tool: mean over the classes present in     ``confusion.summarize``
                             the ground truth (training, export gate, conditions)
===========================  =====================================================  =========================

The Cityscapes re-implementations are vectorised numpy (no per-pixel Python loops) and
replicate the official arithmetic, including its accumulation order, so the tests
(``test/metrics/test_metrics.py``) find them equal to the official scripts run on the same
files. Every confusion matrix, per-class IoU and mean IoU comes from :mod:`seg_perception.metrics.confusion`, which
documents the two mean-IoU conventions and which caller uses which.

Converters write our outputs in the official input formats
(``cityscapes.files.write_instance_predictions`` / ``write_panoptic_json``,
``coco.coco_ground_truth`` / ``coco_predictions``). ``run.evaluate_paths`` evaluates a
prediction folder against a Cityscapes-layout ground truth (``seg-perception eval``),
``stream`` and ``bags`` evaluate frames as they stream by (replay, the demo, bags), ``latency``
keeps rolling timing statistics.

Pixel accuracy is our addition (the official script has no valid one). The official scripts'
quirks are listed in :mod:`seg_perception.metrics.cityscapes`. This package re-exports nothing:
import from the module that defines a name.
"""
