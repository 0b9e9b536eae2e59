"""Dataset recorder: layout, determinism, noise, resume after crashes, workers (with a fake simulator)."""

from __future__ import annotations

import functools
import json
import math
import os
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from drivestack.cli import execute
from drivestack.common.config import load_config, read_yaml, to_dict
from drivestack.common.parallel import RayConfig
from drivestack.sim.agent import Agent
from drivestack.sim.camera import Pose
from drivestack.sim.conventions import ActorKind, RoadOption, Tag, TrafficLightState
from drivestack.sim.interface import (
    Box2D,
    CameraFrame,
    Collision,
    EgoState,
    Events,
    Observation,
    RouteSpec,
    Simulator,
    SimulatorError,
    TrafficLightInfo,
    VehicleControl,
)
from drivestack.sim.record.dataset_io import (
    MEASUREMENT_KEYS,
    DatasetError,
    load_manifest,
    read_depth,
    read_episode_info,
    read_measurements,
    read_rgb,
    validate_dataset,
)
from drivestack.sim.record.recorder import CollectConfig, CollectResult, NoiseConfig, SteerNoise, collect, plan_episodes
from drivestack.sim.settings import CameraConfig, SimConfig, TownConfig, TrafficConfig

ROOT = Path(__file__).resolve().parents[1]

run_tool = partial(execute, "collect")  # the verb as the command line runs it


