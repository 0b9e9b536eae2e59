"""The sparse route plan an agent is given, and the target point it steers for (as on the CARLA leaderboard).

The leaderboard hands agents the route as sparse points (``downsample_route(route, 50)``: every point where
the RoadOption changes, and one every 50 m between them); TransFuser and TCP then take the first plan point
beyond a few metres ahead, in the ego frame, as the "target point". Both backends compute it the same way
from their dense route (points 1 m apart with a RoadOption each) and the route progress.
"""

from __future__ import annotations

import math

import numpy as np
from drivestack.sim.conventions import RoadOption
from drivestack.sim.geometry import to_local

PLAN_SPACING_M = 50.0  # the leaderboard's sample_factor: at most this far between two plan points
ANNOUNCE_M = 15.0  # a junction's command is given this far before the junction
TARGET_MIN_AHEAD_M = 7.5  # a plan point closer than this along the route is passed (TransFuser's min_distance)


def plan_indices(commands: np.ndarray, s: np.ndarray, spacing: float = PLAN_SPACING_M) -> np.ndarray:
    """Indices of the sparse plan in a dense route: the first and last points, every point whose command
    differs from the previous one, and points so that no two consecutive ones are more than ``spacing``
    metres apart along the route (``s``: arc length of each point)."""
    if len(commands) != len(s) or not len(s):
        raise ValueError(f"need one arc length per command, got {len(commands)} commands and {len(s)} arc lengths")
    keep = [0]
    for i in range(1, len(s)):
        if commands[i] != commands[i - 1] or s[i] - s[keep[-1]] > spacing or i == len(s) - 1:
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def target_point(points: np.ndarray, s: np.ndarray, plan: np.ndarray, progress: float, x: float, y: float, yaw_deg: float,
                 min_ahead: float = TARGET_MIN_AHEAD_M) -> np.ndarray:  # fmt: skip
    """The first plan point more than ``min_ahead`` metres along the route past ``progress`` (the last plan
    point when none is), as (x forward, y right) metres in the frame of the ego at (x, y, yaw_deg)."""
    ahead = plan[s[plan] > progress + min_ahead]
    index = ahead[0] if len(ahead) else plan[-1]
    return to_local(points[index : index + 1], x, y, math.radians(yaw_deg))[0].astype(np.float32)


def announce_junctions(cmds: np.ndarray, step: float = 1.0) -> None:
    """Give each junction's LEFT/RIGHT/STRAIGHT to the lane-follow points up to ANNOUNCE_M before it
    (``cmds`` are route points ``step`` metres apart); both backends label routes this way."""
    turns = (RoadOption.LEFT, RoadOption.RIGHT, RoadOption.STRAIGHT)
    for k in range(1, len(cmds)):
        if cmds[k] in turns and cmds[k - 1] not in turns:
            j = k - 1
            while j >= 0 and (k - j) * step <= ANNOUNCE_M and cmds[j] == RoadOption.LANEFOLLOW:
                cmds[j] = cmds[k]
                j -= 1
