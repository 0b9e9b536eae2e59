"""Pictures of what the simulator produces: camera RGB with boxes, route, planned path, HUD and infraction
flags, next to the colourised semantic map and depth, with a colour legend; top-down map annotations; and an
MP4 writer for drives."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
from drivestack.sim.camera import project
from drivestack.sim.conventions import ActorKind, TrafficLightState, colorize
from drivestack.sim.interface import CameraFrame, Observation

Color = tuple[int, int, int]
BOX_COLORS: dict[ActorKind, Color] = {ActorKind.VEHICLE: (40, 120, 255), ActorKind.PEDESTRIAN: (255, 140, 0)}
LIGHT_COLORS: dict[TrafficLightState, Color] = {TrafficLightState.RED: (255, 0, 0), TrafficLightState.YELLOW: (255, 240, 0),
                                                TrafficLightState.GREEN: (0, 230, 0)}  # fmt: skip
STATELESS_LIGHT: Color = (190, 190, 190)  # a light whose lamps the camera does not see (or off)
ROUTE_COLOR: Color = (0, 255, 255)
PLAN_COLOR: Color = (255, 0, 255)
FLAG_COLOR: Color = (220, 0, 0)
NOTE_COLOR: Color = (0, 160, 0)
START_COLOR: Color = (0, 200, 0)
END_COLOR: Color = (30, 90, 255)
MARK_COLORS: list[Color] = [(255, 0, 0), (255, 140, 0), (255, 255, 0), (255, 255, 255), (150, 0, 255), (0, 0, 0)]
FONT = cv2.FONT_HERSHEY_SIMPLEX
BOX_LEGEND = [("vehicle", BOX_COLORS[ActorKind.VEHICLE], "box"), ("pedestrian", BOX_COLORS[ActorKind.PEDESTRIAN], "box")] + [
    (f"{s.name.lower()} light", c, "box") for s, c in LIGHT_COLORS.items()] + [("light, state not seen", STATELESS_LIGHT, "box")]  # fmt: skip


def box_color(kind: int, light_state: int | None = None) -> Color:
    """The video's colour of a box of actor ``kind`` (traffic lights: by state); detections use it too."""
    if kind == ActorKind.TRAFFIC_LIGHT:
        return LIGHT_COLORS.get(light_state, STATELESS_LIGHT)
    return BOX_COLORS[ActorKind(kind)]


def ego_to_world(points: np.ndarray, obs: Observation) -> np.ndarray:
    """(N, 2) ego-frame points on the ground -> (N, 3) world points."""
    yaw = math.radians(obs.ego.pose.yaw)
    c, s = math.cos(yaw), math.sin(yaw)
    x = obs.ego.pose.x + points[:, 0] * c - points[:, 1] * s
    y = obs.ego.pose.y + points[:, 0] * s + points[:, 1] * c
    return np.stack([x, y, np.zeros(len(points))], axis=1)


def draw_path(image: np.ndarray, cam: CameraFrame, points_world: np.ndarray, color: Color, scale: int = 1, radius: int = 2) -> None:
    """Dots of ``radius`` pixels where ``points_world`` project in ``image``, the camera image upscaled ``scale`` times."""
    uv, depth = project(points_world, cam.camera_to_world, cam.K)
    for u, v in uv[depth > 0.5] * scale:
        cv2.circle(image, (int(u), int(v)), radius, color, -1, cv2.LINE_AA)


def depth_image(depth: np.ndarray, max_m: float = 60.0) -> np.ndarray:
    d = np.clip(depth / max_m, 0.0, 1.0)
    return cv2.applyColorMap((255 * (1.0 - d) ** 2).astype(np.uint8), cv2.COLORMAP_MAGMA)[:, :, ::-1]


def hud_text(obs: Observation) -> str:
    """Speed and command, and the light ahead only where there is one."""
    text = f"{obs.ego.speed * 3.6:5.1f} km/h  {obs.command.name}"
    light = obs.traffic_light
    if light.actor_id:
        text += f"  light {light.state.name}" + (f" {light.distance:.0f} m" if math.isfinite(light.distance) else "")
    return text


