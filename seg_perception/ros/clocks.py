"""A steady clock for timers that must run whatever ROS time does.

Under ``use_sim_time`` a ROS-time timer waits for ``/clock``: discovery, input health and
/diagnostics must not (a node without ``/clock`` still has to say why it is silent).
"""

from __future__ import annotations

from rclpy.clock import Clock

try:  # Jazzy and later
    from rclpy.clock_type import ClockType
except ImportError:  # Humble defines it in rclpy.clock
    from rclpy.clock import ClockType  # type: ignore[attr-defined]  # not re-exported by rclpy.clock


def steady_clock() -> Clock:
    """A clock on the monotonic system time, never ROS time."""
    return Clock(clock_type=ClockType.STEADY_TIME)
