"""Fleet replay (``seg-perception fleet``) and model comparison (``seg-perception compare``):
every frame of many recorded drives through the same core as ``replay`` and the nodes, on a
Ray Data pipeline (read a drive -> model actors -> score), merged into one report whose metrics
equal one process replaying the same frames in order.

Only :mod:`seg_perception.apps.fleet.job` imports ray (an import contract checks it): the read,
model and score stages are plain functions and classes that Ray runs in its workers.
"""