class FakeSimulator(Simulator):
    """Deterministic toy simulator: random-looking images seeded by (seed, frame, ego state)."""

    def __init__(self, config: SimConfig, crash: tuple[int, int, type[BaseException]] | None = None) -> None:
        self.config = config
        self.dt = config.dt
        self.crash = crash  # (route seed, frame, exception): raise when about to produce that frame
        self.rendered: list[int] = []  # frames returned with cameras, since the last reset

    def reset(self, seed: int, route: RouteSpec | None = None) -> Observation:
        self._seed, self._frame = seed, 0
        self._x = self._y = self._yaw = self._speed = self._accel = 0.0
        self._end = 15 + seed % 10  # the route is completed at this frame
        self.rendered = []
        return self._observe(render=True)

    def step(self, control: VehicleControl, render: bool = True) -> Observation:
        if self.crash is not None and self.crash[:2] == (self._seed, self._frame + 1):
            error = self.crash[2](f"injected crash before frame {self._frame + 1}")
            if error is not None:  # a crash that happens only once returns None afterwards
                raise error
        self._accel = 3.0 * control.throttle - 6.0 * control.brake
        self._speed = max(0.0, self._speed + self._accel * self.dt)
        self._yaw += 20.0 * control.steer * self.dt
        self._x += self._speed * math.cos(math.radians(self._yaw)) * self.dt
        self._y += self._speed * math.sin(math.radians(self._yaw)) * self.dt
        self._frame += 1
        return self._observe(render)

    def close(self) -> None:
        pass

    def _observe(self, render: bool) -> Observation:
        state = [self._seed, self._frame, int(abs(self._x) * 1e6), int(abs(self._y) * 1e6)]
        rng = np.random.default_rng(state)
        cameras = {c.name: self._camera(c, rng) for c in self.config.cameras} if render else {}
        if render:
            self.rendered.append(self._frame)
        route = np.stack([np.arange(1.0, 31.0) - self._x % 1.0, np.full(30, -self._y / 3.0)], axis=1)
        return Observation(
            frame=self._frame,
            time=self._frame * self.dt,
            cameras=cameras,
            ego=EgoState(Pose(self._x, self._y, 0.0, 0.0, 0.0, self._yaw), self._speed, self._accel, (2.4, 1.0, 0.8)),
            route=route,
            command=RoadOption.LANEFOLLOW if self._frame < 10 else RoadOption.LEFT,
            target_point=route[-1].astype(np.float32),
            traffic_light=TrafficLightInfo(TrafficLightState.RED, 40.0 - self._x, 9) if self._frame % 2 else
            TrafficLightInfo(),
            events=Events(collisions=[Collision(ActorKind.VEHICLE, 7)] if self._frame == 3 else [],
                          route_completed=self._frame >= self._end),
            route_progress=self._x,
            route_length=100.0,
            actors=[],
            speed_limit=8.33,
        )  # fmt: skip

    def _camera(self, camera: CameraConfig, rng: np.random.Generator) -> CameraFrame:
        h, w = camera.height, camera.width
        boxes = [
            Box2D(7, ActorKind.VEHICLE, Tag.CAR, 1, 2, w // 2, h // 2, 0.75),
            Box2D(9, ActorKind.TRAFFIC_LIGHT, Tag.TRAFFIC_LIGHT, 3, 0, 5, 4, 1.0, TrafficLightState.RED),
        ]
        return CameraFrame(
            name=camera.name,
            rgb=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
            semantic=rng.integers(0, 29, (h, w), dtype=np.uint8),
            depth=rng.uniform(0.5, 1200.0, (h, w)).astype(np.float32),
            instance=rng.integers(0, 5000, (h, w), dtype=np.uint16),
            K=np.eye(3),
            camera_to_world=np.eye(4),
            boxes=boxes,
        )


class FakeExpert(Agent):
    """Deterministic, stateful expert using privileged fields only."""

    def setup(self, sim_config: SimConfig) -> None:
        self._calls = 0

    def run_step(self, obs: Observation) -> VehicleControl:
        self._calls += 1
        throttle = 0.7 if obs.ego.speed < 4.0 else 0.0
        return VehicleControl(throttle=throttle, steer=-0.05 * obs.ego.pose.y + 0.02 * (self._calls % 3))


def small_config(out: Path, **changes) -> CollectConfig:
    cameras = [CameraConfig("front", 32, 16), CameraConfig("rear", 16, 8, yaw=180.0)]
    base = dict(out=str(out), town_seeds=[1, 2], routes_per_town=2, max_frames=20, workers=1, progress=False,
                noise=NoiseConfig(probability=2.0), sim=SimConfig(cameras=cameras))  # fmt: skip
    return CollectConfig(**{**base, **changes})


class SimFactory:
    """make_sim for in-process runs that keeps the simulators it made."""

    def __init__(self, crash: tuple[int, int, type[BaseException]] | None = None) -> None:
        self.crash = crash
        self.made: list[FakeSimulator] = []

    def __call__(self, config: SimConfig) -> FakeSimulator:
        self.made.append(FakeSimulator(config, self.crash))
        return self.made[-1]


def run(config: CollectConfig, crash: tuple | None = None) -> tuple[CollectResult, SimFactory]:
    factory = SimFactory(crash)
    return collect(config, make_sim=factory, make_expert=FakeExpert), factory


def snapshot(root: Path) -> dict[str, bytes]:
    """Every episode file's bytes (the manifest is compared apart)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[int, Path]:
    """Uninterrupted collections, for save_every 1 and 2."""
    roots = {}
    for save_every in (1, 2):
        root = tmp_path_factory.mktemp(f"reference{save_every}")
        result, _ = run(small_config(root, save_every=save_every))
        assert not result.failed and not result.interrupted
        roots[save_every] = root
    return roots


def test_layout_measurements_and_manifest(tmp_path):
    config = small_config(tmp_path / "ds", save_instance=True, image_format="png")
    result, _ = run(config)
    root = Path(config.out)
    names = ["town001_route0000", "town001_route0001", "town002_route0000", "town002_route0001"]
    assert result.completed == names and not result.failed
    assert validate_dataset(root) == []
    manifest = load_manifest(root)
    assert manifest.software_version and manifest.seed == 0 and manifest.config["max_frames"] == 20
    for entry in manifest.episodes:
        episode = root / entry.name
        records = read_measurements(episode / "measurements.jsonl")
        assert entry.status == "completed" and entry == read_episode_info(episode)
        assert entry.frames == len(records) == entry.steps
        assert entry.end_reason in ("route_completed", "max_frames")
        assert [r["frame"] for r in records] == list(range(entry.steps))
        for r in records:
            assert tuple(r) == MEASUREMENT_KEYS
            assert len(r["route"]) == 20 and all(v == round(v, 2) for p in r["route"] for v in p)
            assert set(r["boxes"]) == {"front", "rear"} and r["boxes"]["front"][1]["light_state"] == 0
        for modality, ext in (("rgb", "png"), ("semantic", "png"), ("depth", "png"), ("instance", "png")):
            assert (episode / modality / f"rear_{entry.steps - 1:06d}.{ext}").stat().st_size > 0
    first = root / names[0]
    assert read_rgb(first / "rgb" / "front_000000.png").shape == (16, 32, 3)
    depth = read_depth(first / "depth" / "front_000000.png")
    assert depth.max() == pytest.approx(655.35) and depth.dtype == np.float32
    assert read_measurements(first / "measurements.jsonl")[3]["events"]["collisions"] == [{"kind": 0, "actor_id": 7}]


def test_labels_stay_expert_controls_under_noise(reference):
    records = [r for p in sorted(reference[1].glob("*/measurements.jsonl")) for r in read_measurements(p)]
    perturbed = [r for r in records if r["control"]["steer"] != r["expert_control"]["steer"]]
    assert perturbed, "noise at 2 per second should perturb some frames"
    assert all(r["control"]["throttle"] == r["expert_control"]["throttle"] for r in records)
    # The labels are what the expert outputs for the recorded observation, not the applied control.
    for r in records:
        steer = -0.05 * r["pose"]["y"] + 0.02 * ((r["frame"] + 1) % 3)
        assert r["expert_control"]["steer"] == pytest.approx(steer, abs=1e-4)


def test_collect_is_deterministic_and_skips_completed(tmp_path, reference):
    config = small_config(tmp_path / "ds")
    run(config)
    assert snapshot(Path(config.out)) == snapshot(reference[1])
    result, factory = run(config)  # everything is complete: nothing is simulated again
    assert len(result.completed) == 4 and factory.made == []
    assert snapshot(Path(config.out)) == snapshot(reference[1])


@pytest.mark.parametrize("save_every", [1, 2])
def test_resume_after_crash_equals_uninterrupted(tmp_path, reference, save_every):
    config = small_config(tmp_path / "ds", save_every=save_every)
    target = plan_episodes(config)[2]
    result, _ = run(config, crash=(target.route_seed, 13, SimulatorError))
    assert list(result.failed) == [target.name] and "injected crash" in result.failed[target.name]
    assert result.incomplete == [target.name]
    entry = load_manifest(config.out).episodes[2]
    assert entry.status == "failed" and "SimulatorError" in entry.error
    assert not (Path(config.out) / target.name / "episode.json").exists()
    assert validate_dataset(config.out) != []

    result, factory = run(config)
    assert result.completed == [e.name for e in plan_episodes(config)] and not result.failed
    assert snapshot(Path(config.out)) == snapshot(reference[save_every])
    assert load_manifest(config.out).episodes == load_manifest(reference[save_every]).episodes
    # The replay up to the last kept frame (12) is not rendered.
    steps = read_episode_info(Path(config.out) / target.name).steps
    assert factory.made[0].rendered == [0] + [f for f in range(13, steps) if f % save_every == 0]


@pytest.mark.parametrize("save_every", [1, 2])
def test_resume_after_truncated_line_and_missing_image(tmp_path, reference, save_every):
    config = small_config(tmp_path / "ds", save_every=save_every)
    target = plan_episodes(config)[1]
    run(config, crash=(target.route_seed, 13, SimulatorError))
    episode = Path(config.out) / target.name
    jsonl = episode / "measurements.jsonl"
    jsonl.write_bytes(jsonl.read_bytes()[:-25])  # a half-written last line
    (episode / "rgb" / "rear_000008.jpg").unlink()  # frames from 8 on must be recorded again
    (episode / "rgb" / "front_000030.jpg").write_bytes(b"orphan")
    (episode / "depth" / ".front_000009.png.tmp").write_bytes(b"half")

    result, factory = run(config)
    assert not result.failed and not result.interrupted
    assert snapshot(Path(config.out)) == snapshot(reference[save_every])
    assert validate_dataset(config.out) == []
    last_kept = 6 if save_every == 2 else 7
    steps = read_episode_info(episode).steps
    assert factory.made[0].rendered == [0] + [f for f in range(last_kept + 1, steps) if f % save_every == 0]


def test_ctrl_c_keeps_what_is_written_and_resumes(tmp_path, reference):
    config = small_config(tmp_path / "ds")
    target = plan_episodes(config)[1]
    result, _ = run(config, crash=(target.route_seed, 6, KeyboardInterrupt))
    assert result.interrupted and result.completed == ["town001_route0000"] and len(result.incomplete) == 3
    statuses = [e.status for e in load_manifest(config.out).episodes]
    assert statuses == ["completed", "pending", "pending", "pending"]
    assert len(read_measurements(Path(config.out) / target.name / "measurements.jsonl")) == 6

    result, _ = run(config)
    assert len(result.completed) == 4 and not result.interrupted
    assert snapshot(Path(config.out)) == snapshot(reference[1])


def test_replay_that_diverges_is_refused(tmp_path):
    config = small_config(tmp_path / "ds")
    target = plan_episodes(config)[0]
    run(config, crash=(target.route_seed, 10, SimulatorError))
    jsonl = Path(config.out) / target.name / "measurements.jsonl"
    records = read_measurements(jsonl)
    records[4]["speed"] += 1.0
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))

    result, _ = run(config)
    assert list(result.failed) == [target.name] and "not deterministic" in result.failed[target.name]
    assert "frame 4" in load_manifest(config.out).episodes[0].error


def test_resume_refuses_other_settings(tmp_path, capsys):
    config = small_config(tmp_path / "ds", town_seeds=[1], routes_per_town=1, max_frames=3)
    run(config)
    other = small_config(tmp_path / "ds", town_seeds=[1], routes_per_town=1, max_frames=4, seed=3)
    with pytest.raises(DatasetError, match="changed: max_frames, seed"):
        run(other)
    assert run_tool(other) == 2 and "use the same settings to resume" in capsys.readouterr().err
    result, _ = run(small_config(tmp_path / "ds", town_seeds=[1], routes_per_town=1, max_frames=3, workers=4))
    assert result.completed == ["town001_route0000"]


def test_workers_give_the_same_dataset(tmp_path, reference):
    config = small_config(tmp_path / "ds", workers=2)
    result = collect(config, make_sim=FakeSimulator, make_expert=FakeExpert)
    assert len(result.completed) == 4 and not result.failed
    assert snapshot(Path(config.out)) == snapshot(reference[1])
    assert load_manifest(config.out).episodes == load_manifest(reference[1]).episodes


def test_worker_failures_are_reported(tmp_path):
    config = small_config(tmp_path / "ds", workers=2)
    target = plan_episodes(config)[3]
    crashing = functools.partial(FakeSimulator, crash=(target.route_seed, 5, SimulatorError))
    result = collect(config, make_sim=crashing, make_expert=FakeExpert)
    assert list(result.failed) == [target.name] and len(result.completed) == 3


def die(message: str) -> BaseException:
    """A crash no Python code can catch: the process is gone."""
    os._exit(3)


def test_a_worker_that_dies_every_time_leaves_its_episode_incomplete(tmp_path, capsys):
    config = small_config(tmp_path / "ds", workers=2, ray=RayConfig(max_retries=1))
    target = plan_episodes(config)[0]
    dying = functools.partial(FakeSimulator, crash=(target.route_seed, 5, die))
    result = collect(config, make_sim=dying, make_expert=FakeExpert)
    assert result.incomplete == [target.name] and len(result.completed) == 3 and not result.failed
    assert f"episode {target.name}: its worker died on each of 2 tries" in capsys.readouterr().out


class DieOnce:
    """A crash no Python code can catch, the first time only (a marker file remembers it across processes)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __call__(self, message: str) -> None:
        if not self.marker.exists():
            self.marker.touch()
            os._exit(9)
        return None


def test_a_killed_worker_is_retried_and_its_episode_resumed(tmp_path, reference):
    """The retry resumes the episode from the frames the killed worker wrote: the same dataset, nothing twice."""
    config = small_config(tmp_path / "ds", workers=2)
    target = plan_episodes(config)[2]
    killed = functools.partial(FakeSimulator, crash=(target.route_seed, 12, DieOnce(tmp_path / "killed")))
    result = collect(config, make_sim=killed, make_expert=FakeExpert)
    assert (tmp_path / "killed").exists() and len(result.completed) == 4 and not result.failed
    assert snapshot(Path(config.out)) == snapshot(reference[1])


def test_plan_is_deterministic_per_town_and_route():
    plan = plan_episodes(CollectConfig(town_seeds=[3, 12], routes_per_town=2))
    assert [e.name for e in plan] == ["town003_route0000", "town003_route0001", "town012_route0000",
                                      "town012_route0001"]  # fmt: skip
    assert plan == plan_episodes(CollectConfig(town_seeds=[3, 12], routes_per_town=2))
    assert plan[:1] == plan_episodes(CollectConfig(town_seeds=[3], routes_per_town=1))
    seeds = [s for e in plan for s in (e.route_seed, e.noise_seed)]
    assert len(set(seeds)) == len(seeds)
    assert plan != plan_episodes(CollectConfig(seed=1, town_seeds=[3, 12], routes_per_town=2))


def test_steer_noise_is_seeded_triangular_and_bounded():
    config = NoiseConfig(probability=0.5, steer=0.3, duration=(0.5, 1.0))
    straight = VehicleControl(throttle=0.5)
    noise_a, noise_b = SteerNoise(config, 5, 0.05), SteerNoise(config, 5, 0.05)
    offsets = np.array([noise_a.apply(straight).steer for _ in range(20000)])
    assert np.array_equal(offsets, [noise_b.apply(straight).steer for _ in range(20000)])
    assert np.abs(offsets).max() <= 0.3 + 1e-9 and np.abs(offsets).max() > 0.2
    # about p*d / (1 + p*d) of the time is perturbed: 0.5/s x 0.75 s -> ~0.27
    assert 0.15 < np.mean(offsets != 0.0) < 0.4
    assert SteerNoise(NoiseConfig(enabled=False), 5, 0.05).apply(straight) == straight
    assert SteerNoise(config, 5, 0.05).apply(VehicleControl(steer=1.0)).steer <= 1.0


def test_config_yaml_lists_every_key_with_its_default():
    path = ROOT / "configs" / "collect.yaml"

    def keys(data: dict, prefix: str = "") -> set[str]:
        """Dotted leaf keys; an empty mapping is a leaf."""
        out = set()
        for key, value in data.items():
            out |= keys(value, f"{prefix}{key}.") if value and isinstance(value, dict) else {prefix + key}
        return out

    expected = {k for k in keys(to_dict(CollectConfig())) if not k.startswith("sim.")} | {"sim"}
    assert keys(read_yaml(path)) == expected, "configs/collect.yaml is out of date"
    assert load_config(CollectConfig, path) == CollectConfig(), "configs/collect.yaml is out of date"
    assert all("#" in line for line in path.read_text().splitlines() if line.strip()), "every key needs a comment"


class CrashingSimulator(Simulator):
    """Wraps a simulator and raises SimulatorError when about to produce frame ``crash_frame``."""

    def __init__(self, inner: Simulator, crash_frame: int) -> None:
        self.inner, self.crash_frame, self.dt = inner, crash_frame, inner.dt

    def reset(self, seed: int, route: RouteSpec | None = None) -> Observation:
        self._frame = 0
        return self.inner.reset(seed, route)

    def step(self, control: VehicleControl, render: bool = True) -> Observation:
        self._frame += 1
        if self._frame == self.crash_frame:
            raise SimulatorError("injected crash")
        return self.inner.step(control, render)

    def close(self) -> None:
        self.inner.close()


def test_embedded_simulator_and_expert_resume_exactly(tmp_path):
    from drivestack.planning.agents.expert import ExpertAgent
    from drivestack.sim import make_simulator

    sim = SimConfig(cameras=[CameraConfig("front", 32, 16)], town=TownConfig(grid=3),
                    traffic=TrafficConfig(vehicles=4, pedestrians=4))
    config = small_config(tmp_path / "reference", town_seeds=[0], routes_per_town=1, max_frames=25, sim=sim)
    assert run_tool(config) == 0
    assert validate_dataset(config.out) == []

    resumed = small_config(tmp_path / "resumed", town_seeds=[0], routes_per_town=1, max_frames=25, sim=sim)
    result = collect(resumed, ExpertAgent, make_sim=lambda c: CrashingSimulator(make_simulator(c), 12))
    assert result.failed
    assert run_tool(resumed) == 0
    assert snapshot(Path(resumed.out)) == snapshot(Path(config.out))


def test_sigterm_stops_the_workers_keeps_the_data_and_resumes(tmp_path):
    """`kill <pid>` of `drivestack collect` works like Ctrl-C: exit code 130, no orphaned worker, resumable."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "ds"
    args = [sys.executable, "-m", "drivestack.cli", "collect", f"out={out}", "town_seeds=[0]", "routes_per_town=12", "max_frames=300",
            "workers=2", "progress=false", "sim.town.grid=3", "sim.cameras=[{name: front, width: 64, height: 32}]"]
    log = tmp_path / "log.txt"
    with open(log, "w") as sink:  # a file, not a pipe: orphaned workers would hold a pipe open
        process = subprocess.Popen(args, start_new_session=True, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while not list(out.glob("town000_route*/measurements.jsonl")) and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 130, log.read_text()
    deadline = time.time() + 10  # the multiprocessing resource tracker takes a moment to follow its parent
    while _session(process.pid) and time.time() < deadline:
        time.sleep(0.2)
    assert not _session(process.pid), "worker processes outlived the job"
    assert "interrupted" in log.read_text()
    assert subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300).returncode == 0
    assert [e.status for e in load_manifest(out).episodes] == ["completed"] * 12


def _session(sid: int) -> list[int]:
    """Processes of session ``sid`` (field 6 of /proc/<pid>/stat)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3]) == sid:
                found.append(int(proc.name))
        except (OSError, IndexError, ValueError):
            continue
    return found
