"""2D boxes of the objects a camera actually sees, read from its instance image (occlusion-aware)."""

from __future__ import annotations

import cv2
import numpy as np
from drivestack.sim.camera import project
from drivestack.sim.conventions import ActorKind, Tag, TrafficLightState
from drivestack.sim.embedded.render import BoxInstances
from drivestack.sim.interface import Box2D

_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)


def _kind(tag: int) -> ActorKind:
    if tag == Tag.PEDESTRIANS:
        return ActorKind.PEDESTRIAN
    return ActorKind.TRAFFIC_LIGHT if tag == Tag.TRAFFIC_LIGHT else ActorKind.VEHICLE


def box_corners3d(boxes: BoxInstances, rows: np.ndarray) -> np.ndarray:
    """(len(rows), 8, 3) world corners of the oriented 3D boxes ``rows`` (indices)."""
    local = _SIGNS[None] * boxes.half[rows, None, :].astype(np.float64)
    yaw = np.radians(boxes.yaw[rows].astype(np.float64))
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x = local[..., 0] * c - local[..., 1] * s
    y = local[..., 0] * s + local[..., 1] * c
    return np.stack([x, y, local[..., 2]], axis=-1) + boxes.center[rows, None, :].astype(np.float64)


def visible_boxes(
    instance: np.ndarray,
    boxes: BoxInstances,
    camera_to_world: np.ndarray,
    K: np.ndarray,
    min_pixels: int,
    light_states: dict[int, TrafficLightState],
) -> list[Box2D]:
    """Tight boxes around each actor's visible pixels (actors: boxes with a non-zero instance id), by actor id.

    The visibility fraction is the visible pixel count over the area of the actor's projected, unoccluded
    silhouette (convex hull of the corners of all its boxes, clipped to the image).
    """
    h, w = instance.shape
    flat = instance.ravel()
    pixels = np.flatnonzero(flat)  # actors cover a small part of the image: work on their pixels only
    seen = flat[pixels]
    counts = np.bincount(seen, minlength=1)
    wanted = counts >= min_pixels  # ids seen in enough pixels ...
    wanted[0] = False
    known = boxes.instance < len(counts)
    rows = np.flatnonzero(known & wanted[np.where(known, boxes.instance, 0)])
    if not len(rows):
        return []
    drawn = np.zeros(len(counts), bool)  # ... that are boxes of this frame
    drawn[boxes.instance[rows]] = True
    wanted &= drawn
    keep = wanted[seen]
    where, owner = pixels[keep], seen[keep]
    order = np.argsort(owner, kind="stable")
    where, owner = where[order], owner[order]
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    ys, xs = where // w, where % w
    x1, x2 = np.minimum.reduceat(xs, starts), np.maximum.reduceat(xs, starts)
    y1, y2 = np.minimum.reduceat(ys, starts), np.maximum.reduceat(ys, starts)
    actors = owner[starts]
    row_owner = boxes.instance[rows]
    corners = box_corners3d(boxes, rows)
    uv, depth = project(corners.reshape(-1, 3), camera_to_world, K)
    uv, depth = uv.reshape(len(rows), 8, 2), depth.reshape(len(rows), 8)
    image = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    found = []
    for k, actor in enumerate(actors.tolist()):
        mine = row_owner == actor
        tag = int(boxes.tag[rows[np.argmax(mine)]])
        area = _silhouette_area(uv[mine].reshape(-1, 2), depth[mine].reshape(-1), image)
        visibility = float(min(counts[actor] / area, 1.0)) if area > 0 else 1.0
        found.append(Box2D(actor_id=actor, kind=_kind(tag), tag=tag, x1=int(x1[k]), y1=int(y1[k]), x2=int(x2[k]) + 1,
                           y2=int(y2[k]) + 1, visibility=round(visibility, 3), light_state=light_states.get(actor)))
    return found


def _silhouette_area(uv: np.ndarray, depth: np.ndarray, image: np.ndarray) -> float:
    """Pixel area of the convex hull of the projected corners (pixels ``uv``, ``depth``), clipped to the
    ``image`` rectangle (its four corners)."""
    uv = uv[depth > 0.05]
    if len(uv) < 3:
        return 0.0
    hull = cv2.convexHull(uv.astype(np.float32))
    area, _ = cv2.intersectConvexConvex(hull, image)
    return float(area)