def put_label(image: np.ndarray, text: str, x: int, y: int, color: Color, background: Color = (0, 0, 0), size: float = 0.5,
              thickness: int = 1) -> int:  # fmt: skip
    """``text`` on a filled ``background`` box whose top left corner is (x, y); returns the box's bottom y."""
    (tw, th), base = cv2.getTextSize(text, FONT, size, thickness)
    cv2.rectangle(image, (x, y), (x + tw + 8, y + th + base + 6), background, -1)
    cv2.putText(image, text, (x + 4, y + th + 3), FONT, size, color, thickness, cv2.LINE_AA)
    return y + th + base + 6


def legend(items: Sequence[tuple[str, Color, str]], width: int, size: float = 0.45) -> np.ndarray:
    """A black strip ``width`` pixels wide naming each colour: ``items`` are (name, colour, swatch), the swatch
    one of box, dot, line, x; wraps onto more rows as needed."""
    row_h, x, rows = 22, 6, [[]]
    for name, color, swatch in items:
        w = 26 + cv2.getTextSize(name, FONT, size, 1)[0][0] + 14
        if x + w > width and rows[-1]:
            rows.append([])
            x = 6
        rows[-1].append((x, name, color, swatch))
        x += w
    strip = np.zeros((row_h * len(rows), width, 3), np.uint8)
    for r, row in enumerate(rows):
        cy = r * row_h + row_h // 2
        for x, name, color, swatch in row:
            draw_swatch(strip, swatch, (x + 10, cy), color)
            cv2.putText(strip, name, (x + 24, cy + 5), FONT, size, (255, 255, 255), 1, cv2.LINE_AA)
    return strip


