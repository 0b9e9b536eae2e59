"""Pixels to points on the ground and back, through the camera model of :mod:`drivestack.sim.camera`.

Flat-ground assumption: the road is the plane z = 0 of the vehicle frame (x forward, y right, z up, origin at
the vehicle centre) and the camera sits on its mount (``CameraConfig``) with the car level on it. A box's
ground-contact point is the bottom centre of the box: where the object stands, seen from the camera, is the
point of its near face on the road. On a slope, or for a car pitching under braking, the ray meets the plane at
the wrong range; the error grows with the square of the range (about d^2 / (f z) metres per pixel).
"""

from __future__ import annotations

import numpy as np
from drivestack.sim.camera import UE_TO_CV, Pose, intrinsics, project
from drivestack.sim.settings import CameraConfig


def mount_matrix(camera: CameraConfig) -> np.ndarray:
    """4x4 camera-to-vehicle matrix of the camera's mount."""
    return Pose(camera.x, camera.y, camera.z, camera.roll, camera.pitch, camera.yaw).matrix()


def ground_points(pixels: np.ndarray, camera: CameraConfig, height: float = 0.0) -> np.ndarray:
    """(N,2) pixel coordinates -> (N,2) points (x forward, y right) in the vehicle frame where their rays meet
    the level plane ``z = height``: flat ground by default (NaN for pixels at or above the horizon), or a plane
    above the camera such as the bottom edge of a traffic-light head (NaN at or below the horizon)."""
    pixels = np.asarray(pixels, np.float64).reshape(-1, 2)
    homogeneous = np.concatenate([pixels, np.ones((len(pixels), 1))], axis=1)
    rays_cv = homogeneous @ np.linalg.inv(intrinsics(camera.width, camera.height, camera.fov)).T
    rays = rays_cv @ UE_TO_CV @ mount_matrix(camera)[:3, :3].T  # camera (UE axes) -> vehicle frame
    rise = height - camera.z
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(rays[:, 2] * np.sign(rise) > 1e-9, rise / rays[:, 2], np.nan)
    return np.stack([camera.x + t * rays[:, 0], camera.y + t * rays[:, 1]], axis=1)


def ground_to_pixels(points: np.ndarray, camera: CameraConfig) -> tuple[np.ndarray, np.ndarray]:
    """(N,2) vehicle-frame ground points -> (N,2) pixels and (N,) depths (<= 0: behind the camera)."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    world = np.concatenate([points, np.zeros((len(points), 1))], axis=1)
    return project(world, mount_matrix(camera), intrinsics(camera.width, camera.height, camera.fov))


def contact_pixels(boxes: np.ndarray) -> np.ndarray:
    """(N,4) boxes x1 y1 x2 y2 -> (N,2) bottom centres, the pixels where the objects meet the ground."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]], axis=1)


def ground_measurements(boxes: np.ndarray, camera: CameraConfig, pixel_std: float) -> tuple[np.ndarray, np.ndarray]:
    """(N,4) boxes -> their contact points on the ground (N,2) and the covariance of each (N,2,2) for a
    ``pixel_std`` pixel error of the bottom centre, propagated through the projection (finite differences)."""
    pixels = contact_pixels(boxes)
    shifted = np.concatenate([pixels, pixels + [1.0, 0.0], pixels + [0.0, 1.0]])
    points = ground_points(shifted, camera).reshape(3, -1, 2)
    jacobian = np.stack([points[1] - points[0], points[2] - points[0]], axis=-1)  # (N,2,2): d(x,y)/d(u,v)
    return points[0], pixel_std**2 * jacobian @ jacobian.transpose(0, 2, 1)
