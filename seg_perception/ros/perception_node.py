"""perception_node: one subscription per camera, both models on the same decoded frames, and
the panoptic fusion of their results (the combined core, pipeline/perception.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seg_perception.config.records import InstanceModelConfig, section
from seg_perception.pipeline.perception import PerceptionCore
from seg_perception.ros.channels import InputFrame
from seg_perception.ros.core_info import describe_instance, describe_semantic, instance_values, semantic_values
from seg_perception.ros.node_base import SegmentationNodeBase
from seg_perception.ros.outputs import PerceptionOutputs
from seg_perception.ros.runner import run_node


class PerceptionNode(SegmentationNodeBase):
    config_name = "perception"
    default_name = "perception_node"
    core: PerceptionCore | None = None  # made in configure, dropped in cleanup

    def setup_core(self, params: dict[str, Any]) -> None:
        self.core = PerceptionCore.from_params(params)
        self.instance_config = InstanceModelConfig.from_params(section(params, "instance"))
        assert self.core.semantic is not None and self.core.instance is not None
        semantic = describe_semantic(self, self.core.semantic)
        instance = describe_instance(self, self.instance_config, self.core.instance)
        self.core_description = f"{semantic} + {instance}"
        # engine_policy build_in_background: serve now, build the engine in a child process
        self.core.semantic.start_engine_build(self.log_event)

    def release_core(self) -> None:
        if self.core is not None:
            if self.core.semantic is not None:
                self.core.semantic.close()
            self.core.close()
        self.core = None

    def make_outputs(self, prefix: str) -> PerceptionOutputs:
        assert self.core is not None
        return PerceptionOutputs(self, self.core, prefix)

    def process(self, frames: Sequence[InputFrame]) -> None:
        assert self.core is not None
        outputs: list[PerceptionOutputs] = [self.outputs_of(f) for f in frames]
        confidence = any(o.semantic.wants_confidence() for o in outputs)
        results = self.core.run([f.image for f in frames], with_confidence=confidence)  # decoded once, both models
        self.publish_results(frames, results, outputs)

    def diagnostic_values(self) -> dict[str, Any]:
        if self.core is None or self.core.semantic is None:
            return {}
        return {
            **semantic_values(self.core.semantic),
            **self.core.semantic.engine_diagnostics(),
            **instance_values(self.instance_config, self.core.instance),
        }


def main(args: list[str] | None = None) -> int:
    return run_node(PerceptionNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