def draw_swatch(image: np.ndarray, swatch: str, center: tuple[int, int], color: Color, r: int = 7) -> None:
    """A legend's or a map's mark: box (outline), dot (filled disc), ring, line or x, centred at ``center``."""
    x, y = center
    if swatch == "box":
        cv2.rectangle(image, (x - r, y - r + 2), (x + r, y + r - 2), color, 2)
    elif swatch == "dot":
        cv2.circle(image, center, r - 2, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(image, center, r - 3, color, -1, cv2.LINE_AA)
    elif swatch == "ring":
        cv2.circle(image, center, r, (0, 0, 0), 5, cv2.LINE_AA)
        cv2.circle(image, center, r, color, 3, cv2.LINE_AA)
    elif swatch == "line":
        cv2.line(image, (x - r - 2, y), (x + r + 2, y), color, 3, cv2.LINE_AA)
    elif swatch == "x":
        for width, c in ((6, (0, 0, 0)), (3, color)):
            cv2.line(image, (x - r, y - r), (x + r, y + r), c, width, cv2.LINE_AA)
            cv2.line(image, (x - r, y + r), (x + r, y - r), c, width, cv2.LINE_AA)
    else:
        raise ValueError(f"unknown swatch {swatch!r}")


def caption(image: np.ndarray, text: str) -> np.ndarray:
    put_label(image, text, 0, 0, (255, 255, 255), size=0.4)
    return image


def render_frame(obs: Observation, camera: str | None = None, scale: int = 2, waypoints: np.ndarray | None = None,
                 notes: list[str] | None = None, predicted: np.ndarray | None = None, flags: list[str] | None = None) -> np.ndarray:  # fmt: skip
    """One RGB video frame: the camera (boxes, route dots, planned ``waypoints``, HUD, ``flags`` in red and
    ``notes`` in green under it), upscaled ``scale`` times | ``predicted`` (a picture of what a learned agent's
    network sees, camera size; shown as large as the camera) | semantic over depth; a colour legend below."""
    cam = obs.cameras[camera] if camera else next(iter(obs.cameras.values()))
    h, w = cam.rgb.shape[:2]
    size = (w * scale, h * scale)
    rgb = cv2.resize(cam.rgb, size, interpolation=cv2.INTER_NEAREST)
    for b in cam.boxes:
        cv2.rectangle(rgb, (b.x1 * scale, b.y1 * scale), (b.x2 * scale - 1, b.y2 * scale - 1), box_color(b.kind, b.light_state), 2)
    draw_path(rgb, cam, ego_to_world(obs.route[:30:2], obs), ROUTE_COLOR, scale, radius=scale)
    items = BOX_LEGEND + [("route", ROUTE_COLOR, "dot")]
    if waypoints is not None:
        draw_path(rgb, cam, ego_to_world(np.asarray(waypoints, np.float64), obs), PLAN_COLOR, scale, radius=scale + 1)
        items.append(("planned path", PLAN_COLOR, "dot"))
    y = put_label(rgb, hud_text(obs), 0, 0, (255, 255, 255))
    if flags:
        y = put_label(rgb, "  ".join(flags), 0, y + 2, (255, 255, 255), FLAG_COLOR, size=0.6, thickness=2)
    if notes:
        put_label(rgb, "  ".join(notes), 0, y + 2, (255, 255, 255), NOTE_COLOR, size=0.6, thickness=2)
    panels = [rgb]
    if predicted is not None:
        panels.append(caption(cv2.resize(predicted, size, interpolation=cv2.INTER_NEAREST), "network: segmentation, detections"))
    small = (size[0] // 2, size[1] // 2)
    panels.append(np.vstack([caption(cv2.resize(colorize(cam.semantic), small, interpolation=cv2.INTER_NEAREST), "semantic (truth)"),
                             caption(cv2.resize(depth_image(cam.depth), small, interpolation=cv2.INTER_NEAREST), "depth")]))  # fmt: skip
    top = np.hstack(panels)
    return np.vstack([top, legend(items, top.shape[1])])


def annotate_map(image: np.ndarray, to_px: Callable[[np.ndarray], np.ndarray], route: np.ndarray, trail: np.ndarray,
                 marks: Sequence[tuple[str, float, float]] = ()) -> np.ndarray:  # fmt: skip
    """Draw on a top-down ``image`` (``to_px``: (N, 2) world x, y -> pixels) the route, the ``trail`` driven,
    the start, the route's end, where the drive ended and ``marks`` ((label, x, y): one colour per label), with
    a legend in the top left corner."""
    cv2.polylines(image, [to_px(route)], False, ROUTE_COLOR, 3, cv2.LINE_AA)
    items = [("route", ROUTE_COLOR, "line")]
    if len(trail) > 1:
        cv2.polylines(image, [to_px(trail)], False, PLAN_COLOR, 2, cv2.LINE_AA)
        items.append(("driven", PLAN_COLOR, "line"))
    start, end = to_px(np.asarray(route)[[0, -1]])
    draw_swatch(image, "dot", tuple(start), START_COLOR, 10)
    draw_swatch(image, "dot", tuple(end), END_COLOR, 10)
    items += [("start", START_COLOR, "dot"), ("route end", END_COLOR, "dot")]
    if len(trail):
        draw_swatch(image, "ring", tuple(to_px(np.asarray(trail)[-1:])[0]), PLAN_COLOR, 13)
        items.append(("drive ended", PLAN_COLOR, "ring"))
    labels = list(dict.fromkeys(label for label, _, _ in marks))
    colors = {label: MARK_COLORS[i % len(MARK_COLORS)] for i, label in enumerate(labels)}
    for label, x, y in marks:
        draw_swatch(image, "x", tuple(to_px(np.array([[x, y]]))[0]), colors[label], 9)
    items += [(f"{label} x{sum(m[0] == label for m in marks)}", colors[label], "x") for label in labels]
    key = legend(items, min(260, image.shape[1]), size=0.5)
    image[: key.shape[0], : key.shape[1]] = key
    return image


class VideoWriter:
    """MP4 writer for RGB frames (OpenCV's mp4v codec); a context manager."""

    def __init__(self, path: str | Path, fps: float):
        self.path, self.fps = Path(path), fps
        self._writer: cv2.VideoWriter | None = None

    def write(self, rgb: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = rgb.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise OSError(f"cannot open video file for writing: {self.path}")
        self._writer.write(np.ascontiguousarray(rgb[:, :, ::-1]))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
