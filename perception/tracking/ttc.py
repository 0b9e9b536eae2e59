"""Time to collision of tracked objects along the ego's planned path.

Definition (docs/tracking.md): the path is the planned polyline in the ego frame (x forward, y right), starting
at the vehicle centre, its last segment extended as a ray. An object is *in the path* when its contact point
(the near face of the object on the ground) lies within ``corridor_half_width`` metres of the path. Its gap is
the arc length along the path to the nearest path point, less ``front`` (the ego's front bumper ahead of its
centre); its closing speed is the ego's speed minus the object's ground velocity along the path's direction
there. TTC = gap / closing speed for objects in the path that close in (closing speed > 0.1 m/s), 0 for an
object already at the bumper, inf otherwise.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from drivestack.perception.tracking.tracker import Track

MIN_CLOSING_SPEED = 0.1  # m/s: slower closing counts as not closing in
RAY_M = 1000.0  # the last segment of the path, extended this far


def time_to_collision(positions: np.ndarray, velocities: np.ndarray, path: np.ndarray, ego_speed: float,
                      corridor_half_width: float = 2.0, front: float = 2.4) -> np.ndarray:  # fmt: skip
    """(N,2) ground positions and (N,2) ground velocities in the ego frame, the (K,2) planned path (ego frame) and
    the ego's speed (m/s) -> (N,) seconds to collision (inf: not in the path or not closing in)."""
    positions = np.asarray(positions, np.float64).reshape(-1, 2)
    velocities = np.asarray(velocities, np.float64).reshape(-1, 2)
    points = np.concatenate([np.zeros((1, 2)), np.asarray(path, np.float64).reshape(-1, 2)])
    points = points[np.concatenate([[True], np.linalg.norm(np.diff(points, axis=0), axis=1) > 1e-6])]
    if len(points) < 2:
        points = np.array([[0.0, 0.0], [1.0, 0.0]])  # no path: straight ahead
    segments = np.diff(points, axis=0)
    lengths = np.linalg.norm(segments, axis=1)
    directions = segments / lengths[:, None]
    lengths[-1] = RAY_M
    start_s = np.concatenate([[0.0], np.cumsum(lengths[:-1])])
    along = np.clip(((positions[:, None, :] - points[None, :-1]) * directions[None]).sum(-1), 0.0, lengths[None])  # (N,S)
    nearest = points[None, :-1] + along[..., None] * directions[None]
    offset = np.linalg.norm(positions[:, None, :] - nearest, axis=-1)
    best = offset.argmin(axis=1)
    rows = np.arange(len(positions))
    gap = start_s[best] + along[rows, best] - front
    closing = ego_speed - (velocities * directions[best]).sum(-1)
    ttc = np.full(len(positions), math.inf)
    in_path = (offset[rows, best] <= corridor_half_width) & (closing > MIN_CLOSING_SPEED)
    ttc[in_path] = np.maximum(gap[in_path], 0.0) / closing[in_path]
    return ttc


def tracks_time_to_collision(tracks: Sequence[Track], path: np.ndarray, ego_speed: float) -> np.ndarray:
    """:func:`time_to_collision` of tracks, from their estimated ground positions and velocities."""
    return time_to_collision(np.array([t.position for t in tracks]), np.array([t.velocity for t in tracks]), path, ego_speed)
