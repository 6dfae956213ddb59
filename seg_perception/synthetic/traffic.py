"""Agents (things that move and carry instance ids) and the traffic simulation of a drive.

An agent stands at road position (``x``, ``s``): lateral road x and arc position along the road,
both in metres; ``heading`` is 0 along the road, pi against it, +-pi/2 across it. Instance
numbers are the smallest free number per class and stay with the agent while it lives, so the
instance ids of a drive are stable from frame to frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from seg_perception.synthetic.agent_looks import (
    AgentLook,
    CarLook,
    PersonLook,
    TwoWheelerLook,
    person_look,
    two_wheeler_look,
    vehicle_look,
)
from seg_perception.synthetic.label_ids import BICYCLE, BUS, CAR, MOTORCYCLE, PERSON, RIDER, TRUCK
from seg_perception.synthetic.layout import RoadLayout
from seg_perception.synthetic.params import SceneParams
from seg_perception.synthetic.randomness import choose
from seg_perception.synthetic.world import AHEAD_M, BEHIND_M, CHUNK_M, Crosswalk, StaticItem

AGENT_LABELS = {"car": CAR, "truck": TRUCK, "bus": BUS, "person": PERSON, "bicycle": BICYCLE, "motorcycle": MOTORCYCLE}
_LANE_KINDS = ("car", "truck", "bus", "motorcycle", "bicycle")
_LANE_KIND_WEIGHTS = (0.8, 0.07, 0.05, 0.05, 0.03)
_EGO_LENGTH_M = 4.6  # the camera car, as seen by the traffic behind it


class Agent:
    """A vehicle, pedestrian or two-wheeler with its rider; see the module docstring for units."""

    __slots__ = (
        "heading",
        "instance",
        "kind",
        "lane",
        "length_m",
        "look",
        "rider_instance",
        "s",
        "speed",
        "stride_phase",
        "turns_at_kerb",
        "x",
    )

    def __init__(
        self,
        kind: str,
        x: float,
        s: float,
        heading: float,
        speed: float,
        look: AgentLook | None,
        lane: int | None = None,
        length_m: float = 0.0,
    ) -> None:
        self.kind, self.x, self.s, self.heading, self.speed, self.look = kind, x, s, heading, speed, look
        self.length_m = look.length_m if look is not None else length_m
        self.instance = 0  # k of the instance id label * 1000 + k, set when the agent is added
        self.rider_instance = 0  # the rider's k on a two-wheeler
        self.lane = lane  # moving traffic: its lane (negative: oncoming); None: parked or on foot
        self.stride_phase = 0.0  # rad, walk and pedal cycle
        if isinstance(look, PersonLook):
            self.stride_phase = float(look.stride_phase0)
        elif isinstance(look, TwoWheelerLook):
            self.stride_phase = float(look.rider.stride_phase0)
        self.turns_at_kerb = False  # crossing the road: turns onto the sidewalk on the far side

    @property
    def half_length(self) -> float:
        return self.length_m / 2.0

    @property
    def label(self) -> int:
        return AGENT_LABELS[self.kind]


class Traffic:
    """The agents of a scene: spawned chunk by chunk from the agent stream, moved by :meth:`step`."""

    def __init__(self, params: SceneParams, layout: RoadLayout, rng: np.random.Generator) -> None:
        self.params, self.layout, self.rng = params, layout, rng
        self.agents: list[Agent] = []
        self.spawned_chunks: set[int] = set()
        self.in_drive = False  # a drive spawns no crossing people the camera would run into
        self._used_instances: dict[int, set[int]] = {}

    # ---- instance numbers: the smallest free k per class, stable while the agent lives
    def _take_instance(self, label: int) -> int:
        used = self._used_instances.setdefault(label, set())
        k = 1
        while k in used:
            k += 1
        used.add(k)
        return k

    def add(self, agent: Agent) -> None:
        agent.instance = self._take_instance(agent.label)
        if agent.kind in ("bicycle", "motorcycle"):
            agent.rider_instance = self._take_instance(RIDER)
        self.agents.append(agent)

    def _release(self, agent: Agent) -> None:
        self._used_instances[agent.label].discard(agent.instance)
        if agent.rider_instance:
            self._used_instances[RIDER].discard(agent.rider_instance)

    def _overlaps(self, agent: Agent) -> bool:
        """Whether a vehicle would overlap one already on the road (pedestrians do not count)."""
        for other in self.agents:
            if other.kind == "person" or abs(other.x - agent.x) > 1.8:
                continue
            if abs(other.s - agent.s) < other.half_length + agent.half_length + 1.5:
                return True
        return False

    def _add_unless_overlapping(self, agent: Agent) -> None:
        if not self._overlaps(agent):
            self.add(agent)

    # ---- spawning with a chunk of road
    def spawn_chunk(self, chunk: int, camera_s: float, statics: Sequence[StaticItem], initial: bool) -> None:
        """Traffic, parked cars, pedestrians and crossing people on chunk ``chunk`` (once per chunk).

        ``initial``: the first frame of a frame or drive, which keeps the camera's lane clear.
        """
        if chunk in self.spawned_chunks:
            return
        self.spawned_chunks.add(chunk)
        start_s, end_s = chunk * CHUNK_M, (chunk + 1) * CHUNK_M
        crosswalks = [item for item in statics if isinstance(item, Crosswalk)]
        self._spawn_lane_traffic(start_s, end_s, camera_s, initial)
        self._spawn_parked_cars(start_s, end_s, crosswalks)
        self._spawn_pedestrians(start_s, end_s)
        self._spawn_crossing_people(camera_s, crosswalks)

    def _spawn_lane_traffic(self, start_s: float, end_s: float, camera_s: float, initial: bool) -> None:
        params, layout, rng = self.params, self.layout, self.rng
        mean_gap = 10.0 + 45.0 * (1.0 - params.traffic_density)
        for lane in range(-layout.lanes_backward, layout.lanes_forward):
            forward = lane >= 0
            lane_x = (lane + 0.5) * layout.lane_width
            s = start_s + float(rng.exponential(mean_gap))
            while s < end_s:
                kind = choose(rng, _LANE_KINDS, _LANE_KIND_WEIGHTS)
                if kind == "bicycle" and (lane != layout.lanes_forward - 1 or lane == params.ego_lane):
                    kind = "car"  # bicycles ride at the right edge, never in the camera's lane
                if initial and lane == params.ego_lane and camera_s - 12 < s < camera_s + 9:
                    s += 10  # room for the camera car
                    continue
                if lane == params.ego_lane:
                    speed = params.speed_mps * float(rng.uniform(1.0, 1.25))
                else:
                    speed = float(rng.uniform(0.6, 1.3)) * params.speed_mps
                if kind == "bicycle":
                    speed = float(rng.uniform(3.5, 6.5))
                    x = layout.lanes_right_x - 0.8
                else:
                    x = lane_x + float(rng.uniform(-0.25, 0.25))
                look = two_wheeler_look(rng, kind) if kind in ("motorcycle", "bicycle") else vehicle_look(rng, kind)
                agent = Agent(kind, x, s, 0.0 if forward else math.pi, speed, look, lane=lane)
                self._add_unless_overlapping(agent)
                s += agent.half_length * 2 + float(rng.exponential(mean_gap)) + 2.0

    def _spawn_parked_cars(self, start_s: float, end_s: float, crosswalks: list[Crosswalk]) -> None:
        layout, rng = self.layout, self.rng
        for sign, width in ((1, layout.parking_right_m), (-1, layout.parking_left_m)):
            if width <= 0:
                continue
            x = (layout.lanes_right_x + 1.15) if sign > 0 else (layout.lanes_left_x - 1.15)
            s = start_s + float(rng.uniform(0, 6))
            occupancy = float(rng.uniform(0.4, 0.95))
            while s < end_s:
                look = vehicle_look(rng, "car" if rng.random() < 0.93 else "truck")
                length = look.length_m
                clear_of_crossings = all(abs(s + length / 2 - cw.start_s) > 6 for cw in crosswalks)
                if rng.random() < occupancy and clear_of_crossings:
                    agent = Agent(
                        "car" if isinstance(look, CarLook) else "truck",
                        x + float(rng.uniform(-0.15, 0.15)),
                        s + length / 2,
                        0.0 if sign > 0 else math.pi,
                        0.0,
                        look,
                    )
                    self._add_unless_overlapping(agent)
                s += length + float(rng.uniform(0.8, 3.0))

    def _spawn_pedestrians(self, start_s: float, end_s: float) -> None:
        params, rng = self.params, self.rng
        for sign in (-1, 1):
            side = self.layout.side(sign)
            density = params.pedestrian_density * (1.0 if side.style == "urban" else 0.4)
            for _ in range(int(rng.poisson(7.0 * density))):
                inner, outer = side.sidewalk_span
                offset = float(rng.uniform(inner + 0.35, max(inner + 0.4, outer - 0.35)))
                s = float(rng.uniform(start_s, end_s))
                group_size = 1 if rng.random() < 0.75 else int(rng.integers(2, 4))
                walking = rng.random() < 0.8
                heading = 0.0 if rng.random() < 0.5 else math.pi
                speed = float(rng.uniform(1.0, 1.6)) if walking else 0.0
                # a group walks side by side, towards the middle of the sidewalk
                towards_middle = 1 if offset < (inner + outer) / 2 else -1
                for member in range(group_size):
                    look = person_look(rng, child=bool(member > 0 and rng.random() < 0.35))
                    look.standing = not walking
                    x = side.x(offset + 0.55 * member * towards_middle)
                    self.add(Agent("person", x, s + float(rng.uniform(-0.3, 0.3)), heading, speed, look))

    def _spawn_crossing_people(self, camera_s: float, crosswalks: list[Crosswalk]) -> None:
        params, layout, rng = self.params, self.layout, self.rng
        for crosswalk in crosswalks:
            if self.in_drive and crosswalk.start_s < camera_s + 70.0:
                continue  # in a drive only where the crossing is over before the camera gets there
            for _ in range(int(rng.poisson(2.5 * params.pedestrian_density + 0.5))):
                x = float(rng.uniform(layout.kerb_left_x - 1.0, layout.kerb_right_x + 1.0))
                heading = math.pi / 2 if rng.random() < 0.5 else -math.pi / 2
                if rng.random() < 0.85:
                    s = crosswalk.start_s + float(rng.uniform(0.4, crosswalk.length_m - 0.4))
                    agent = Agent("person", x, s, heading, float(rng.uniform(1.1, 1.7)), person_look(rng))
                else:
                    s = crosswalk.start_s + crosswalk.length_m / 2
                    speed = float(rng.uniform(2.5, 4.5))
                    agent = Agent("bicycle", x, s, heading, speed, two_wheeler_look(rng, "bicycle"))
                agent.turns_at_kerb = True
                self.add(agent)

    # ---- one time step of a drive
    def step(self, dt: float, camera_s: float, ego_speed: float, rng: np.random.Generator) -> None:
        """Advance every agent by ``dt`` seconds (the camera is now at ``camera_s``), drop those
        that left the content window and let faster traffic arrive from behind."""
        self._follow_leaders(camera_s, ego_speed)
        layout = self.layout
        for agent in self.agents:
            distance = agent.speed * dt
            agent.s += distance * math.cos(agent.heading)
            agent.x += distance * math.sin(agent.heading)
            if agent.kind == "person":
                assert isinstance(agent.look, PersonLook)
                agent.stride_phase += distance / (0.36 * agent.look.height_m)
            if agent.turns_at_kerb:
                # crossing people turn onto the sidewalk once they reach the far kerb
                beyond_right = agent.heading > 0 and agent.x > layout.kerb_right_x + 1.0
                if beyond_right or (agent.heading < 0 and agent.x < layout.kerb_left_x - 1.0):
                    agent.heading = 0.0 if rng.random() < 0.5 else math.pi
                    agent.turns_at_kerb = False
                    if agent.kind == "bicycle":
                        agent.speed = 0.0
        kept = []
        for agent in self.agents:
            if camera_s - BEHIND_M - 5 <= agent.s <= camera_s + AHEAD_M + 30:
                kept.append(agent)
            else:
                self._release(agent)
        self.agents = kept
        # faster traffic arriving from behind in the forward lanes beside the camera's
        for lane in range(layout.lanes_forward):
            if lane == self.params.ego_lane:
                continue
            if rng.random() < dt * 0.08 * (0.5 + self.params.traffic_density):
                look = vehicle_look(rng, "car")
                speed = ego_speed + float(rng.uniform(2.5, 6.0))
                x = (lane + 0.5) * layout.lane_width
                self._add_unless_overlapping(Agent("car", x, camera_s - 30.0, 0.0, speed, look, lane=lane))

    def _follow_leaders(self, camera_s: float, ego_speed: float) -> None:
        """Car following per lane: nobody drives into the one ahead (or into the camera car)."""
        by_lane: dict[int, list[Agent]] = {}
        for agent in self.agents:
            if agent.lane is not None and agent.speed > 0:
                by_lane.setdefault(agent.lane, []).append(agent)
        ego = Agent("car", self.layout.ego_x, camera_s - 1.0, 0.0, ego_speed, None, length_m=_EGO_LENGTH_M)
        for lane, agents in by_lane.items():
            forward = lane >= 0
            if lane == self.params.ego_lane:
                agents = [*agents, ego]  # traffic behind the camera follows it
            agents.sort(key=lambda agent: agent.s, reverse=forward)  # leader first
            leader = None
            for agent in agents:
                if leader is not None and agent is not ego:
                    gap = abs(leader.s - agent.s) - leader.half_length - agent.half_length
                    if gap < 6.0 + 0.6 * agent.speed:
                        agent.speed = min(agent.speed, leader.speed)
                    if leader is ego and gap < 3.0:
                        agent.speed = min(agent.speed, ego_speed * 0.9)
                leader = agent
