"""A red-light stop under the learned policy: braking for the red heads its own network detects.

On the generated validation suite most of the learned agent's red-light infractions happened with the light
plainly detected: the near head beside the stop line read red at 0.5-0.8 for the last 15 m while the policy's
brake probability stayed near zero (docs/results.md). This layer reads the detections each step:

- it takes the *nearest head* among the light detections (score at least ``score``) whose box centre lies right
  of ``right_of`` times the image width (in right-hand traffic the heads that govern the lane stand right of
  it, beside the stop line and across the junction), the rightmost of those at about the same distance (a
  crossing road's head seen at an angle can stand just left of it); the bottom edge of its box, taken as
  lying at ``head_height`` metres above the road, gives its distance ahead through the camera model
  (:func:`drivestack.perception.tracking.ground.ground_points` on that plane); it reads *stop* when a red or
  yellow box of that head is at least as confident as a green one;
- reading stop, it plans a stop ``stop_offset`` metres short of the head, where the near head stays in view,
  if the car can make it braking at ``max_decel`` or less (a light turning red when the car is already at
  the line is passed, as a driver does in the dilemma zone); while a stop is planned the target speed is
  capped to ``sqrt(2 decel s)`` at ``s`` metres from the stop point, dead-reckoned from the speed and brought
  nearer, never farther, by each new reading (the far head across the junction must not move it past the line);
- reading green within ``near_green`` metres, or at all while a stop is planned, on ``confirm_steps`` frames in
  a row (a single frame misread no longer lets the car go), it takes the head for the car's own, drops any stop
  and reads no head until the car is ``pass_m`` past it: some heads of the crossing roads, seen at an angle
  across the junction, read the opposite state (the simulator labels a head with its state within 60 degrees
  of its axis, ``LAMP_VIEW_COS``, so the detector learns to);
- passing a head it took green while moving, it still watches that head (a head within ``PASSING_TOLERANCE_M`` of
  the distance it should have by now) until ``line_margin`` metres short of it: turning yellow or red there on
  ``confirm_steps`` frames in a row, with the car able to stop ``line_margin`` short of it, a stop is planned
  there (the near head stands beside the stop line);
- standing at the stop point, the car holds while the head reads red or yellow, until a green reading, after
  ``lost_s`` without a stop reading, or after ``hold_s`` at most; then the policy and the creep gates have it
  again.

Disabled, it still counts the steps it would have capped the speed (``stats``), as the emergency brake does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from drivestack.perception.classes import ClassMap
from drivestack.perception.tracking.ground import ground_points
from drivestack.planning.agents.gates import light_classes
from drivestack.sim.settings import CameraConfig

STANDING_SPEED = 0.1  # m/s: the car stands
SAME_HEAD_M = 1.5  # m: detections this close in distance to the nearest head are taken as that head
PASSING_TOLERANCE_M = 3.0  # m: a head this close to where the head being passed should be by now is taken as it
MOVING_SPEED = 1.0  # m/s: let go on green below this, the car starts on a fresh green and does not watch the head

@dataclass
class RedLightConfig:
    """When the learned agent stops by itself for a red light its network detects (``drivestack drive safety.red_light.*``)."""

    enabled: bool = True  # (bool) cap the target speed to stop before a detected red head; off: only count the steps it would
    score: float = 0.4  # (float) detection score of a light head (red, yellow or green) that counts
    right_of: float = 0.5  # (float) share of the image width left of which heads do not count (right-hand traffic)
    head_height: float = 3.2  # (float) metres above the road of a head's bottom edge (the embedded simulator's near heads)
    stop_offset: float = 7.0  # (float) metres short of the head's distance ahead to stand (the near head stays in view there)
    decel: float = 2.5  # (float) m/s^2 of the speed profile to the stop point
    max_decel: float = 3.5  # (float) m/s^2: a stop that needs harder braking is not planned (the car is too close to stop)
    hold_s: float = 45.0  # (float) seconds standing at the stop point at most (the embedded simulator's longest red is 42 s)
    lost_s: float = 10.0  # (float) seconds standing at the stop point without a red or yellow reading before the car goes
    near_green: float = 15.0  # (float) metres: the nearest head reading green this close (or at all, while a stop is planned) is the car's own, and the car goes
    confirm_steps: int = 3  # (int) frames in a row a head must read green to let the car go (or stop, for a head it is passing)
    pass_m: float = 15.0  # (float) metres past that head (the junction) in which no head is read
    line_margin: float = 2.0  # (float) metres short of a head it is passing at which a late stop stands (the head is at the line)

    def __post_init__(self) -> None:
        if not 0 <= self.right_of < 1:
            raise ValueError(f"safety.red_light.right_of must be in [0, 1), got {self.right_of}")
        for name in ("score", "decel", "max_decel", "hold_s", "lost_s", "near_green", "confirm_steps", "pass_m"):
            if getattr(self, name) <= 0:
                raise ValueError(f"safety.red_light.{name} must be > 0, got {getattr(self, name)}")


class RedLightStop:
    """Per-route state of the layer: the planned stop point, the hold, the head being passed on green, the
    route's counts (:meth:`stats`)."""

    def __init__(self, config: RedLightConfig, camera: CameraConfig, classes: ClassMap, dt: float):
        self.config, self.camera, self.dt = config, camera, dt
        self.stop_classes, self.go_classes = light_classes(classes)
        self.hold_steps = max(1, round(config.hold_s / dt))
        self.lost_steps = max(1, round(config.lost_s / dt))
        self.stop_at: float | None = None  # metres to the planned stop point; None: no stop planned
        self.held = 0  # steps stood at the stop point
        self.unread = 0  # steps stood there since the last red or yellow reading
        self.greens = 0  # frames in a row the nearest head read green (frames without a head count neither way)
        self.quiet_left = 0.0  # metres still to drive before heads are read again (past a junction the car goes through)
        self.passing = 0.0  # metres to the head the car is passing on green and still watches; 0: none
        self.turned = 0  # frames in a row that head read red or yellow
        self.offset = config.stop_offset  # metres short of the head the planned stop stands (line_margin for a late stop)
        self.capped_steps = 0  # steps the cap was below the policy's target speed (enabled or not)

    def nearest_head(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> tuple[float, bool] | None:
        """The nearest head of this frame in the right part of the image: its distance ahead of the camera
        (metres) and whether it reads stop (red or yellow at least as confident as green); None when none.
        Of the heads at about that distance the rightmost is taken: at a corner the car's own head stands
        right of a crossing road's head seen at an angle, which reads the opposite state."""
        c = self.config
        centres = (boxes[:, 0] + boxes[:, 2]) / 2
        lights = (centres >= c.right_of * self.camera.width) & (scores >= c.score) & np.isin(labels, self.stop_classes + self.go_classes)
        ahead = ground_points(np.stack([centres[lights], boxes[lights, 3]], axis=1), self.camera, c.head_height)[:, 0] - self.camera.x
        seen = np.isfinite(ahead)
        if not seen.any():
            return None
        ahead, boxes, centres, scores, labels = ahead[seen], boxes[lights][seen], centres[lights][seen], scores[lights][seen], labels[lights][seen]
        nearest = ahead.min()
        same = ahead <= nearest + SAME_HEAD_M
        x1, _, x2, _ = boxes[same][centres[same].argmax()]
        own = same & (centres >= x1) & (centres <= x2)  # that head's boxes: one per class it is decoded as
        stop = scores[own & np.isin(labels, self.stop_classes)].max(initial=0.0)
        go = scores[own & np.isin(labels, self.go_classes)].max(initial=0.0)
        return float(nearest), bool(stop >= go)

    def update(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, speed: float, target: float) -> float:
        """Advance one step on this frame's detections (:func:`gate_detections` at ``score``: boxes x1 y1 x2 y2
        in pixels, scores, class indices); the target speed, capped when a stop is planned and the layer is on."""
        travelled = speed * self.dt
        if self.stop_at is not None:
            self.stop_at -= travelled
        if self.quiet_left > 0:
            self.quiet_left -= travelled
            self.passing -= travelled
            if self.passing > self.config.line_margin:
                self.watch_passing(boxes, scores, labels, speed)
        else:
            self.read(boxes, scores, labels, speed)
        return self.cap(speed, target)

    def read(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, speed: float) -> None:
        """Plan or bring nearer a stop on a red or yellow nearest head; let the car go on a confirmed green one."""
        c = self.config
        head = self.nearest_head(boxes, scores, labels)
        if head is None:
            return
        ahead, stop = head
        if stop:
            self.greens, self.unread = 0, 0
            seen = ahead - self.offset
            if self.stop_at is not None:  # the near head leaves the view first: a head seen farther never moves the stop away
                self.stop_at = min(self.stop_at, seen)
            elif speed**2 <= 2 * c.max_decel * max(seen, 1e-3):
                self.stop_at = seen
        elif self.stop_at is not None or ahead <= c.near_green:  # the car's own head reads green: pass, ignoring the crossing roads' heads
            self.greens += 1
            if self.greens >= c.confirm_steps:
                self.release(ahead, speed)

    def watch_passing(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, speed: float) -> None:
        """Plan a stop ``line_margin`` short of the head being passed when it turns red or yellow and the car can
        still make it (the dilemma zone otherwise: the car goes on)."""
        c = self.config
        head = self.nearest_head(boxes, scores, labels)
        if head is None or abs(head[0] - self.passing) > PASSING_TOLERANCE_M:
            return
        ahead, stop = head
        self.turned = self.turned + 1 if stop else 0
        late_stop = ahead - c.line_margin
        if self.turned >= c.confirm_steps and speed**2 <= 2 * c.max_decel * max(late_stop, 1e-3):
            self.quiet_left = self.passing = 0.0
            self.stop_at, self.turned, self.unread, self.offset = late_stop, 0, 0, c.line_margin

    def cap(self, speed: float, target: float) -> float:
        """The target speed under the planned stop (if any); standing at it, count the hold and let go when it ends."""
        c = self.config
        if self.stop_at is None:
            return target
        if speed < STANDING_SPEED and self.stop_at <= 1.0:
            self.held += 1
            self.unread += 1
            if self.held > self.hold_steps or self.unread > self.lost_steps:
                self.release(c.stop_offset, speed)
                return target
        cap = math.sqrt(2 * c.decel * max(self.stop_at, 0.0))
        if cap >= target:
            return target
        self.capped_steps += 1
        return cap if c.enabled else target

    def release(self, ahead: float, speed: float) -> None:
        """Drop the planned stop and read no heads until the car is ``pass_m`` past the one ``ahead`` metres on;
        moving, watch that head until the car reaches it."""
        self.stop_at, self.held, self.unread, self.greens, self.turned = None, 0, 0, 0, 0
        self.offset = self.config.stop_offset
        self.quiet_left = ahead + self.config.pass_m
        self.passing = ahead if speed >= MOVING_SPEED else 0.0

    def stats(self) -> dict[str, int]:
        return {"red_light_stop_steps": self.capped_steps}
