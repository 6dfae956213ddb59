"""Process entry for a node: one error boundary, spin, and an ordered shutdown.

Order matters: the worker thread publishes, so it is joined before the node is destroyed,
and the executor is shut down before rclpy (a spinning executor at rclpy.shutdown() aborts).

Both kinds of node go through here. A plain node (``lifecycle: false``) configures and
activates in its constructor, so a bad parameter ends start-up with one ``error:`` line and
exit code 2. A managed node (``lifecycle: true``) starts unconfigured and is driven through
its lifecycle services; a failed configure is a failed transition and the process keeps
serving. On Ctrl-C either kind takes the lifecycle shutdown transition from whatever state
it is in (``close()``), which stops the worker before the node is destroyed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from seg_perception.errors import SegPerceptionError
from seg_perception.ros.transport import use_large_image_profile

N = TypeVar("N", bound=Node)


def run_node(factory: Callable[[], N], args: list[str] | None = None, until: Callable[[N], bool] | None = None) -> int:
    """Create the node, spin until Ctrl-C (or until ``until(node)`` is true), shut down in order."""
    use_large_image_profile()
    rclpy.init(args=args)
    try:
        node = factory()
    except SegPerceptionError as err:
        print(f"error: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if until is None:
            executor.spin()
        else:
            while rclpy.ok() and not until(node):
                executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        close = getattr(node, "close", None)
        if close is not None:
            close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
