"""CARLA sensors: camera blueprints and mounts, frame-matched sensor queues, and raw BGRA decoding.

Sensor callbacks run on the client's threads and only enqueue ``(frame, data)``; the simulator loop
asks for the data of the frame ``world.tick()`` returned and never trusts arrival order.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any

import carla
import numpy as np
from drivestack.sim.camera import Pose
from drivestack.sim.interface import SimulatorError
from drivestack.sim.settings import CameraConfig

CAMERA_BLUEPRINTS = {
    "rgb": "sensor.camera.rgb",
    "semantic": "sensor.camera.semantic_segmentation",
    "depth": "sensor.camera.depth",
    "instance": "sensor.camera.instance_segmentation",  # actor ids in G, B from CARLA 0.9.16
}
MAX_DEPTH_M = 1000.0


def camera_attributes(camera: CameraConfig) -> dict[str, str]:
    """Blueprint attributes shared by a camera's RGB, semantic, depth and instance sensors."""
    return {
        "image_size_x": str(camera.width),
        "image_size_y": str(camera.height),
        "fov": str(camera.fov),
        "sensor_tick": "0.0",  # every tick
    }


def camera_transform(camera: CameraConfig) -> carla.Transform:
    """Mount pose relative to the ego vehicle (same axes as CameraConfig: x fwd, y right, z up)."""
    return carla.Transform(
        carla.Location(x=camera.x, y=camera.y, z=camera.z),
        carla.Rotation(pitch=camera.pitch, yaw=camera.yaw, roll=camera.roll),
    )


def pose_of(transform: carla.Transform) -> Pose:
    """Our Pose of a carla.Transform."""
    loc, rot = transform.location, transform.rotation
    return Pose(loc.x, loc.y, loc.z, rot.roll, rot.pitch, rot.yaw)


def bgra(image: Any) -> np.ndarray:
    """(H, W, 4) uint8 view of a carla.Image's raw BGRA buffer."""
    return np.frombuffer(image.raw_data, dtype=np.uint8).reshape(image.height, image.width, 4)


def decode_rgb(raw: np.ndarray) -> np.ndarray:
    """BGRA -> contiguous RGB uint8."""
    return np.ascontiguousarray(raw[..., 2::-1])


def decode_semantic(raw: np.ndarray) -> np.ndarray:
    """Semantic segmentation BGRA -> tag ids (the red channel)."""
    return np.ascontiguousarray(raw[..., 2])


def decode_depth(raw: np.ndarray) -> np.ndarray:
    """Depth camera BGRA -> float32 metres: 1000 * (R + G*256 + B*256^2) / (256^3 - 1)."""
    r, g, b = (raw[..., i].astype(np.int32) for i in (2, 1, 0))
    return ((r + g * 256 + b * 65536) * np.float32(MAX_DEPTH_M / (256**3 - 1))).astype(np.float32)


def encode_depth(depth: np.ndarray) -> np.ndarray:
    """Metres -> depth camera BGRA (the inverse of :func:`decode_depth`, for tests and replays)."""
    code = np.round(np.clip(depth, 0.0, MAX_DEPTH_M) / MAX_DEPTH_M * (256**3 - 1)).astype(np.int64)
    out = np.full(depth.shape + (4,), 255, dtype=np.uint8)
    out[..., 2], out[..., 1], out[..., 0] = code % 256, (code // 256) % 256, code // 65536
    return out


def decode_instance(raw: np.ndarray) -> np.ndarray:
    """Instance segmentation BGRA -> actor ids, G + B*256 (actor ids from CARLA 0.9.16 on)."""
    return (raw[..., 1].astype(np.uint16) + raw[..., 0].astype(np.uint16) * 256).astype(np.uint16)


class SensorSync:
    """Per-sensor queues whose data is handed out by frame number, with a timeout.

    Data older than the asked frame is stale and dropped; data of a later frame is kept for later.
    """

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._queues: dict[str, queue.Queue] = {}
        self._early: dict[str, dict[int, Any]] = {}

    @property
    def names(self) -> list[str]:
        return list(self._queues)

    def callback(self, name: str) -> Callable[[Any], None]:
        """Register sensor ``name``; returns the function to pass to ``sensor.listen``."""
        if name in self._queues:
            raise ValueError(f"sensor '{name}' is already registered")
        q: queue.Queue = queue.Queue()
        self._queues[name] = q
        self._early[name] = {}
        return lambda data: q.put((data.frame, data))

    def get(self, name: str, frame: int, deadline: float | None = None) -> Any:
        """The data of sensor ``name`` for ``frame``; SimulatorError after the timeout."""
        early = self._early[name]
        if frame in early:
            return early.pop(frame)
        deadline = time.monotonic() + self.timeout_s if deadline is None else deadline
        while True:
            try:
                got, data = self._queues[name].get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                raise SimulatorError(
                    f"sensor '{name}' sent no data for frame {frame} within {self.timeout_s} s "
                    f"(is the server overloaded or not in synchronous mode?)"
                ) from None
            if got == frame:
                return data
            if got > frame:
                early[got] = data

    def get_all(self, frame: int, names: list[str] | None = None) -> dict[str, Any]:
        """Every registered sensor's data (or only ``names``') for ``frame``, within one shared timeout."""
        deadline = time.monotonic() + self.timeout_s
        return {name: self.get(name, frame, deadline) for name in (self._queues if names is None else names)}

    def discard(self, frame: int) -> None:
        """Drop whatever has arrived up to ``frame`` (steps that are not rendered)."""
        for name, q in self._queues.items():
            while True:
                try:
                    got, data = q.get_nowait()
                except queue.Empty:
                    break
                if got > frame:
                    self._early[name][got] = data
            self._early[name] = {f: d for f, d in self._early[name].items() if f > frame}


class EventQueue:
    """Events of sensors that fire zero or more times per tick (collision, lane invasion)."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._later: list[tuple[int, Any]] = []

    def __call__(self, event: Any) -> None:
        self._queue.put((event.frame, event))

    def pop(self, frame: int) -> list[Any]:
        """Events of frames up to ``frame`` that have arrived; later ones stay queued."""
        items, self._later = self._later, []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._later = [(f, e) for f, e in items if f > frame]
        return [e for f, e in sorted(items, key=lambda item: item[0]) if f <= frame]
