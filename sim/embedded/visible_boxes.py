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


def box_corners3d(boxes: BoxInstances) -> np.ndarray:
    """(N, 8, 3) world corners of oriented 3D boxes."""
    local = _SIGNS[None] * boxes.half[:, None, :].astype(np.float64)
    yaw = np.radians(boxes.yaw.astype(np.float64))
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x = local[..., 0] * c - local[..., 1] * s
    y = local[..., 0] * s + local[..., 1] * c
    return np.stack([x, y, local[..., 2]], axis=-1) + boxes.center[:, None, :].astype(np.float64)


def visible_boxes(
    instance: np.ndarray,
    boxes: BoxInstances,
    camera_to_world: np.ndarray,
    K: np.ndarray,
    min_pixels: int,
    light_states: dict[int, TrafficLightState],
) -> list[Box2D]:
    """Tight boxes around each actor's visible pixels (actors: boxes with a non-zero instance id).

    The visibility fraction is the visible pixel count over the area of the actor's projected, unoccluded
    silhouette (convex hull of the corners of all its boxes, clipped to the image).
    """
    h, w = instance.shape
    flat = instance.ravel()
    counts = np.bincount(flat, minlength=1)
    ids = np.flatnonzero(counts[1:] >= min_pixels) + 1
    if not len(ids):
        return []
    rows = np.flatnonzero(np.isin(boxes.instance, ids))
    corners = box_corners3d(BoxInstances(*(getattr(boxes, f)[rows] for f in BoxInstances.__dataclass_fields__)))
    sources: dict[int, tuple[int, list]] = {}
    for r, c in zip(rows, corners):
        sources.setdefault(int(boxes.instance[r]), (int(boxes.tag[r]), []))[1].append(c)
    ids = [int(i) for i in ids if int(i) in sources]
    if not ids:
        return []
    mask = np.isin(flat, ids)
    where = np.flatnonzero(mask)
    owner = flat[where]
    order = np.argsort(owner, kind="stable")
    where, owner = where[order], owner[order]
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    ys, xs = where // w, where % w
    found = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(owner)
        actor = int(owner[start])
        tag, parts = sources[actor]
        count = end - start
        x, y = xs[start:end], ys[start:end]
        area = _silhouette_area(np.concatenate(parts), camera_to_world, K, w, h)
        visibility = float(min(count / area, 1.0)) if area > 0 else 1.0
        found.append(Box2D(actor_id=actor, kind=_kind(tag), tag=tag, x1=int(x.min()), y1=int(y.min()), x2=int(x.max()) + 1,
                           y2=int(y.max()) + 1, visibility=round(visibility, 3), light_state=light_states.get(actor)))
    return found


def _silhouette_area(corners: np.ndarray, camera_to_world: np.ndarray, K: np.ndarray, w: int, h: int) -> float:
    """Pixel area of the convex hull of the projected corners, clipped to the image."""
    uv, depth = project(corners, camera_to_world, K)
    uv = uv[depth > 0.05]
    if len(uv) < 3:
        return 0.0
    hull = cv2.convexHull(uv.astype(np.float32))
    image = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    area, _ = cv2.intersectConvexConvex(hull, image)
    return float(area)
