"""Pictures of what the simulator produces: camera RGB with boxes, route and a HUD, next to the
colourised semantic map and depth; and an MP4 writer for drives."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from drivestack.sim.camera import project
from drivestack.sim.conventions import ActorKind, TrafficLightState, colorize
from drivestack.sim.interface import CameraFrame, Observation

BOX_COLORS = {ActorKind.VEHICLE: (0, 200, 255), ActorKind.PEDESTRIAN: (255, 60, 60), ActorKind.TRAFFIC_LIGHT: (255, 255, 0)}
LIGHT_COLORS = {TrafficLightState.RED: (255, 40, 40), TrafficLightState.YELLOW: (255, 200, 0), TrafficLightState.GREEN: (40, 220, 60)}


def ego_to_world(points: np.ndarray, obs: Observation) -> np.ndarray:
    """(N, 2) ego-frame points on the ground -> (N, 3) world points."""
    yaw = math.radians(obs.ego.pose.yaw)
    c, s = math.cos(yaw), math.sin(yaw)
    x = obs.ego.pose.x + points[:, 0] * c - points[:, 1] * s
    y = obs.ego.pose.y + points[:, 0] * s + points[:, 1] * c
    return np.stack([x, y, np.zeros(len(points))], axis=1)


def draw_path(image: np.ndarray, cam: CameraFrame, points_world: np.ndarray, color, scale: int = 1) -> None:
    uv, depth = project(points_world, cam.camera_to_world, cam.K)
    uv = uv[depth > 0.5] * scale
    for p in uv.astype(int):
        cv2.circle(image, (int(p[0]), int(p[1])), max(1, scale), color, -1, cv2.LINE_AA)


def depth_image(depth: np.ndarray, max_m: float = 60.0) -> np.ndarray:
    d = np.clip(depth / max_m, 0.0, 1.0)
    return cv2.applyColorMap((255 * (1.0 - d) ** 2).astype(np.uint8), cv2.COLORMAP_MAGMA)[:, :, ::-1]


def render_frame(obs: Observation, camera: str | None = None, scale: int = 2, waypoints: np.ndarray | None = None,
                 notes: list[str] | None = None, predicted: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """RGB (with boxes, route dots, planned waypoints and HUD; ``notes`` in green under it) | semantic | depth,
    as one RGB image. ``predicted`` (an RGB picture of what a learned agent's network sees, camera size) takes
    the depth panel's place."""
    cam = obs.cameras[camera] if camera else next(iter(obs.cameras.values()))
    h, w = cam.rgb.shape[:2]
    rgb = cv2.resize(cam.rgb, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    for b in cam.boxes:
        color = LIGHT_COLORS.get(b.light_state, BOX_COLORS[b.kind]) if b.kind == ActorKind.TRAFFIC_LIGHT else BOX_COLORS[b.kind]
        cv2.rectangle(rgb, (b.x1 * scale, b.y1 * scale), (b.x2 * scale - 1, b.y2 * scale - 1), color, 1, cv2.LINE_AA)
    draw_path(rgb, cam, ego_to_world(obs.route[:30:2], obs), (80, 255, 255), scale)
    if waypoints is not None:
        draw_path(rgb, cam, ego_to_world(waypoints, obs), (255, 0, 255), scale + 1)
    light = obs.traffic_light
    hud = f"{obs.ego.speed * 3.6:5.1f} km/h  {obs.command.name}  light {light.state.name}"
    if math.isfinite(light.distance):
        hud += f" {light.distance:.0f} m"
    (tw, th), _ = cv2.getTextSize(hud, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    cv2.rectangle(rgb, (0, 0), (tw + 10, th + 10), (0, 0, 0), -1)
    cv2.putText(rgb, hud, (5, th + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    events = obs.events
    flags = [n for n, v in (("COLLISION", events.collisions), ("RED LIGHT", events.red_light), ("OFF ROAD", events.off_road)) if v]
    if flags:
        cv2.putText(rgb, " ".join(flags), (6, 34), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 0, 0), 2, cv2.LINE_AA)
    if notes:
        cv2.putText(rgb, " ".join(notes), (6, 54), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 220, 0), 2, cv2.LINE_AA)
    small = (w * scale // 2, h * scale // 2)
    lower = depth_image(cam.depth) if predicted is None else predicted
    side = np.vstack([cv2.resize(colorize(cam.semantic), small, interpolation=cv2.INTER_NEAREST),
                      cv2.resize(lower, small, interpolation=cv2.INTER_NEAREST)])
    return np.hstack([rgb, side])


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
