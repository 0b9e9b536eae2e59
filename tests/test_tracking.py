"""Multi-object tracking (perception/tracking/): ground projection, ids through a crossing with an occlusion,
velocities, time to collision, the TrackEval metric path, the `drivestack track` verb and the learned agent's tracks."""

import json
import math

import numpy as np
import pytest
from drivestack.cli import main
from drivestack.perception.tracking.evaluate import FrameTracks, mot_metrics
from drivestack.perception.tracking.ground import ground_points, ground_to_pixels
from drivestack.perception.tracking.tracker import Tracker, TrackerConfig, ego_motion
from drivestack.perception.tracking.ttc import time_to_collision
from drivestack.sim.camera import Pose, intrinsics, project
from drivestack.sim.settings import CameraConfig

from tests.test_creep import AlwaysBrakes, outputs_with

CAMERA = CameraConfig()  # 320x160, fov 90, 1.3 m ahead of the centre, 1.6 m up
DT = 0.1


def box_on_ground(point, camera=CAMERA, height=1.5, width=1.8) -> np.ndarray:
    """The x1 y1 x2 y2 box of an object of ``height`` x ``width`` metres whose contact point is ``point`` (ego frame)."""
    uv, depths = ground_to_pixels(np.asarray(point, float), camera)
    (u, v), depth = uv[0], depths[0]
    f = camera.width / (2 * math.tan(math.radians(camera.fov) / 2))
    return np.array([u - f * width / 2 / depth, v - f * height / depth, u + f * width / 2 / depth, v])


def test_ground_projection_matches_the_pinhole_camera_for_a_known_point():
    point = np.array([[11.3, 2.0]])  # 10 m ahead of the camera, 2 m right
    f = CAMERA.width / 2  # fov 90: f = W / (2 tan 45)
    uv, depth = ground_to_pixels(point, CAMERA)
    np.testing.assert_allclose(uv[0], [CAMERA.width / 2 + f * 2.0 / 10.0, CAMERA.height / 2 + f * 1.6 / 10.0])
    assert depth[0] == pytest.approx(10.0)
    np.testing.assert_allclose(ground_points(uv, CAMERA), point, atol=1e-9)


def test_ground_points_of_a_pitched_camera_invert_the_camera_model():
    camera = CameraConfig(z=2.0, y=0.3, pitch=-8.0)
    points = np.array([[5.0, 0.0, 0.0], [10.0, 1.5, 0.0], [20.0, -3.0, 0.0]])
    mount = Pose(camera.x, camera.y, camera.z, camera.roll, camera.pitch, camera.yaw).matrix()
    pixels, _ = project(points, mount, intrinsics(camera.width, camera.height, camera.fov))
    np.testing.assert_allclose(ground_points(pixels, camera), points[:, :2], atol=1e-6)
    assert np.isnan(ground_points(np.array([[160.0, 10.0]]), CameraConfig())).all()  # above the horizon


def test_ids_stay_with_their_objects_through_a_crossing_with_an_occlusion():
    """Two pedestrians cross in front of the car; the far one is hidden behind the near one (no detection) for
    the frames their boxes overlap most. Each keeps one id from its first report to the end."""
    tracker = Tracker(TrackerConfig(), CAMERA, DT)
    seen: dict[str, set[int]] = {"near": set(), "far": set()}
    hidden = 0
    for k in range(41):
        near, far = np.array([12.0, -4.0 + 0.2 * k]), np.array([15.0, 4.0 - 0.2 * k])  # 2 m/s each way
        boxes = {"near": box_on_ground(near, height=1.8, width=0.6), "far": box_on_ground(far, height=1.8, width=0.6)}
        occluded = abs(near[1] - far[1]) < 1.0
        hidden += occluded
        names = ["near"] if occluded else ["near", "far"]
        tracks = tracker.update(np.array([boxes[n] for n in names]), np.full(len(names), 0.9), np.ones(len(names), int))
        for track in tracks:
            name = min(names, key=lambda n: np.abs(boxes[n] - track.box).sum())
            seen[name].add(track.id)
    assert hidden >= 4
    assert len(seen["near"]) == 1 and len(seen["far"]) == 1 and seen["near"] != seen["far"]


