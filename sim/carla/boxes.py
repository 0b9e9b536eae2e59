"""Ground-truth 2D boxes from 3D bounding boxes: project the corners, then keep what the depth image shows.

Corners come from ``carla.BoundingBox.get_world_vertices`` in CARLA's vertex order (index 4*ix + 2*iy + iz,
each bit selecting the - or + extent along the box's x, y, z). Visibility follows CARLA's bounding-box
tutorial, sampled more densely: points on the box faces that face the camera are projected and a point
counts as visible when the depth image shows nothing nearer than it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from drivestack.sim.camera import project, world_to_camera
from drivestack.sim.conventions import ActorKind, TrafficLightState
from drivestack.sim.interface import Box2D

NEAR_M = 0.05  # corners nearer than this to the camera plane are clipped
SAMPLES_PER_SIDE = 6  # visibility samples per face are SAMPLES_PER_SIDE**2
DEPTH_TOLERANCE_M = 0.3  # plus DEPTH_TOLERANCE_REL * depth: slack for the depth image's own surface
DEPTH_TOLERANCE_REL = 0.01
# The 12 edges of a box in CARLA's vertex order: pairs of corners that differ in one bit.
EDGES = [(i, i | bit) for bit in (1, 2, 4) for i in range(8) if not i & bit]


@dataclass
class BoxObject:
    """An object to box: its world-space corners (8, 3) in CARLA's vertex order and what it is."""

    actor_id: int
    kind: ActorKind
    tag: int
    corners: np.ndarray
    light_state: TrafficLightState | None = None


def corners_of(bounding_box, transform) -> np.ndarray:
    """(8, 3) world corners of a carla.BoundingBox placed by a carla.Transform (identity for world boxes)."""
    return np.array([[v.x, v.y, v.z] for v in bounding_box.get_world_vertices(transform)], dtype=np.float64)


def project_box(
    corners: np.ndarray, camera_to_world: np.ndarray, K: np.ndarray, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """Pixel box (x1, y1, x2, y2), exclusive of x2/y2, of the corners clipped to the image; None if unseen.

    Edges that cross the camera plane are cut at ``NEAR_M`` so that boxes partly behind the camera
    still get the right extent.
    """
    z = world_to_camera(corners, camera_to_world)[:, 2]
    if not (z > NEAR_M).any():
        return None
    points = [corners[z > NEAR_M]]
    for i, j in EDGES:
        if (z[i] > NEAR_M) != (z[j] > NEAR_M):
            t = (z[i] - NEAR_M) / (z[i] - z[j])
            points.append((corners[i] + t * (corners[j] - corners[i]))[None])
    uv, _ = project(np.concatenate(points), camera_to_world, K)
    x1, y1 = np.floor(uv.min(axis=0)).astype(int)
    x2, y2 = np.ceil(uv.max(axis=0)).astype(int)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if x2 <= x1 or y2 <= y1:
        return None
    return int(x1), int(y1), int(x2), int(y2)


def face_samples(corners: np.ndarray, camera_position: np.ndarray, n: int = SAMPLES_PER_SIDE) -> np.ndarray:
    """(M, 3) points spread over the box faces that face the camera (no self-occluded faces)."""
    grid = corners.reshape(2, 2, 2, 3)
    center = corners.mean(axis=0)
    u = (np.arange(n) + 0.5) / n
    a, b = [w.reshape(-1, 1) for w in np.meshgrid(u, u, indexing="ij")]
    samples = []
    for axis in range(3):
        for side in range(2):
            face = np.take(grid, side, axis=axis)  # (2, 2, 3) bilinear patch
            face_center = face.reshape(4, 3).mean(axis=0)
            if np.dot(face_center - center, face_center - camera_position) >= 0.0:
                continue  # faces away from the camera
            samples.append(
                (1 - a) * (1 - b) * face[0, 0]
                + a * (1 - b) * face[1, 0]
                + (1 - a) * b * face[0, 1]
                + a * b * face[1, 1]
            )
    return np.concatenate(samples) if samples else np.zeros((0, 3))


def visibility(corners: np.ndarray, camera_to_world: np.ndarray, K: np.ndarray, depth: np.ndarray) -> float:
    """Share of the in-image face samples that nothing in the depth image hides, 0..1."""
    points = face_samples(corners, camera_to_world[:3, 3])
    if not len(points):
        return 0.0
    uv, d = project(points, camera_to_world, K)
    height, width = depth.shape
    cols, rows = np.floor(uv[:, 0]), np.floor(uv[:, 1])
    inside = (d > NEAR_M) & (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    if not inside.any():
        return 0.0
    seen = depth[rows[inside].astype(int), cols[inside].astype(int)]
    d = d[inside]
    return float(np.mean(seen >= d - (DEPTH_TOLERANCE_M + DEPTH_TOLERANCE_REL * d)))


def visible_boxes(
    objects: list[BoxObject], camera_to_world: np.ndarray, K: np.ndarray, depth: np.ndarray, min_pixels: int
) -> list[Box2D]:
    """Box2D of every object that the depth image shows on at least ``min_pixels`` (estimated) pixels."""
    height, width = depth.shape
    boxes = []
    for obj in objects:
        box = project_box(obj.corners, camera_to_world, K, width, height)
        if box is None:
            continue
        vis = visibility(obj.corners, camera_to_world, K, depth)
        x1, y1, x2, y2 = box
        if vis <= 0.0 or vis * (x2 - x1) * (y2 - y1) < min_pixels:
            continue
        boxes.append(Box2D(obj.actor_id, obj.kind, obj.tag, x1, y1, x2, y2, vis, obj.light_state))
    return boxes
