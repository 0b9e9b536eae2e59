"""Drawing: segmentation overlays, boxes with class names, policy targets (command, waypoints), grids."""

from __future__ import annotations

import cv2
import numpy as np
from drivestack.perception.classes import ClassMap
from drivestack.sim.conventions import RoadOption


def overlay_mask(image: np.ndarray, mask: np.ndarray, class_map: ClassMap, alpha: float = 0.45) -> np.ndarray:
    """Blend the class colours of ``mask`` (HxW ids) over ``image`` (HxWx3 uint8 RGB)."""
    colours = class_map.colorize(mask)
    return cv2.addWeighted(image, 1 - alpha, colours, alpha, 0)


def draw_boxes(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, class_map: ClassMap,
               scores: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Draw (N,4) x1,y1,x2,y2 boxes in their class colour with the class name (and score)."""
    out = image.copy()
    palette, names = class_map.det_palette(), class_map.det_names
    for i, (box, label) in enumerate(zip(boxes, labels)):
        colour = tuple(int(c) for c in palette[int(label)])
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), colour, 1)
        text = names[int(label)] + (f" {scores[i]:.2f}" if scores is not None else "")
        cv2.putText(out, text, (x1, max(7, y1 - 2)), cv2.FONT_HERSHEY_PLAIN, 0.6, colour, 1, cv2.LINE_AA)
    return out


def draw_policy(image: np.ndarray, policy: dict, fov: float = 90.0, camera_height: float = 1.6,
                camera_x: float = 1.3) -> np.ndarray:  # fmt: skip
    """Project the route waypoints (ego frame, flat ground) into the image and write command, speed, steer."""
    out = image.copy()
    h, w = out.shape[:2]
    f = w / (2 * np.tan(np.radians(fov) / 2))
    points = np.asarray(policy["waypoints"])[np.asarray(policy["waypoints_valid"], bool)]
    for x, y in points:
        depth = x - camera_x
        if depth > 1.0:
            u, v = w / 2 + f * y / depth, h / 2 + f * camera_height / depth
            cv2.circle(out, (int(u), int(v)), 2, (255, 255, 0), -1)
    command = RoadOption(int(policy["command"])).name
    control = np.asarray(policy["control"])
    text = f"{command} v={float(policy['speed']):.1f} steer={control[1]:+.2f}"
    cv2.putText(out, text, (3, h - 4), cv2.FONT_HERSHEY_PLAIN, 0.8, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def grid(images: list[np.ndarray], columns: int) -> np.ndarray:
    """Tile equally sized HxWx3 images into rows of ``columns`` (blank tiles pad the last row)."""
    h, w = images[0].shape[:2]
    rows = -(-len(images) // columns)
    canvas = np.zeros((rows * h, columns * w, 3), np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = image
    return canvas
