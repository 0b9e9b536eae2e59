"""Creeping after a long stop (planning/agents/creep.py): the perception gates, the timing, and the
agent driving off only with creep on (the ground geometry: tests/test_tracking.py)."""

import numpy as np
import pytest
from drivestack.perception.classes import ClassMap
from drivestack.planning.agents.creep import CreepConfig, CreepGates, CreepMonitor
from drivestack.sim.camera import Pose, intrinsics, project
from drivestack.sim.settings import CameraConfig, SimConfig

STRIDE = 4
VEHICLE, PEDESTRIAN, RED, YELLOW, GREEN = range(5)  # the default detection classes


def outputs_with(detections: list[tuple], camera: CameraConfig = CameraConfig(), z: float = 0.0):
    """Raw detection outputs (heatmap logits, box distances) with one peak per (class, ground x, ground y, height px
    [, logit]): a box whose bottom centre is where that ground point projects (logit 5 unless given); ``z``
    lifts the points off the ground (the bottom edge of a traffic-light head)."""
    h, w = camera.height // STRIDE, camera.width // STRIDE
    heatmap = np.full((1, 5, h, w), -10.0, np.float32)
    box = np.ones((1, 4, h, w), np.float32)
    mount = Pose(camera.x, camera.y, camera.z, camera.roll, camera.pitch, camera.yaw).matrix()
    for cls, x, y, height, *logit in detections:
        uv, _ = project(np.array([[x, y, z]]), mount, intrinsics(camera.width, camera.height, camera.fov))
        u, v = uv[0]
        row, col = int((v - height / 2) // STRIDE), int(u // STRIDE)
        cx, cy = (col + 0.5) * STRIDE, (row + 0.5) * STRIDE
        heatmap[0, cls, row, col] = logit[0] if logit else 5.0
        box[0, :, row, col] = [cx - u + 3, cy - (v - height), u + 3 - cx, v - cy]
    return heatmap, box


def monitor(**overrides) -> CreepMonitor:
    return CreepMonitor(CreepConfig(**{"open_s": 0.0, **overrides}), CameraConfig(), ClassMap(), dt=0.1)


@pytest.mark.parametrize(("detections", "stop_light", "obstacle"), [
    ([], False, False),
    ([(RED, 30.0, 0.0, 6)], True, False),
    ([(YELLOW, 30.0, 0.0, 6)], True, False),
    ([(GREEN, 30.0, 0.0, 6)], False, False),
    ([(RED, 30.0, -6.0, 6, -0.4), (GREEN, 30.0, 3.0, 6, 0.6)], False, False),  # a crossing road's light, weaker than ours
    ([(RED, 30.0, -6.0, 6, 0.6), (GREEN, 30.0, 3.0, 6, -0.4)], True, False),
    ([(RED, 30.0, 0.0, 6, -1.5)], False, False),  # below light_score
    ([(RED, 8.0, -7.0, 6), (GREEN, 30.0, 3.0, 6, 0.0)], False, False),  # a red head at the image edge does not count
    ([(VEHICLE, 6.0, 0.0, 30)], False, True),
    ([(PEDESTRIAN, 5.0, 1.0, 40)], False, True),
    ([(VEHICLE, 8.0, 4.0, 30)], False, False),  # next lane
    ([(VEHICLE, 25.0, 0.0, 12)], False, False),  # beyond the corridor
])  # fmt: skip
def test_gates_read_lights_and_obstacles_in_the_corridor(detections, stop_light, obstacle):
    gates = CreepGates(CreepConfig(), CameraConfig(), ClassMap()).check(*outputs_with(detections))
    assert (gates.stop_light, gates.obstacle) == (stop_light, obstacle)


def steps_creeping(m: CreepMonitor, steps: int, speed: float, outputs) -> list[bool]:
    return [m.update(speed, *outputs) for _ in range(steps)]


def test_creeps_after_stuck_s_for_duration_s_then_waits_again():
    m = monitor(stuck_s=2.0, duration_s=0.5)
    clear = outputs_with([])
    first = steps_creeping(m, 20, 0.0, clear)
    assert not any(first[:19]) and first[19]
    assert steps_creeping(m, 4, 0.0, clear) == [True] * 4  # 5 steps of 0.1 s in all
    assert steps_creeping(m, 19, 0.0, clear) == [False] * 19  # the clock restarted


def test_never_creeps_at_a_red_light_or_behind_a_car_and_moving_resets_the_clock():
    m = monitor(stuck_s=1.0)
    assert not any(steps_creeping(m, 30, 0.0, outputs_with([(RED, 30.0, 0.0, 6)])))
    assert not any(steps_creeping(m, 30, 0.0, outputs_with([(VEHICLE, 6.0, 0.0, 30)])))
    assert m.update(0.0, *outputs_with([(GREEN, 30.0, 0.0, 6)])), "stuck long enough: creeps once the gates clear"
    m = monitor(stuck_s=1.0)
    steps_creeping(m, 9, 0.0, outputs_with([]))
    m.update(3.0, *outputs_with([]))
    assert not any(steps_creeping(m, 9, 0.0, outputs_with([])))


def test_gates_must_stay_open_for_open_s_before_a_creep():
    m = monitor(stuck_s=1.0, open_s=0.3)
    red, clear = outputs_with([(RED, 30.0, 0.0, 6)]), outputs_with([])
    steps_creeping(m, 10, 0.0, red)
    assert steps_creeping(m, 4, 0.0, clear) == [False, False, False, True]
    m = monitor(stuck_s=1.0, open_s=0.3)
    steps_creeping(m, 10, 0.0, red)
    flicker = [m.update(0.0, *(clear if i % 3 else red)) for i in range(12)]
    assert not any(flicker), "a light that flickers back to red within open_s never lets it go"


def test_creep_aborts_when_a_pedestrian_steps_in():
    m = monitor(stuck_s=1.0, duration_s=2.0)
    assert steps_creeping(m, 11, 0.0, outputs_with([]))[-1]
    assert not m.update(1.0, *outputs_with([(PEDESTRIAN, 4.0, 0.0, 50)]))


class AlwaysBrakes:
    """A driver whose policy brakes on every frame and whose perception sees nothing."""

    source, meta = "always-brakes", {"image_size": [160, 320]}

    def __call__(self, frame, speed, command, target_point):
        heatmap, box = outputs_with([])
        return {"path": np.array([[[2.0 * i, 0.0] for i in range(1, 6)]]), "target_speed": np.array([0.0]),
                "brake": np.array([8.0]), "seg": np.zeros((1, 10, 160, 320), np.float32), "heatmap": heatmap, "box": box}  # fmt: skip


class NeverBrakes(AlwaysBrakes):
    """A policy that never brakes (8 m/s wanted) driving toward something ``x`` metres ahead at the start, which
    its perception sees as :meth:`seen` draws it (nothing by default)."""

    def __init__(self, x: float, dt: float) -> None:
        self.x, self.dt = x, dt

    def seen(self) -> tuple[np.ndarray, np.ndarray]:
        return outputs_with([])

    def __call__(self, frame, speed, command, target_point):
        out = super().__call__(frame, speed, command, target_point)
        out["target_speed"], out["brake"] = np.array([8.0]), np.array([-8.0])
        out["heatmap"], out["box"] = self.seen()
        self.x -= speed * self.dt
        return out


@pytest.mark.parametrize("creep", [CreepConfig(enabled=False), CreepConfig(stuck_s=1.0)])
def test_a_braking_policy_drives_off_only_with_creep(creep):
    from drivestack.planning.agents.learned import PolicyAgent
    from drivestack.sim.embedded.backend import EmbeddedSimulator
    from drivestack.sim.interface import RouteSpec

    config = SimConfig()
    agent = PolicyAgent(AlwaysBrakes(), creep=creep)
    agent.setup(config)
    with EmbeddedSimulator(config) as sim:
        obs = sim.reset(0, RouteSpec(town=2000, length=120))
        creeping = []
        for _ in range(int(3.0 / config.dt)):
            obs = sim.step(agent(obs))
            creeping.append(agent.debug.creeping)
    assert (obs.route_progress > 0.5) == creep.enabled
    assert any(creeping) == creep.enabled
