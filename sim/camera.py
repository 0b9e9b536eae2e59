"""CARLA's pinhole camera: poses, intrinsics from the horizontal FOV, and world-to-image projection.

World frame is Unreal's (left-handed): x forward, y right, z up, metres; angles in degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Pose:
    """A rigid transform in CARLA's convention (like ``carla.Transform``), angles in degrees."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0

    def matrix(self) -> np.ndarray:
        """4x4 local-to-world matrix, the same as ``carla.Transform.get_matrix()``."""
        cy, sy = math.cos(math.radians(self.yaw)), math.sin(math.radians(self.yaw))
        cr, sr = math.cos(math.radians(self.roll)), math.sin(math.radians(self.roll))
        cp, sp = math.cos(math.radians(self.pitch)), math.sin(math.radians(self.pitch))
        return np.array(
            [
                [cp * cy, cy * sp * sr - sy * cr, -cy * sp * cr - sy * sr, self.x],
                [cp * sy, sy * sp * sr + cy * cr, -sy * sp * cr + cy * sr, self.y],
                [sp, -cp * sr, cp * cr, self.z],
                [0.0, 0.0, 0.0, 1.0],
            ]
        )


def intrinsics(width: int, height: int, fov_deg: float) -> np.ndarray:
    """Camera matrix K exactly as CARLA builds it: f = W / (2 tan(fov/2)), principal point at the centre."""
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov must be in (0, 180) degrees, got {fov_deg}")
    f = width / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


# Unreal camera axes (x forward, y right, z up) -> standard camera axes (x right, y down, z forward).
UE_TO_CV = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


def world_to_camera(points: np.ndarray, camera_to_world: np.ndarray) -> np.ndarray:
    """(N,3) world points -> (N,3) standard camera coordinates (x right, y down, z forward = depth)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    world_to_cam = np.linalg.inv(camera_to_world)
    local = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    return local @ UE_TO_CV.T


def project(points: np.ndarray, camera_to_world: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project (N,3) world points; returns (N,2) pixel coordinates and (N,) depth along the optical axis.

    Points behind the camera get depth <= 0 and meaningless pixels; callers filter on depth.
    """
    cam = world_to_camera(points, camera_to_world)
    depth = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (cam @ K.T)[:, :2] / depth[:, None]
    return uv, depth
