"""Frames per second of :class:`drivestack.sim.embedded.render.Renderer` at 320x160: ``python -m drivestack.sim.embedded.bench_render``.

For one core: ``LP_NUM_THREADS=1 taskset -c 0 python -m drivestack.cli.bench_render``.
"""

from __future__ import annotations

import time

import numpy as np
from drivestack.sim.camera import Pose
from drivestack.sim.conventions import Tag
from drivestack.sim.embedded.render import BoxInstances, GroundMap, Lighting, Renderer
from drivestack.sim.settings import CameraConfig


def synthetic_scene(n_boxes: int, seed: int = 0) -> tuple[GroundMap, BoxInstances]:
    """A 300 m x 300 m ground map at 0.1 m (roads on a grid) and ``n_boxes`` random boxes on it."""
    rng = np.random.default_rng(seed)
    size = 3000
    tags = np.full((size, size), Tag.TERRAIN, np.uint8)
    for k in range(0, size, 700):
        tags[:, k : k + 100] = Tag.ROADS
        tags[k : k + 100, :] = Tag.ROADS
    grey = np.where(tags == Tag.ROADS, 90, 110).astype(np.uint8)
    rgb = grey[..., None] + rng.integers(0, 30, (size, size, 3), dtype=np.uint8)
    ground = GroundMap(rgb=rgb, tags=tags, x0=-150.0, y0=-150.0, resolution=0.1)
    boxes = BoxInstances(
        center=np.column_stack([rng.uniform(-100, 100, (n_boxes, 2)), rng.uniform(0.5, 3, n_boxes)]).astype(np.float32),
        half=rng.uniform(0.3, 3.0, (n_boxes, 3)).astype(np.float32),
        yaw=rng.uniform(-180, 180, n_boxes).astype(np.float32),
        color=rng.integers(0, 256, (n_boxes, 3), dtype=np.uint8),
        tag=rng.choice([Tag.CAR, Tag.BUILDINGS, Tag.PEDESTRIANS, Tag.VEGETATION], n_boxes).astype(np.uint8),
        instance=np.arange(1, n_boxes + 1, dtype=np.uint16),
        emissive=np.zeros(n_boxes, np.float32),
        pattern=(rng.random(n_boxes) < 0.3).astype(np.uint8),
    )
    return ground, boxes


def main(n_boxes: int = 300, frames: int = 300, rounds: int = 7) -> float:
    """Render ``rounds`` x ``frames`` frames from a camera driving through the scene; print frames/s of
    the median and the best round (a shared machine makes single rounds noisy) and return the median."""
    ground, boxes = synthetic_scene(n_boxes)
    renderer = Renderer([CameraConfig(width=320, height=160)], ground)
    lighting = Lighting(sun_direction=(0.3, 0.2, 0.93))
    poses = [Pose(x=-60.0 + (0.25 * i) % 120.0, y=1.75, z=1.6, yaw=(i * 0.7) % 360.0).matrix() for i in range(frames)]
    renderer.render([poses[0]], boxes, lighting)  # warm-up: shader compilation, first allocations
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for pose in poses:
            renderer.render([pose], boxes, lighting)
        rates.append(frames / (time.perf_counter() - start))
    renderer.close()
    median = float(np.median(rates))
    print(f"{n_boxes} boxes + ground, 320x160: {median:.0f} frames/s median, {max(rates):.0f} best of {rounds} rounds")
    return median


if __name__ == "__main__":
    main()
