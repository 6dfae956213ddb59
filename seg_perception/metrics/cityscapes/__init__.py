"""Cityscapes benchmark metrics, computed exactly as ``cityscapesscripts`` 2.3.0 computes them.

Three evaluators, all vectorised numpy (loops run over classes, thresholds and frames, never
over pixels), each replicating one official script line by line in its arithmetic:

* ``semantic.SemanticEvaluator`` - ``evalPixelLevelSemanticLabeling``: IoU, iIoU, category
  IoU / iIoU and their means (confusion matrix and IoU from :mod:`seg_perception.metrics.confusion`).
* ``instance.InstanceEvaluator`` - ``evalInstanceLevelSemanticLabeling``: AP and AP50.
* ``panoptic.PanopticEvaluator`` - ``evalPanopticSemanticLabeling``: PQ, SQ, RQ.

``files`` reads our PNGs and instance scores and writes the official input formats, so that the
official scripts can be run on our outputs; ``results`` finds, reads and writes result files in
the official conventions (label-id PNGs, instance txt lists, COCO panoptic json + PNG folder)
and ``results_eval`` scores them (``seg-perception eval`` on such a folder); ``common`` holds
the label-id tables all of them use. Import from these modules
(``seg_perception.metrics.cityscapes.semantic`` etc.); this package re-exports nothing.

Official quirks kept (so that numbers match) and documented here:

* iIoU counts instance ids ``> 1000``; an instance ``label*1000 + 0`` of label 1 would be
  skipped, every other ``label*1000 + k`` is counted (k = 0 included for thing labels).
* Category iIoU exists only for categories whose labels (id >= 0) all have instances (human,
  vehicle); its false positives include predictions of the ignored caravan/trailer labels.
* In the instance evaluation "void" means an instanceIds value equal to an ignored label id,
  so pixels of caravan/trailer *instances* (29001, ...) are not void there; in the panoptic
  evaluation they are (ignored labels become VOID).
* A prediction overlapping a group that is also smaller than 100 pixels counts that
  intersection twice as ignored.
* A class with ground truth and predictions that are all ignored, and no ground truth matched,
  makes the official AP code index an empty array (IndexError); we return AP 0 there.
* A class absent from the (size-filtered) ground truth has AP NaN even if predicted (false
  positives on it are free); per-class PQ of a class with TP+FP+FN = 0 is reported as 0.0 (as
  the official tool does) and left out of the means; with no class at all in a group the
  official tool divides by zero, we return NaN.
* Our prediction converter maps pixels of thing classes that carry no instance (panoptic value
  < 1000) and pixels of ignored labels to VOID (0).

Everything here is pure numpy/OpenCV; ``cityscapesscripts`` is only needed by the tests.
"""
