"""Policy labels from the recorded route and the expert's target speed."""

from __future__ import annotations

import numpy as np


def path_points(route: np.ndarray, valid: np.ndarray, num_points: int, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Points at arc lengths spacing, 2*spacing, ... along the valid route points (ego frame).

    Returns (K, 2) points and a (K,) mask of the points the recorded route is long enough for.
    """
    pts = np.asarray(route, np.float64)[np.asarray(valid, bool)]
    out = np.zeros((num_points, 2), np.float32)
    ok = np.zeros(num_points, bool)
    if len(pts) < 2:
        return out, ok
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    s = spacing * np.arange(1, num_points + 1)
    ok = s <= arc[-1] + 1e-6
    out[:, 0] = np.interp(s, arc, pts[:, 0])
    out[:, 1] = np.interp(s, arc, pts[:, 1])
    return out, ok
