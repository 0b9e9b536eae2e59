"""An emergency brake on time to collision: the safety check research agents put under a learned policy.

Each step the learned agent tracks the vehicles and pedestrians its network detects and gives each a time to
collision along the path it plans (:mod:`drivestack.perception.tracking.ttc`). When the smallest of them is
below ``ttc_s`` while the car moves at ``min_speed`` or more, the layer brakes fully, whatever the policy
asks, until the car stands (as an automatic emergency brake does: releasing as soon as the time to collision
recovers would let the policy speed up again and close in by bang-bang steps). It never holds a standing car:
the policy and the creep gates decide when to go. On by default (it helped on the generated validation
suite; docs/tracking.md). Disabled, it still counts the steps it would have braked (``stats``), so that one
drive tells which routes it would change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

from drivestack.perception.tracking.tracker import Track
from drivestack.planning.agents.red_light import STANDING_SPEED, RedLightConfig


@dataclass
class SafetyConfig:
    """When the learned agent brakes by itself for a tracked object closing in, or stops for a detected red
    light (``drivestack drive safety.*``)."""

    enabled: bool = True  # (bool) brake fully when a tracked object's time to collision falls below ttc_s (+4.2 driving score on generated val, docs/tracking.md); off: only count the steps it would
    ttc_s: float = 1.0  # (float) seconds to collision along the planned path below which the layer brakes
    min_speed: float = 1.0  # (float) m/s the car must be driving at for the layer to start braking
    red_light: RedLightConfig = field(default_factory=RedLightConfig)  # stop for red heads the network detects (planning/agents/red_light.py)

    def __post_init__(self) -> None:
        if self.ttc_s <= 0 or self.min_speed < 0:
            raise ValueError(f"safety.ttc_s must be > 0 and safety.min_speed >= 0, got {self.ttc_s}, {self.min_speed}")


class EmergencyBrake:
    """Decides each step whether to brake; keeps the route's counts (:meth:`stats`)."""

    def __init__(self, config: SafetyConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.min_ttc = math.inf  # the smallest time to collision seen while driving at min_speed or more
        self.alarm_steps = 0  # steps driving at min_speed or more with a time to collision below ttc_s (enabled or not)
        self.brake_steps = 0  # steps braked by the layer
        self.braking = False

    def update(self, tracks: Iterable[Track], speed: float) -> bool:
        """True when the car must brake now."""
        if speed < STANDING_SPEED:
            self.braking = False
        elif speed >= self.config.min_speed:
            ttc = min((t.ttc for t in tracks), default=math.inf)
            self.min_ttc = min(self.min_ttc, ttc)
            alarm = ttc < self.config.ttc_s
            self.alarm_steps += alarm
            self.braking = self.config.enabled and (self.braking or alarm)
        self.brake_steps += self.braking
        return self.braking

    def stats(self) -> dict[str, float | int | None]:
        return {"min_ttc_s": None if math.isinf(self.min_ttc) else round(self.min_ttc, 3),
                "ttc_alarm_steps": self.alarm_steps, "emergency_brake_steps": self.brake_steps}  # fmt: skip
