"""perception_node: one subscription, both models on the same decoded frames, and the
panoptic fusion of their results."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sensor_msgs.msg import Image

from ..config import InstanceModelConfig, SemanticModelConfig, section
from ..errors import ConfigError
from ..pipeline.factory import instance_from_config
from ..pipeline.panoptic import fuse_panoptic
from ..pipeline.semantic import SemanticSegmenter
from .messages import image_msg
from .node_base import InputFrame, SegmentationNodeBase, describe_instance, describe_semantic
from .outputs import InstanceOutputs, SemanticOutputs
from .runner import run_node


class PerceptionNode(SegmentationNodeBase):
    config_name = "perception"

    def __init__(self, node_name: str = "perception_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)

    def setup_core(self, params: dict[str, Any]) -> None:
        self.semantic_segmenter = SemanticSegmenter.from_config(SemanticModelConfig.from_params(section(params, "semantic")))
        self.instance_config = InstanceModelConfig.from_params(section(params, "instance"))
        self.instance_segmenter = instance_from_config(self.instance_config)
        if self.semantic_segmenter.labels.name != self.instance_segmenter.labels.name:
            raise ConfigError("semantic.labels and instance.labels must name the same label set for panoptic fusion")
        score = params["panoptic.instance_overrides_stuff_score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
            raise ConfigError(f"parameter panoptic.instance_overrides_stuff_score: expected [0, 1], got {score!r}")
        self.stuff_score = float(score)
        # The two models run concurrently only on a GPU; on a CPU both already use every core.
        on_gpu = self.semantic_segmenter.backend.device.startswith("cuda")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="instance") if on_gpu else None
        self.core_description = (
            f"{describe_semantic(self, self.semantic_segmenter)} + {describe_instance(self, self.instance_config)}"
        )

    def setup_publishers(self) -> None:
        self.semantic = SemanticOutputs(self, self.semantic_segmenter)
        self.instance = InstanceOutputs(self, self.instance_segmenter)
        self.panoptic = self.output_publisher(Image, "panoptic/panoptic_map")

    def process(self, frames: Sequence[InputFrame]) -> None:
        images = [f.image for f in frames]  # decoded once, for both models
        if self._pool is not None:
            pending = self._pool.submit(self.instance_segmenter.segment, images)
            semantic = self.semantic_segmenter.segment(images, with_confidence=self.semantic.wants_confidence())
            instances = pending.result()
        else:
            semantic = self.semantic_segmenter.segment(images, with_confidence=self.semantic.wants_confidence())
            instances = self.instance_segmenter.segment(images)
        labels = self.semantic_segmenter.labels
        for frame, sem, inst in zip(frames, semantic, instances):
            self.semantic.publish(frame, sem)
            self.instance.publish(frame, inst)
            panoptic = fuse_panoptic(sem.class_map, inst, labels, self.stuff_score)
            self.panoptic.publish(image_msg(panoptic, frame.header, "mono16"))
            self.published(frame)

    def diagnostic_values(self) -> dict[str, Any]:
        return {**self.semantic_diagnostics(self.semantic_segmenter), **self.instance_diagnostics(self.instance_config)}

    def close(self) -> None:
        super().close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def main(args: list[str] | None = None) -> int:
    return run_node(PerceptionNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
