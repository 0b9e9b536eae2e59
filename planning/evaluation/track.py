"""``drivestack track``: the tracker measured against the embedded simulator's truth on seeded routes in unseen towns.

The expert drives each route; every ``every``-th step the front camera's frame goes through the driving model's
perception (the shipped INT8 graph by default), its vehicle and pedestrian detections through the tracker
(:mod:`drivestack.perception.tracking`), and the tracks are scored against the simulator's boxes with actor ids
(HOTA, MOTA, IDF1 by TrackEval; ID switches per km driven) and its actors' positions and velocities (range and
speed errors). ``boxes=truth`` feeds the tracker the simulator's own boxes instead: an upper bound without
detection errors. The episodes are driven live rather than read from a recorded dataset because recordings
keep boxes but not the actors' positions and velocities. ``bench=true`` only times the tracker on synthetic
detections."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from drivestack.common.config import to_dict
from drivestack.common.io import ensure_writable, write_json_atomic
from drivestack.perception.classes import ClassMap
from drivestack.perception.tracking.detections import TRACKED_KINDS, tracked_detections
from drivestack.perception.tracking.evaluate import (
    EstimateErrors,
    FrameTracks,
    TtcAlarms,
    add_errors,
    frame_tracks,
    mot_metrics,
    split_truth,
)
from drivestack.perception.tracking.ground import ground_to_pixels
from drivestack.perception.tracking.tracker import Tracker, TrackerConfig, ego_motion
from drivestack.planning.evaluation.suite import generated_suite
from drivestack.planning.predict import SHIPPED_MODEL
from drivestack.sim.camera import intrinsics
from drivestack.sim.interface import Box2D, RouteSpec
from drivestack.sim.settings import CameraConfig, SimConfig
from tqdm import tqdm

MODES = {"detector": ("detector",), "truth": ("truth",), "both": ("detector", "truth")}


@dataclass
class TrackConfig:
    out: str = "runs/track"  # (str) folder for track.json (bench.json with bench=true)
    model: str = SHIPPED_MODEL  # (str) driving model whose perception detects: a fused ONNX graph or a checkpoint
    boxes: Literal["detector", "truth", "both"] = "both"  # (str) what the tracker follows: detector, truth (upper bound) or both
    camera: str = "front"  # (str) camera whose frames are tracked
    towns: list[int] = field(default_factory=lambda: [6000, 6001, 6002, 6003])  # (list[int]) town seeds no other config uses
    routes: int = 8  # (int) routes, cycling through the towns; route i has episode seed seed*100000 + i
    route_length: float = 300.0  # (float) metres per route
    seed: int = 0  # (int) seed of the routes
    every: int = 2  # (int) track every n-th simulator step (2: 10 Hz at dt 0.05)
    max_steps: int = 1500  # (int) simulator steps per route at most
    min_height: float = 10.0  # (float) pixels: lower ground-truth boxes and tracks are ignored in scoring
    min_visibility: float = 0.3  # (float) less visible ground-truth boxes are ignored in scoring
    bench: bool = False  # (bool) only time the tracker on synthetic detections (writes bench.json)
    bench_frames: int = 1000  # (int) updates timed by bench
    bench_detections: int = 10  # (int) detections per frame in bench
    progress: bool = True  # (bool) show a progress bar per route
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    sim: SimConfig = field(default_factory=SimConfig)

    def __post_init__(self) -> None:
        if self.boxes not in MODES:
            raise ValueError(f"boxes must be one of {sorted(MODES)}, got '{self.boxes}'")
        if not self.towns or min(self.routes, self.every, self.max_steps, self.bench_frames, self.bench_detections) < 1:
            raise ValueError("towns must not be empty and routes, every, max_steps, bench_frames, bench_detections must be >= 1")
        if self.route_length <= 0 or self.min_height < 0 or not 0.0 <= self.min_visibility <= 1.0:
            raise ValueError(f"need route_length > 0, min_height >= 0, min_visibility in [0, 1], got {self.route_length}, "
                             f"{self.min_height}, {self.min_visibility}")  # fmt: skip
        if self.sim.backend != "embedded":
            raise ValueError(f"sim.backend must be 'embedded' (the truth comes from the embedded simulator), got '{self.sim.backend}'")
        if self.camera not in [c.name for c in self.sim.cameras]:
            raise ValueError(f"camera '{self.camera}' is not in sim.cameras {[c.name for c in self.sim.cameras]}")


@dataclass
class ModeRun:
    """What one kind of input (detector or truth boxes) gave over the routes."""

    tracker: Tracker
    sequences: dict[str, list[FrameTracks]] = field(default_factory=dict)
    errors: EstimateErrors = field(default_factory=EstimateErrors)
    alarms: TtcAlarms = field(default_factory=TtcAlarms)
    update_ms: list[float] = field(default_factory=list)
    detections: list[int] = field(default_factory=list)


def _camera(config: TrackConfig) -> CameraConfig:
    return next(c for c in config.sim.cameras if c.name == config.camera)


def _truth_detections(boxes: list[Box2D], classes: ClassMap) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The simulator's boxes of tracked kinds as perfect detections (score 1)."""
    index = {c.kind: i for i, c in enumerate(classes.det) if c.light_state is None}
    mine = [b for b in boxes if int(b.kind) in TRACKED_KINDS]
    return (np.array([b.as_list() for b in mine], np.float64).reshape(-1, 4), np.ones(len(mine)),
            np.array([index[int(b.kind)] for b in mine], np.int64))  # fmt: skip