@pytest.mark.parametrize("velocity", [(0.0, 0.0), (-3.0, 1.0), (4.0, -0.5)])
def test_velocity_over_the_ground_is_recovered_while_the_ego_drives(velocity):
    """The ego drives at 4 m/s; a vehicle 30 m ahead moves at a known ground velocity for 3 s; its boxes are
    rounded to whole pixels and jittered by up to half a pixel."""
    rng = np.random.default_rng(0)
    tracker, ego_speed = Tracker(TrackerConfig(), CAMERA, DT), 4.0
    position, velocity = np.array([30.0, 1.5]), np.array(velocity)
    for _ in range(30):
        box = np.round(box_on_ground(position)) + rng.uniform(-0.5, 0.5, 4)
        tracks = tracker.update(box[None], [0.9], [0], motion=ego_motion(ego_speed, DT, 0.0, 0.0))
        position = position + (velocity - [ego_speed, 0.0]) * DT
    (track,) = tracks
    np.testing.assert_allclose(track.velocity, velocity, atol=0.5)


def test_a_stationary_object_has_no_velocity_while_the_ego_turns():
    tracker, speed, yaw_rate = Tracker(TrackerConfig(), CAMERA, DT), 5.0, 10.0  # degrees per second
    world, ego, yaw = np.array([30.0, 5.0]), np.zeros(2), 0.0
    for _ in range(30):
        c, s = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
        local = np.array([[c, s], [-s, c]]) @ (world - ego)
        tracks = tracker.update(box_on_ground(local)[None], [0.9], [0], motion=ego_motion(speed, DT, yaw - yaw_rate * DT, yaw))
        half = math.radians(yaw + yaw_rate * DT / 2)
        ego, yaw = ego + speed * DT * np.array([math.cos(half), math.sin(half)]), yaw + yaw_rate * DT
    assert np.hypot(*tracks[0].velocity) < 0.3


def test_time_to_collision_along_the_path():
    path = np.stack([np.arange(1.0, 31.0), np.zeros(30)], axis=1)  # straight ahead, 30 m
    positions = np.array([[22.4, 0.5], [22.4, 3.5], [12.4, 0.0], [12.4, 0.0], [50.0, 0.0]])
    velocities = np.array([[0.0, 0.0], [0.0, 0.0], [-5.0, 0.0], [7.0, 0.0], [0.0, 0.0]])
    ttc = time_to_collision(positions, velocities, path, ego_speed=5.0, corridor_half_width=2.0, front=2.4)
    assert ttc[0] == pytest.approx(20.0 / 5.0)  # standing in the path: gap 20 m at 5 m/s
    assert ttc[1] == math.inf  # beside the corridor
    assert ttc[2] == pytest.approx(10.0 / 10.0)  # oncoming at 5 m/s: closing at 10 m/s
    assert ttc[3] == math.inf  # driving away faster than the ego
    assert ttc[4] == pytest.approx(47.6 / 5.0)  # beyond the path's end, on its extension


def test_a_known_id_switch_is_counted_once_by_the_metrics():
    """Two objects over 10 frames, tracked perfectly except that object 1's track changes id at frame 5."""
    boxes = np.array([[10.0, 10.0, 30.0, 40.0], [100.0, 10.0, 130.0, 50.0]])
    frames = [FrameTracks(np.array([1, 2]), boxes, np.array([7 if k < 5 else 9, 8]), boxes) for k in range(10)]
    m = mot_metrics({"seq": frames})
    assert m["IDSW"] == 1 and m["FP"] == 0 and m["FN"] == 0
    assert m["MOTA"] == pytest.approx((20 - 1) / 20)
    assert m["IDF1"] == pytest.approx(15 / 20)  # id 7 covers object 1 for 5 of its 10 frames
    assert 0.5 < m["HOTA"] < 1.0
    assert mot_metrics({"seq": [FrameTracks(np.array([1, 2]), boxes, np.array([7, 8]), boxes)] * 10})["HOTA"] == pytest.approx(1.0)


SMALL_SIM = ["sim.cameras=[{name: front, width: 160, height: 80}]", "sim.town.grid=3", "sim.traffic.vehicles=8", "sim.traffic.pedestrians=6"]


def test_track_verb_end_to_end_on_truth_boxes(tmp_path, capsys):
    args = ["track", f"out={tmp_path}", "boxes=truth", "routes=1", "towns=[6000]", "max_steps=160", "progress=false", "min_height=4"]
    assert main(args + SMALL_SIM) == 0
    result = json.loads((tmp_path / "track.json").read_text())
    truth = result["results"]["truth"]
    assert result["frames"] == 80 and set(result["results"]) == {"truth"}
    assert truth["TP"] > 0 and 0.5 < truth["HOTA"] <= 1.0 and truth["FP"] == 0
    assert truth["ttc_frames"] > 0 and "ttc_alarm_recall" in truth
    assert "truth" in capsys.readouterr().out


