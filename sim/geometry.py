"""Small planar geometry helpers: polylines, Bezier curves, frames and oriented-box overlap."""

from __future__ import annotations

import bisect
import math
from functools import cached_property

import numpy as np


class Polyline:
    """A 2D polyline with arc-length lookup: position and heading at a distance ``s`` along it."""

    def __init__(self, points: np.ndarray):
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2 or len(points) < 2:
            raise ValueError(f"a polyline needs (N>=2, 2) points, got shape {points.shape}")
        self.points = points
        seg = np.diff(points, axis=0)
        self.seg_len = np.hypot(seg[:, 0], seg[:, 1])
        self.cum = np.concatenate([[0.0], np.cumsum(self.seg_len)])
        self.headings = np.arctan2(seg[:, 1], seg[:, 0])
        self.length = float(self.cum[-1])

    @cached_property
    def _lists(self) -> tuple[list[float], list[float], list[float], list[float], list[float]]:
        """x, y, cum, seg_len and headings as Python lists (the same values): ``at`` runs per actor and step,
        where scalar numpy indexing would be most of its cost."""
        return self.points[:, 0].tolist(), self.points[:, 1].tolist(), self.cum.tolist(), self.seg_len.tolist(), self.headings.tolist()

    def at(self, s: float) -> tuple[float, float, float]:
        """(x, y, heading in radians) at arc length ``s`` (clamped to the ends)."""
        x, y, cum, seg_len, headings = self._lists
        s = min(max(s, 0.0), self.length)
        i = min(max(bisect.bisect_right(cum, s) - 1, 0), len(seg_len) - 1)
        t = (s - cum[i]) / seg_len[i] if seg_len[i] > 0 else 0.0
        return float(x[i] + t * (x[i + 1] - x[i])), float(y[i] + t * (y[i + 1] - y[i])), headings[i]

    def sample(self, s0: float, s1: float, step: float) -> np.ndarray:
        """Points every ``step`` metres from ``s0`` to ``s1`` (both clamped), as (N, 2)."""
        s = np.arange(s0, s1, step) if s1 > s0 else np.array([s0])
        s = np.clip(s, 0.0, self.length)
        x = np.interp(s, self.cum, self.points[:, 0])
        y = np.interp(s, self.cum, self.points[:, 1])
        return np.stack([x, y], axis=1)

    def project(self, p: np.ndarray) -> tuple[float, float]:
        """Arc length of the closest point to ``p`` and the signed lateral offset (> 0: right of travel)."""
        a, b = self.points[:-1], self.points[1:]
        ab = b - a
        denom = np.maximum((ab**2).sum(1), 1e-12)
        t = np.clip(((p - a) * ab).sum(1) / denom, 0.0, 1.0)
        closest = a + t[:, None] * ab
        d2 = ((closest - p) ** 2).sum(1)
        i = int(np.argmin(d2))
        cross = ab[i, 0] * (p[1] - a[i, 1]) - ab[i, 1] * (p[0] - a[i, 0])
        return float(self.cum[i] + t[i] * self.seg_len[i]), math.copysign(math.sqrt(d2[i]), cross)


def quadratic_bezier(p0: np.ndarray, c: np.ndarray, p1: np.ndarray, n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * c + t**2 * p1


def cubic_bezier(p0: np.ndarray, c0: np.ndarray, c1: np.ndarray, p1: np.ndarray, n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * c0 + 3 * (1 - t) * t**2 * c1 + t**3 * p1


def right_normals(points: np.ndarray) -> np.ndarray:
    """Unit vectors to the right of travel (CARLA frame: heading h -> right = (-sin h, cos h))."""
    d = np.gradient(points, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    return np.stack([-d[:, 1], d[:, 0]], axis=1)


def resample(points: np.ndarray, step: float) -> np.ndarray:
    """Resample a polyline to points ``step`` metres apart (keeps the last point)."""
    line = Polyline(points)
    out = line.sample(0.0, line.length, step)
    if np.hypot(*(out[-1] - points[-1])) > 1e-6:
        out = np.vstack([out, points[-1]])
    return out


def to_local(points: np.ndarray, x: float, y: float, yaw_rad: float) -> np.ndarray:
    """World (N,2) points into the frame at (x, y, yaw): x forward, y right."""
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    d = np.asarray(points, dtype=np.float64) - (x, y)
    return np.stack([d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c], axis=1)


def wrap_angle(a: float | np.ndarray) -> float | np.ndarray:
    """Wrap radians to (-pi, pi]."""
    return (a + np.pi) % (2 * np.pi) - np.pi


def box_corners(x: np.ndarray, y: np.ndarray, yaw: np.ndarray, hl: np.ndarray, hw: np.ndarray) -> np.ndarray:
    """(N, 4, 2) corners of oriented rectangles (yaw in radians, half length and half width)."""
    c, s = np.cos(yaw), np.sin(yaw)
    fx, fy = c * hl, s * hl
    rx, ry = -s * hw, c * hw
    cx = np.stack([x + fx + rx, x + fx - rx, x - fx - rx, x - fx + rx], axis=1)
    cy = np.stack([y + fy + ry, y + fy - ry, y - fy - ry, y - fy + ry], axis=1)
    return np.stack([cx, cy], axis=2)


def obb_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Separating-axis test between one rectangle ``a`` (4,2) and many ``b`` (N,4,2); returns (N,) bool."""
    if len(b) == 0:
        return np.zeros(0, dtype=bool)
    overlap = np.ones(len(b), dtype=bool)
    axes = [a[1] - a[0], a[3] - a[0]]
    axes_b = [b[:, 1] - b[:, 0], b[:, 3] - b[:, 0]]
    for axis in axes:
        pa = a @ axis
        pb = b @ axis
        overlap &= (pb.max(1) >= pa.min()) & (pb.min(1) <= pa.max())
    for axis in axes_b:
        pa = np.einsum("kc,nc->nk", a, axis)
        pb = np.einsum("nkc,nc->nk", b, axis)
        overlap &= (pb.max(1) >= pa.min(1)) & (pb.min(1) <= pa.max(1))
    return overlap