def evaluate_tracking(config: TrackConfig) -> dict:
    """Drive the routes, track, score; writes ``out/track.json`` and returns its content."""
    from drivestack.planning.agents.expert import ExpertAgent
    from drivestack.planning.agents.learned import check_camera
    from drivestack.planning.predict import load
    from drivestack.sim.embedded.backend import EmbeddedSimulator

    out = ensure_writable(config.out)
    modes = MODES[config.boxes]
    camera, dt = _camera(config), config.sim.dt * config.every
    model = None
    if "detector" in modes:
        model = load(config.model)
        check_camera(model.driver.meta, config.sim, config.camera, model.source)
    classes = model.classes if model else ClassMap()
    runs = {mode: ModeRun(Tracker(config.tracker, camera, dt)) for mode in modes}
    suite = generated_suite("track", config.towns, config.routes, config.route_length, config.seed)
    metres, frames = 0.0, 0
    expert = ExpertAgent()
    with EmbeddedSimulator(config.sim) as sim:
        for route in suite.routes:
            expert.setup(config.sim)
            obs = sim.reset(route.seed, RouteSpec(town=route.town, length=route.length, name=route.name))
            for run in runs.values():
                run.tracker.reset()
                run.sequences[route.name] = []
            yaw = obs.ego.pose.yaw
            for step in tqdm(range(config.max_steps), desc=route.name, unit="step", disable=not config.progress, leave=False):
                tracked = (step + 1) % config.every == 0
                obs = sim.step(expert.run_step(obs), render=tracked)
                if tracked:
                    frames += 1
                    motion = ego_motion(obs.ego.speed, dt, yaw, obs.ego.pose.yaw)
                    yaw = obs.ego.pose.yaw
                    frame = obs.cameras[config.camera]
                    truth, ignored = split_truth(frame.boxes, TRACKED_KINDS, config.min_height, config.min_visibility)
                    actors = {a.id: a for a in obs.actors}
                    for mode, run in runs.items():
                        if mode == "detector":
                            outputs = model.predict(frame.rgb, obs.ego.speed, obs.command, obs.target_point).outputs
                            detections = tracked_detections(outputs, classes, camera.width, config.tracker.low_score)
                        else:
                            detections = _truth_detections(frame.boxes, classes)
                        start = time.perf_counter()
                        tracks = run.tracker.update(*detections, motion=motion)
                        run.update_ms.append(1e3 * (time.perf_counter() - start))
                        run.detections.append(len(detections[0]))
                        run.sequences[route.name].append(frame_tracks(tracks, truth, ignored, config.min_height))
                        add_errors(run.errors, tracks, truth, actors, obs.ego, camera)
                        run.alarms.add(tracks, truth, actors, obs.ego, obs.route, camera)  # the expert's route is its path
                if obs.done:
                    break
            metres += obs.route_progress
    km = metres / 1000.0
    result = {"model": str(model.path) if model else None, "routes": len(suite.routes), "towns": config.towns, "km": round(km, 3),
              "frames": frames, "track_hz": round(1.0 / dt, 2),
              "results": {mode: _summary(run, km) for mode, run in runs.items()}, "config": to_dict(config)}  # fmt: skip
    write_json_atomic(out / "track.json", _finite(result))
    return result