@pytest.mark.parametrize("arg, named", [("model=nowhere/missing.onnx", "missing.onnx"), ("trackr.min_hits=2", "trackr")])
def test_track_verb_names_bad_input_in_one_line(tmp_path, capsys, arg, named):
    assert main(["track", f"out={tmp_path}", "boxes=detector", arg]) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and len(err.splitlines()) == 1


class ApproachingCar(AlwaysBrakes):
    """A braking policy whose perception sees one car coming head-on down the ego's lane at 5 m/s."""

    def __init__(self, dt: float) -> None:
        self.x, self.dt = 25.0, dt

    def __call__(self, frame, speed, command, target_point):
        out = super().__call__(frame, speed, command, target_point)
        out["heatmap"], out["box"] = outputs_with([(0, self.x, 0.0, 30)])
        self.x -= 5.0 * self.dt
        return out


def test_the_learned_agent_tracks_what_it_sees_without_changing_its_control():
    from drivestack.planning.agents.creep import CreepConfig
    from drivestack.planning.agents.learned import PolicyAgent
    from drivestack.planning.agents.safety import SafetyConfig
    from drivestack.sim.embedded.backend import EmbeddedSimulator
    from drivestack.sim.interface import RouteSpec
    from drivestack.sim.settings import SimConfig, TownConfig

    config, off = SimConfig(town=TownConfig(grid=3)), CreepConfig(enabled=False)
    counting = SafetyConfig(enabled=False)  # the emergency brake only counts: the tracks must not change the control
    seeing, blind = PolicyAgent(ApproachingCar(config.dt), creep=off, safety=counting), PolicyAgent(AlwaysBrakes(), creep=off, safety=counting)
    seeing.setup(config)
    blind.setup(config)
    with EmbeddedSimulator(config) as sim:
        obs = sim.reset(0, RouteSpec(town=6000, length=100))
        for _ in range(20):
            control = seeing(obs)
            assert control == blind(obs)
            obs = sim.step(control)
    (track,) = seeing.tracks
    x = seeing.driver.x + 5.0 * config.dt  # where the car stood in the last frame
    assert track.id == 1 and not blind.tracks
    np.testing.assert_allclose(track.velocity, [-5.0, 0.0], atol=1.0)
    assert track.ttc == pytest.approx((x - 2.4) / (5.0 + obs.ego.speed), rel=0.15)
    assert (seeing.perceived() != blind.perceived()).any()


def test_ttc_alarms_count_a_car_standing_ahead_raised_and_missed():
    from drivestack.perception.tracking.evaluate import TtcAlarms
    from drivestack.perception.tracking.tracker import Track
    from drivestack.sim.conventions import ActorKind
    from drivestack.sim.interface import ActorState, Box2D, EgoState

    ego = EgoState(Pose(10.0, 5.0, 0.0, yaw=90.0), speed=8.0, acceleration=0.0, extent=(2.45, 1.05, 0.75))
    car = ActorState(7, ActorKind.VEHICLE, Pose(10.0, 5.0 + 10.0 + 2.2, 0.0, yaw=90.0), (2.2, 1.0, 0.8), (0.0, 0.0))  # rear 10 m ahead
    box = Box2D(7, ActorKind.VEHICLE, 14, 140, 60, 180, 100, 1.0)
    path = np.stack([np.arange(1.0, 40.0), np.zeros(39)], axis=1)  # straight ahead, ego frame
    seen = Track(1, 0, np.array([140.0, 60.0, 180.0, 100.0]), 0.9, np.array([10.0, 0.0]), np.zeros(2))
    alarms = TtcAlarms()
    alarms.add([seen], [box], {7: car}, ego, path, CAMERA)  # true TTC (10 - 2.4) / 8 = 0.95 s: alarm, raised
    alarms.add([], [box], {7: car}, ego, path, CAMERA)  # the same frame, nothing tracked: missed
    alarms.add([seen], [box], {7: car}, EgoState(ego.pose, 0.5, 0.0, ego.extent), path, CAMERA)  # standing: not counted
    summary = alarms.summary()
    assert summary["ttc_frames"] == 2 and summary["ttc_alarm_frames_true"] == 2 and summary["ttc_alarm_frames_raised"] == 1
    assert summary["ttc_alarm_recall"] == 0.5 and summary["ttc_alarm_precision"] == 1.0
    assert summary["ttc_pairs_near"] == 1 and summary["ttc_mae_near"] == pytest.approx(0.0, abs=0.05)
