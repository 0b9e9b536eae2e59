"""Dataset collection: the expert drives (with seeded steering noise), episodes are written and resumed.

:func:`collect` plans episodes from the config seed, skips completed ones, resumes partial ones and runs
the rest in-process or in ``workers`` spawned processes. :func:`record_episode` drives one episode: a
partial episode keeps its valid prefix (:func:`recover_episode`) and is replayed from reset without
rendering up to its last kept frame, checking that the replay reproduces the kept measurements.

Both are agents (:class:`drivestack.sim.agent.Agent`): the expert labels every frame, and the driver's
control is applied (the expert itself by default; the learned agent for DAgger, with the expert driving in
the 1 s blocks drawn with probability ``beta``; ``drivestack.planning.dagger``).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal

import numpy as np
import tqdm
from drivestack.common.config import to_dict
from drivestack.common.io import ensure_writable, software_version, write_atomic, write_json_atomic
from drivestack.common.parallel import RayConfig, TaskError, run_tasks
from drivestack.common.resume import changed_settings
from drivestack.sim import make_simulator
from drivestack.sim.agent import Agent
from drivestack.sim.interface import Box2D, CameraFrame, Observation, RouteSpec, Simulator, VehicleControl
from drivestack.sim.record.dataset_io import (
    EPISODE_INFO_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    MEASUREMENTS_NAME,
    MODALITIES,
    CameraSpec,
    DatasetError,
    DatasetFormat,
    EpisodeEntry,
    Manifest,
    encode_depth,
    encode_instance,
    encode_rgb,
    encode_semantic,
    load_manifest,
    measurement_line,
    parse_record,
    read_episode_info,
    save_manifest,
)
from drivestack.sim.settings import SimConfig

ROUTE_POINTS = 20  # route points stored per frame (1 m apart)
DIGITS = 5  # decimals kept for floats in the measurements (route: 2, i.e. centimetres)
RUN_ONLY_KEYS = ("out", "workers", "progress", "ray")  # config keys that may change when a collection is resumed


class RecorderError(RuntimeError):
    """An episode that cannot be recorded or resumed consistently."""


@dataclass
class NoiseConfig:
    """Steering perturbations injected into the applied controls (the recorded labels stay the expert's).

    A perturbation is a triangle: the steering offset ramps from 0 to its peak and back to 0 over its
    duration, as in CARLA's data collection for conditional imitation learning.
    """

    enabled: bool = True  # (bool) inject steering perturbations
    probability: float = 0.1  # (float) chance per second of driving that a perturbation starts
    steer: float = 0.3  # (float) largest peak steering offset; each peak is +-U(0.5, 1) x steer
    duration: tuple[float, float] = (0.5, 1.0)  # (s) range each perturbation's duration is drawn from

    def __post_init__(self) -> None:
        if self.probability < 0.0:
            raise ValueError(f"noise.probability must be >= 0, got {self.probability}")
        if not 0.0 <= self.steer <= 2.0:
            raise ValueError(f"noise.steer must be in [0, 2], got {self.steer}")
        if not 0.0 < self.duration[0] <= self.duration[1]:
            raise ValueError(f"noise.duration must be (low, high) with 0 < low <= high, got {self.duration}")


@dataclass
class CollectConfig:
    """Dataset collection: which episodes, how they are saved, and the simulator they run in."""

    out: str = "data/dataset"  # (str) dataset folder; an existing collection there is resumed
    seed: int = 0  # (int) master seed: every episode's route and noise seeds derive from it
    town_seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3])  # (list[int]) towns to drive in
    routes_per_town: int = 2  # (int) random routes (episodes) per town
    route_length: float = 300.0  # (float) length of each random route, metres
    max_frames: int = 2000  # (int) simulated frames per episode at most (100 s at 20 Hz)
    save_every: int = 1  # (int) save every n-th frame (all frames are simulated)
    workers: int = 2  # (int) episodes recorded at a time, one simulator each, as Ray tasks; 1 = one after the other in this process
    ray: RayConfig = field(default_factory=RayConfig)  # where the workers run: a local Ray by default, or a cluster
    image_format: Literal["jpg", "png"] = "jpg"  # (str) RGB encoding
    jpeg_quality: int = 95  # (int) JPEG quality, 0..100
    save_instance: bool = False  # (bool) also save instance-id images (16-bit PNG)
    progress: bool = True  # (bool) show progress bars
    noise: NoiseConfig = field(default_factory=NoiseConfig)  # steering noise on the applied controls
    sim: SimConfig = field(default_factory=SimConfig)  # simulator settings

    def __post_init__(self) -> None:
        if len(set(self.town_seeds)) != len(self.town_seeds) or not self.town_seeds:
            raise ValueError(f"town_seeds must be a non-empty list of distinct seeds, got {self.town_seeds}")
        for name in ("routes_per_town", "max_frames", "save_every", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 0..100, got {self.jpeg_quality}")


MIX_STREAM = 1  # mixes the episode's noise seed into the seed of the expert-block draws (another stream than the noise)


class ExpertBlocks:
    """Whether the expert's label is applied instead of the driver's control, drawn for each 1 s block with
    probability ``beta`` (DAgger's beta), seeded per episode."""

    def __init__(self, beta: float, dt: float, seed: int) -> None:
        self.beta, self.block = beta, max(1, round(1.0 / dt))  # steps per 1 s block
        self._rng = np.random.default_rng([seed, MIX_STREAM])
        self._step, self._expert = 0, False

    def expert_drives(self) -> bool:
        """Call once per step."""
        if self._step % self.block == 0:
            self._expert = bool(self._rng.random() < self.beta)
        self._step += 1
        return self._expert


@dataclass
class CollectResult:
    """What a :func:`collect` call achieved."""

    completed: list[str] = field(default_factory=list)  # episodes complete in the dataset, in plan order
    incomplete: list[str] = field(default_factory=list)  # episodes still to record (failed, stopped, lost)
    failed: dict[str, str] = field(default_factory=dict)  # episode -> error of this run
    interrupted: bool = False  # stopped by Ctrl-C; run again to resume


# ---------------------------------------------------------------- planning and noise


def plan_episodes(config: CollectConfig) -> list[EpisodeEntry]:
    """Every episode with its seeds; each depends only on (config seed, town seed, route index)."""
    entries = []
    for town in config.town_seeds:
        for index in range(config.routes_per_town):
            route_seed, noise_seed = np.random.SeedSequence([config.seed, town, index]).generate_state(2)
            name = f"town{town:03d}_route{index:04d}"
            entries.append(EpisodeEntry(name, town, int(route_seed), int(noise_seed)))
    return entries


class SteerNoise:
    """Seeded triangular steering perturbations added to the expert's controls, one step at a time."""

    def __init__(self, config: NoiseConfig, seed: int, dt: float) -> None:
        self._config = config
        self._dt = dt
        self._rng = np.random.default_rng(seed)
        self._elapsed = self._duration = 0.0
        self._peak = 0.0

    def apply(self, control: VehicleControl) -> VehicleControl:
        """The control to apply this step (steering clipped to [-1, 1])."""
        if not self._config.enabled:
            return control
        return dataclasses.replace(control, steer=control.steer + self._offset())

    def _offset(self) -> float:
        if self._elapsed >= self._duration:
            if self._rng.random() >= self._config.probability * self._dt:
                return 0.0
            self._duration = self._rng.uniform(*self._config.duration)
            self._peak = self._rng.choice([-1.0, 1.0]) * self._rng.uniform(0.5, 1.0) * self._config.steer
            self._elapsed = 0.0
        self._elapsed += self._dt
        phase = min(self._elapsed / self._duration, 1.0)
        return self._peak * (1.0 - abs(2.0 * phase - 1.0))


# ---------------------------------------------------------------- measurements


def _r(value: float, digits: int = DIGITS) -> float:
    return round(float(value), digits) + 0.0  # + 0.0 turns -0.0 into 0.0


def _control(control: VehicleControl) -> dict:
    return {
        "throttle": _r(control.throttle),
        "steer": _r(control.steer),
        "brake": _r(control.brake),
        "hand_brake": bool(control.hand_brake),
        "reverse": bool(control.reverse),
    }


def _box(box: Box2D) -> dict:
    return {
        "actor_id": int(box.actor_id),
        "kind": int(box.kind),
        "tag": int(box.tag),
        "x1": int(box.x1),
        "y1": int(box.y1),
        "x2": int(box.x2),
        "y2": int(box.y2),
        "visibility": _r(box.visibility, 3),
        "light_state": None if box.light_state is None else int(box.light_state),
    }


def measurement_record(
    frame: int, obs: Observation, applied: VehicleControl, label: VehicleControl, target_speed: float | None = None
) -> dict:
    """The measurements.jsonl record of one frame (keys: ``dataset_io.MEASUREMENT_KEYS``)."""
    pose, light, events = obs.ego.pose, obs.traffic_light, obs.events
    return {
        "frame": frame,
        "time": _r(obs.time),
        "speed": _r(obs.ego.speed),
        "acceleration": _r(obs.ego.acceleration),
        "pose": {k: _r(getattr(pose, k)) for k in ("x", "y", "z", "roll", "pitch", "yaw")},
        "control": _control(applied),
        "expert_control": _control(label),
        "expert_target_speed": None if target_speed is None else _r(target_speed),
        "command": int(obs.command),
        "route": (np.round(np.asarray(obs.route, dtype=np.float64)[:ROUTE_POINTS], 2) + 0.0).tolist(),
        "target_point": (np.round(np.asarray(obs.target_point, dtype=np.float64), 2) + 0.0).tolist(),
        "route_progress": _r(obs.route_progress),
        "route_length": _r(obs.route_length),
        "speed_limit": _r(obs.speed_limit),
        "traffic_light": {
            "state": int(light.state),
            "distance": _r(light.distance) if np.isfinite(light.distance) else None,
            "actor_id": int(light.actor_id),
        },
        "events": {
            "collisions": [{"kind": int(c.kind), "actor_id": int(c.actor_id)} for c in events.collisions],
            **{k: bool(getattr(events, k)) for k in (
                "red_light", "off_road", "lane_invasion", "route_deviation", "blocked", "route_completed")},
        },  # fmt: skip
        "boxes": {name: [_box(b) for b in camera.boxes] for name, camera in obs.cameras.items()},
    }


def end_reason(obs: Observation, frame: int, max_frames: int) -> str | None:
    """Why the episode ends at this frame, or None if it goes on."""
    for reason in ("route_completed", "route_deviation", "blocked"):
        if getattr(obs.events, reason):
            return reason
    return "max_frames" if frame + 1 >= max_frames else None


# ---------------------------------------------------------------- episode files


def dataset_format(config: CollectConfig) -> DatasetFormat:
    cameras = [CameraSpec(c.name, c.width, c.height) for c in config.sim.cameras]
    return DatasetFormat(cameras, config.image_format, config.save_instance)


class EpisodeWriter:
    """Appends frames to an episode: every image atomically first, then the measurements line."""

    def __init__(self, episode_dir: Path, fmt: DatasetFormat, jpeg_quality: int) -> None:
        self.episode_dir = episode_dir
        self._fmt = fmt
        self._jpeg_quality = jpeg_quality
        for modality in fmt.modalities():
            (episode_dir / modality).mkdir(parents=True, exist_ok=True)
        self._jsonl = open(episode_dir / MEASUREMENTS_NAME, "ab")

    def write(self, obs: Observation, record: dict) -> None:
        for modality, camera, path in self._fmt.frame_files(self.episode_dir, record["frame"]):
            write_atomic(path, self._encode(modality, self._camera(obs, camera)))
        self._jsonl.write(measurement_line(record))
        self._jsonl.flush()

    def _camera(self, obs: Observation, camera: CameraSpec) -> CameraFrame:
        frame = obs.cameras.get(camera.name)
        if frame is None:
            raise RecorderError(f"frame {obs.frame}: camera '{camera.name}' missing (got {list(obs.cameras)})")
        if frame.rgb.shape[:2] != (camera.height, camera.width):
            raise RecorderError(f"camera '{camera.name}' gave {frame.rgb.shape[:2]}, expected "
                                f"{(camera.height, camera.width)}")  # fmt: skip
        return frame

    def _encode(self, modality: str, frame: CameraFrame) -> bytes:
        if modality == "rgb":
            return encode_rgb(frame.rgb, self._fmt.rgb_format, self._jpeg_quality)
        if modality == "semantic":
            return encode_semantic(frame.semantic)
        if modality == "depth":
            return encode_depth(frame.depth)
        return encode_instance(frame.instance)

    def close(self) -> None:
        self._jsonl.close()

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _complete_record(line: bytes, episode_dir: Path, fmt: DatasetFormat) -> dict | None:
    """The record of a measurements line if it parses and all its images exist and are non-empty."""
    try:
        record = parse_record(line)
    except ValueError:
        return None
    for _, _, path in fmt.frame_files(episode_dir, record["frame"]):
        if not path.is_file() or path.stat().st_size == 0:
            return None
    return record


def recover_episode(episode_dir: Path, fmt: DatasetFormat) -> list[dict]:
    """Keep the valid prefix of a partial episode; truncate the rest and delete orphan files.

    Returns the kept records. The valid prefix is the complete measurements lines, in order of increasing
    frame, whose image files all exist and are non-empty.
    """
    path = episode_dir / MEASUREMENTS_NAME
    data = path.read_bytes() if path.is_file() else b""
    kept, end = [], 0
    for line in data.split(b"\n")[:-1]:  # the last piece is empty or an unfinished line
        record = _complete_record(line, episode_dir, fmt)
        if record is None or (kept and record["frame"] <= kept[-1]["frame"]):
            break
        kept.append(record)
        end += len(line) + 1
    if end < len(data):
        write_atomic(path, data[:end])
    _delete_orphans(episode_dir, fmt, [r["frame"] for r in kept])
    return kept


def _delete_orphans(episode_dir: Path, fmt: DatasetFormat, frames: list[int]) -> None:
    """Delete image and temporary files that belong to none of ``frames``."""
    expected = {path for frame in frames for _, _, path in fmt.frame_files(episode_dir, frame)}
    for modality in MODALITIES:
        folder = episode_dir / modality
        for path in folder.iterdir() if folder.is_dir() else ():
            if path not in expected:
                path.unlink()
    for tmp in episode_dir.glob(".*.tmp"):
        tmp.unlink()


def _comparable(record: dict) -> dict:
    """A record as stored (JSON round trip), without the boxes an unrendered replay does not have."""
    stored = json.loads(measurement_line(record))
    stored.pop("boxes")
    return stored


def _check_replay(record: dict, kept: dict | None, episode_dir: Path) -> None:
    frame = record["frame"]
    if kept is None or _comparable(record) != _comparable(kept):
        raise RecorderError(
            f"{episode_dir}: the replay differs from the recorded frame {frame}; the simulator or expert "
            f"is not deterministic. Delete the episode folder to record it again."
        )


# ---------------------------------------------------------------- one episode


def record_episode(
    sim: Simulator,
    expert: Agent,
    entry: EpisodeEntry,
    config: CollectConfig,
    on_step: Callable[[], None] = lambda: None,
    stop: Callable[[], bool] = lambda: False,
    driver: Agent | None = None,
    beta: float = 0.0,
) -> EpisodeEntry | None:
    """Record (or resume) one episode; returns its completed entry, or None if ``stop()`` turned true.

    ``expert`` labels every frame. ``driver`` drives (default: the expert), except in the 1 s blocks drawn
    for the expert with probability ``beta``; the steering noise is added to the applied control.
    """
    episode_dir = Path(config.out) / entry.name
    fmt = dataset_format(config)
    kept = {r["frame"]: r for r in recover_episode(episode_dir, fmt)}
    last_kept = max(kept, default=-1)
    noise = SteerNoise(config.noise, entry.noise_seed, sim.dt)
    expert.setup(config.sim)
    if driver is not None:
        driver.setup(config.sim)  # a fresh controller per episode
    blocks = ExpertBlocks(beta, sim.dt, entry.noise_seed)
    render_all = driver is not None and bool(driver.sensors())  # replays too: the driver reads the images
    obs = sim.reset(seed=entry.route_seed, route=RouteSpec(town=entry.town_seed, length=config.route_length,
                                                           name=entry.name))  # fmt: skip
    saved = len(kept)
    with EpisodeWriter(episode_dir, fmt, config.jpeg_quality) as writer:
        for frame in itertools.count():
            label = expert.run_step(obs)
            control = label if driver is None else driver.run_step(obs)  # every step: its controller follows the drive
            applied = noise.apply(label if blocks.expert_drives() else control)
            if frame % config.save_every == 0:
                record = measurement_record(frame, obs, applied, label, expert.debug.target_speed)
                if frame <= last_kept:
                    _check_replay(record, kept.get(frame), episode_dir)
                else:
                    writer.write(obs, record)
                    saved += 1
            on_step()
            reason = end_reason(obs, frame, config.max_frames)
            if reason is not None:
                break
            if stop():
                return None
            render = render_all or ((frame + 1) % config.save_every == 0 and frame + 1 > last_kept)
            obs = sim.step(applied, render=render)
    if frame < last_kept:
        raise RecorderError(f"{episode_dir}: the replay ended at frame {frame}, before the kept frame {last_kept}")
    done = dataclasses.replace(entry, status="completed", frames=saved, steps=frame + 1, end_reason=reason)
    write_json_atomic(episode_dir / EPISODE_INFO_NAME, to_dict(done))
    return done


# ---------------------------------------------------------------- many episodes

Report = Callable[[tuple], None]  # called with ("step",), ("done", entry) or ("failed", name, traceback)
MakeAgent = Callable[[], Agent]  # called once per process


def _run_episodes(
    config: CollectConfig,
    entries: Iterable[EpisodeEntry],
    make_sim: Callable[[SimConfig], Simulator],
    make_expert: MakeAgent,
    report: Report,
    stop: Callable[[], bool],
    make_driver: MakeAgent | None = None,
    beta: float = 0.0,
) -> None:
    """Record episodes one after the other; a failed episode is reported and its simulator recreated."""
    sim = driver = None
    try:
        for entry in entries:
            if stop():
                return
            try:
                if sim is None:
                    sim, expert = make_sim(config.sim), make_expert()
                if make_driver is not None and driver is None:
                    driver = make_driver()
                done = record_episode(sim, expert, entry, config, lambda: report(("step",)), stop, driver, beta)
            except Exception:
                report(("failed", entry.name, traceback.format_exc()))
                if sim is not None:
                    sim.close()
                sim = None
                continue
            if done is not None:
                report(("done", done))
    finally:
        if sim is not None:
            sim.close()


def _record_task(config: CollectConfig, entry: EpisodeEntry, make_sim, make_expert, make_driver, beta: float) -> tuple:
    """One episode as a task: ("done", entry) or ("failed", name, traceback); None when it was stopped."""
    events: list[tuple] = []
    _run_episodes(config, [entry], make_sim, make_expert, lambda e: e[0] != "step" and events.append(e), lambda: False,
                  make_driver, beta)  # fmt: skip
    return events[0] if events else None


class _Collection:
    """The parent's side of a collection: manifest updates, progress bars, result."""

    def __init__(self, config: CollectConfig, manifest: Manifest, todo: list[EpisodeEntry], frames: bool) -> None:
        self.config = config
        self.manifest = manifest
        self.result = CollectResult()
        hide = not config.progress
        n = len(manifest.episodes)
        self._episodes = tqdm.tqdm(total=n, initial=n - len(todo), desc="episodes", unit="ep", disable=hide)
        self._frames = tqdm.tqdm(total=len(todo) * config.max_frames, desc="frames", unit="frame", disable=hide or not frames)

    def handle(self, event: tuple) -> None:
        kind = event[0]
        if kind == "step":
            self._frames.update(1)
        elif kind == "done":
            self._set(event[1])
            self._episodes.update(1)
            self._frames.total -= self.config.max_frames - event[1].steps
            self._frames.refresh()
        elif kind == "failed":
            name, trace = event[1], event[2]
            self._set(dataclasses.replace(self._entry(name), status="failed", error=trace.strip().splitlines()[-1]))
            self.result.failed[name] = trace
            tqdm.tqdm.write(f"episode {name} failed:\n{trace}")

    def _entry(self, name: str) -> EpisodeEntry:
        return next(e for e in self.manifest.episodes if e.name == name)

    def _set(self, entry: EpisodeEntry) -> None:
        self.manifest.episodes = [entry if e.name == entry.name else e for e in self.manifest.episodes]
        save_manifest(self.config.out, self.manifest)

    def close(self) -> None:
        for entry in self.manifest.episodes:
            (self.result.completed if entry.status == "completed" else self.result.incomplete).append(entry.name)
        save_manifest(self.config.out, self.manifest)
        self._frames.close()
        self._episodes.close()


def open_manifest(config: CollectConfig) -> Manifest:
    """Create the dataset folder and manifest, or check an existing one was made with the same settings."""
    root = ensure_writable(config.out)
    settings = json.loads(json.dumps(to_dict(config)))  # as stored: tuples become lists
    if (root / MANIFEST_NAME).exists():
        changed = changed_settings(load_manifest(root).config, settings, free=RUN_ONLY_KEYS)
        if changed:
            raise DatasetError(root / MANIFEST_NAME, f"collected with other settings (changed: {', '.join(changed)}); "
                               "use the same settings to resume, or another 'out' folder")  # fmt: skip
    episodes = [
        read_episode_info(root / e.name) if (root / e.name / EPISODE_INFO_NAME).exists() else e
        for e in plan_episodes(config)
    ]
    fmt = dataset_format(config)
    manifest = Manifest(FORMAT_VERSION, software_version(), config.seed, fmt, settings, episodes)
    save_manifest(root, manifest)
    return manifest


def _run_in_workers(
    config: CollectConfig,
    todo: list[EpisodeEntry],
    collection: _Collection,
    make_sim: Callable[[SimConfig], Simulator],
    make_expert: MakeAgent,
    make_driver: MakeAgent | None,
    beta: float,
) -> None:
    """One task per episode on Ray (:func:`drivestack.common.parallel.run_tasks`); a task whose worker died
    is retried, and resumes its episode from what the dead worker wrote."""
    jobs = [(config, entry, make_sim, make_expert, make_driver, beta) for entry in todo]
    for job, event in run_tasks(_record_task, jobs, config.workers, config.ray, name=lambda job: f"episode {job[1].name}"):
        if isinstance(event, TaskError):
            tqdm.tqdm.write(f"{event}; it stays incomplete, run the same command again to resume it")
        elif event is not None:
            collection.handle(event)


def collect(
    config: CollectConfig,
    make_expert: MakeAgent,
    make_sim: Callable[[SimConfig], Simulator] = make_simulator,
    make_driver: MakeAgent | None = None,
    beta: float = 0.0,
) -> CollectResult:
    """Record every episode of ``config`` that is not complete yet (resuming partial ones).

    ``make_expert`` builds the agent that labels every frame, ``make_driver`` the one that drives (default:
    the expert); ``beta``: the share of 1 s blocks in which the expert drives instead. With ``workers`` > 1
    (or a Ray cluster in ``config.ray``) each episode is a Ray task, and the factories travel to the workers.
    """
    manifest = open_manifest(config)
    todo = [e for e in manifest.episodes if e.status != "completed"]
    in_process = (config.workers == 1 or len(todo) <= 1) and not config.ray.cluster()
    collection = _Collection(config, manifest, todo, frames=in_process)  # Ray tasks report whole episodes
    try:
        if in_process:
            _run_episodes(config, todo, make_sim, make_expert, collection.handle, lambda: False, make_driver, beta)
        else:
            _run_in_workers(config, todo, collection, make_sim, make_expert, make_driver, beta)
    except KeyboardInterrupt:
        collection.result.interrupted = True
    finally:
        collection.close()
    return collection.result


def finish(config: CollectConfig, result: CollectResult) -> int:
    """Print what a collection achieved; its exit status: 0 done, 1 episodes left incomplete, 130 interrupted."""
    total = len(result.completed) + len(result.incomplete)
    text = f"{len(result.completed)}/{total} episodes complete in {config.out}"
    if result.failed:
        text += f"; failed this run: {', '.join(sorted(result.failed))}"
    if result.interrupted:
        text += "; interrupted: run the same command again to resume"
    print(text)
    if result.interrupted:
        return 130
    return 1 if result.incomplete else 0