def _summary(run: ModeRun, km: float) -> dict:
    metrics = mot_metrics(run.sequences)
    ms = np.array(run.update_ms)
    return {**metrics, "IDSW_per_km": metrics["IDSW"] / km if km > 0 else math.nan, **run.errors.summary(), **run.alarms.summary(),
            "tracker_ms_mean": float(ms.mean()) if len(ms) else math.nan,
            "tracker_ms_p95": float(np.percentile(ms, 95)) if len(ms) else math.nan,
            "detections_per_frame": float(np.mean(run.detections)) if run.detections else math.nan}  # fmt: skip


def _finite(data):
    """``data`` with every NaN or infinity replaced by None (strict JSON)."""
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_finite(v) for v in data]
    return None if isinstance(data, float) and not math.isfinite(data) else data


def table(result: dict) -> str:
    """The figures of ``track.json`` as a table, one row per kind of input boxes."""
    head = f"{'boxes':<9}{'HOTA':>7}{'MOTA':>7}{'IDF1':>7}{'IDSW':>6}{'IDSW/km':>9}{'range MAE':>11}{'<20m':>7}{'speed MAE':>11}{'TTC<1s rec':>11}{'prec':>6}{'ms/frame':>10}"
    lines = [f"{result['routes']} routes, {result['km']:.2f} km, {result['frames']} frames at {result['track_hz']:g} Hz "
             f"in towns {result['towns']}", head]  # fmt: skip
    for mode, r in result["results"].items():
        cell = lambda key, fmt: format(r[key], fmt) if r.get(key) is not None else "-"  # noqa: E731
        lines.append(f"{mode:<9}{cell('HOTA', '7.3f')}{cell('MOTA', '7.3f')}{cell('IDF1', '7.3f')}{r['IDSW']:>6d}"
                     f"{cell('IDSW_per_km', '9.1f')}{cell('range_mae', '10.2f')}m{cell('range_mae_under_20m', '6.2f')}m"
                     f"{cell('speed_mae', '7.2f')} m/s{cell('ttc_alarm_recall', '11.2f')}{cell('ttc_alarm_precision', '6.2f')}"
                     f"{cell('tracker_ms_mean', '10.3f')}")  # fmt: skip
    return "\n".join(lines)


def bench_tracker(config: TrackerConfig, camera: CameraConfig, detections: int = 10, frames: int = 1000, dt: float = 0.1,
                  seed: int = 0) -> dict[str, float]:  # fmt: skip
    """Milliseconds per ``Tracker.update`` on ``detections`` synthetic vehicles driving at random speeds 8-40 m
    ahead (their boxes projected by the camera model), each update on this CPU."""
    rng = np.random.default_rng(seed)
    position = np.stack([rng.uniform(8, 40, detections), rng.uniform(-8, 8, detections)], axis=1)
    velocity = np.stack([rng.uniform(-3, 3, detections), rng.uniform(-1, 1, detections)], axis=1)
    tracker, times = Tracker(config, camera, dt), []
    f = intrinsics(camera.width, camera.height, camera.fov)[0, 0]
    for k in range(frames):
        now = position + velocity * dt * (k % 100)  # back to the start every 100 frames: the objects stay in view
        uv, depth = ground_to_pixels(now, camera)
        size = f / np.maximum(depth, 1.0)
        boxes = np.stack([uv[:, 0] - 0.9 * size, uv[:, 1] - 1.5 * size, uv[:, 0] + 0.9 * size, uv[:, 1]], axis=1)
        start = time.perf_counter()
        tracker.update(boxes, np.full(detections, 0.9), np.zeros(detections, np.int64))
        times.append(1e3 * (time.perf_counter() - start))
    ms = np.array(times)
    return {"detections": detections, "frames": frames, "ms_median": float(np.median(ms)), "ms_mean": float(ms.mean()),
            "ms_p95": float(np.percentile(ms, 95))}  # fmt: skip


def track(config: TrackConfig) -> int:
    """The ``track`` verb: evaluate (or, with ``bench=true``, time the tracker), print the table, exit status 0."""
    out = ensure_writable(config.out)
    if config.bench:
        result = bench_tracker(config.tracker, _camera(config), config.bench_detections, config.bench_frames, config.sim.dt * config.every)
        write_json_atomic(out / "bench.json", result)
        print(f"tracker: {result['ms_median']:.3f} ms median, {result['ms_p95']:.3f} ms p95 per frame with {result['detections']} "
              f"detections ({result['frames']} frames); {Path(out) / 'bench.json'}")  # fmt: skip
        return 0
    result = evaluate_tracking(config)
    print(table(_finite(result)))
    print(f"results in {out / 'track.json'}")
    return 0

