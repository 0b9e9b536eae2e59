"""Creeping: getting going again after a long stop the policy will not end by itself.

A policy trained by imitation learns that standing still usually means "keep standing" (the inertia
problem of CILRS, Codevilla et al. 2019), and sometimes waits through a whole green phase. TransFuser's agent
answers with creeping: after standing still for a long time it drives off slowly for a moment, unless its
safety box sees an obstacle. Here the same, gated by what the perception network sees in this frame:

- the car has stood still (speed below ``standing_speed``) for ``stuck_s`` seconds;
- no red or yellow light is detected in the central ``light_window`` of the image width with a score of at
  least ``light_score`` and at least that of the most confident green light there (standing at the line,
  the heads of the crossing roads, at the image edges or seen at an angle, often come out red at 0.3-0.8
  while the car's own far-side head, across the junction, is green);
- no vehicle or pedestrian stands in the corridor ahead: a detection whose box bottom centre, taken as its
  contact point with flat ground through the camera model, lies within ``corridor_length`` metres ahead
  and ``corridor_half_width`` to either side.

When the gates have stayed open for ``open_s``, the agent drives the policy's path at ``speed`` for
``duration_s`` seconds, re-checking the gates every step; the policy has the car again afterwards. The
stuck clock restarts once the car moves. ``drivestack probe`` measures how often the gates open on
recorded frames standing at green and at red lights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from drivestack.perception.classes import ClassMap
from drivestack.perception.tracking.ground import contact_pixels, ground_points
from drivestack.planning.agents.gates import gate_detections, light_classes
from drivestack.sim.conventions import ActorKind
from drivestack.sim.settings import CameraConfig


@dataclass
class CreepConfig:
    """When a learned agent that stands still drives off slowly by itself (``drivestack drive creep.*``)."""

    enabled: bool = True  # (bool) creep at all
    stuck_s: float = 20.0  # (float) seconds standing still before creeping
    standing_speed: float = 0.1  # (float) m/s below which the car counts as standing
    duration_s: float = 2.0  # (float) seconds of each creep
    speed: float = 2.5  # (float) m/s target speed while creeping
    open_s: float = 0.5  # (float) seconds the gates must stay open before a creep starts
    light_score: float = 0.3  # (float) a red or yellow light detected with this score or more, and at least the best green one's, forbids creeping
    light_window: float = 0.7  # (float) share of the image width, centred, whose light detections count
    obstacle_score: float = 0.3  # (float) detection score of a vehicle or pedestrian that counts as an obstacle
    corridor_length: float = 10.0  # (float) metres ahead of the camera checked for obstacles
    corridor_half_width: float = 1.6  # (float) metres to each side of the car's axis checked for obstacles

    def __post_init__(self) -> None:
        if self.open_s < 0:
            raise ValueError(f"creep.open_s must be >= 0, got {self.open_s}")
        if not 0 < self.light_window <= 1:
            raise ValueError(f"creep.light_window must be in (0, 1], got {self.light_window}")
        for name in ("stuck_s", "duration_s", "speed", "corridor_length", "corridor_half_width"):
            if getattr(self, name) <= 0:
                raise ValueError(f"creep.{name} must be > 0, got {getattr(self, name)}")


@dataclass
class CreepCheck:
    """What the gates saw in one frame."""

    stop_light: bool  # a red or yellow head in the central window, at least as confident as any green one there
    obstacle: bool  # a vehicle or pedestrian is in the corridor ahead


class CreepGates:
    """The two gates read from one frame's raw detection outputs (no state: ``drivestack probe`` uses it alone)."""

    def __init__(self, config: CreepConfig, camera: CameraConfig, classes: ClassMap):
        self.config, self.camera = config, camera
        self.stop_classes, self.go_classes = light_classes(classes)
        self.obstacle_classes = [i for i, c in enumerate(classes.det) if c.kind in (ActorKind.VEHICLE, ActorKind.PEDESTRIAN)]

    def check(self, heatmap: np.ndarray, box: np.ndarray) -> CreepCheck:
        """Gates from the raw detection outputs of one frame: ``heatmap`` (1,C,h,w) logits, ``box`` (1,4,h,w)."""
        c = self.config
        b, s, label = gate_detections(heatmap, box, self.camera.width, min(c.light_score, c.obstacle_score))
        centre = (b[:, 0] + b[:, 2]) / 2
        central = np.abs(centre - self.camera.width / 2) <= c.light_window * self.camera.width / 2
        stop = s[central & np.isin(label, self.stop_classes)].max(initial=0.0)
        go = s[central & np.isin(label, self.go_classes)].max(initial=0.0)
        stop_light = bool(stop >= c.light_score and stop >= go)
        obstacle = b[(s >= c.obstacle_score) & np.isin(label, self.obstacle_classes)]
        contact = ground_points(contact_pixels(obstacle), self.camera)
        ahead = contact[:, 0] - self.camera.x
        in_corridor = (ahead >= 0) & (ahead <= c.corridor_length) & (np.abs(contact[:, 1]) <= c.corridor_half_width)
        return CreepCheck(stop_light=stop_light, obstacle=bool(in_corridor.any()))


class CreepMonitor:
    """Per-route state: how long the car has stood, whether it is creeping now."""

    def __init__(self, config: CreepConfig, camera: CameraConfig, classes: ClassMap, dt: float):
        self.config = config
        self.gates = CreepGates(config, camera, classes)
        self.stuck_steps = max(1, round(config.stuck_s / dt))
        self.open_steps = round(config.open_s / dt)
        self.open_for = 0  # steps the gates have been open in a row
        self.creep_steps = max(1, round(config.duration_s / dt))
        self.standing_steps = 0
        self.creep_left = 0  # steps of the current creep still to go

    def update(self, speed: float, heatmap: np.ndarray, box: np.ndarray) -> bool:
        """Advance one step; True when the agent should creep this step."""
        if speed >= self.config.standing_speed and self.creep_left == 0:
            self.standing_steps = self.open_for = 0
            return False
        self.standing_steps += 1
        if self.creep_left == 0 and self.standing_steps < self.stuck_steps:
            return False
        gates = self.gates.check(heatmap, box)
        if gates.stop_light or gates.obstacle:
            self.creep_left = self.open_for = 0
            return False
        self.open_for += 1
        if self.creep_left == 0 and self.open_for <= self.open_steps:
            return False
        self.creep_left = (self.creep_left or self.creep_steps) - 1
        if self.creep_left == 0:
            self.standing_steps = self.open_for = 0
        return True
