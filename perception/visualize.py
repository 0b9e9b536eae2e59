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
               scores: np.ndarray | None = None, size: float = 0.7) -> np.ndarray:  # fmt: skip
    """Draw (N,4) x1,y1,x2,y2 boxes in their class colour, each named (class and score) on a tag of that colour
    above, below or inside its top; the best boxes first, and a box whose tag would cover another's keeps no tag."""
    out = image.copy()
    palette, names = class_map.det_palette(), class_map.det_names
    order = np.argsort(-scores, kind="stable") if scores is not None else np.arange(len(boxes))
    placed: list[tuple[int, int, int, int]] = []
    for i in order:
        colour = tuple(int(c) for c in palette[int(labels[i])])
        x1, y1, x2, y2 = (int(round(v)) for v in boxes[i])
        cv2.rectangle(out, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), colour, 1)
        text = names[int(labels[i])] + (f" {scores[i]:.2f}" if scores is not None else "")
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_PLAIN, size, 1)
        tx, tw, th = min(max(x1, 0), out.shape[1] - tw - 3), tw + 3, th + 4
        tag = next(((tx, ty, tx + tw, ty + th) for ty in (y1 - th, y2, y1) if 0 <= ty and ty + th <= out.shape[0]
                    and not any(a < tx + tw and tx < c and b < ty + th and ty < d for a, b, c, d in placed)), None)  # fmt: skip
        if tag is None:
            continue
        placed.append(tag)
        cv2.rectangle(out, tag[:2], (tag[2] - 1, tag[3] - 1), colour, -1)
        ink = (0, 0, 0) if 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2] > 110 else (255, 255, 255)
        cv2.putText(out, text, (tag[0] + 1, tag[3] - 3), cv2.FONT_HERSHEY_PLAIN, size, ink, 1, cv2.LINE_AA)
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


TRACK_COLOR = (255, 255, 255)  # track ids and velocity arrows: white, apart from every class colour


def draw_tracks(image: np.ndarray, tracks: list, camera, horizon_s: float = 1.0, color: tuple[int, int, int] = TRACK_COLOR,
                size: float = 0.7) -> np.ndarray:  # fmt: skip
    """Each track (:class:`~drivestack.perception.tracking.tracker.Track`) as its id and speed (and TTC when
    finite) over its box, and an arrow on the ground from where it stands to where it will be in ``horizon_s``
    seconds at its velocity, projected through ``camera`` (a ``CameraConfig``)."""
    from drivestack.perception.tracking.ground import ground_to_pixels

    out = image.copy()
    for track in tracks:
        x1, y1 = int(round(track.box[0])), int(round(track.box[1]))
        text = f"#{track.id} {float(np.hypot(*track.velocity)):.1f}m/s" + (f" {track.ttc:.1f}s" if np.isfinite(track.ttc) else "")
        cv2.putText(out, text, (max(x1, 0), max(y1 - 2, 8)), cv2.FONT_HERSHEY_PLAIN, size, color, 1, cv2.LINE_AA)
        ends = np.stack([track.position, track.position + horizon_s * np.asarray(track.velocity)])
        uv, depth = ground_to_pixels(ends, camera)
        if (depth > 0.5).all():
            (u0, v0), (u1, v1) = uv.round().astype(int)
            cv2.arrowedLine(out, (u0, v0), (u1, v1), color, 1, cv2.LINE_AA, tipLength=0.3)
    return out
