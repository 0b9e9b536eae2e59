"""The learned agent: camera frame -> perception -> policy -> PID controller -> VehicleControl.

The network runs in PyTorch (:class:`TorchDriver`, a driving-model checkpoint) or in ONNX Runtime
(:class:`OnnxDriver`, the fused graph from ``drivestack export``); one flag (``engine``) switches. The agent
reads only the camera image, the ego speed, the command, the target point (the next point of the sparse
route plan, as a leaderboard agent gets it) and the speed limit of the observation.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from drivestack.common.errors import InputError
from drivestack.perception.classes import classes_from_meta
from drivestack.perception.postprocess import postprocess
from drivestack.perception.tracking.detections import tracked_detections
from drivestack.perception.tracking.tracker import Track, Tracker, TrackerConfig, ego_motion
from drivestack.perception.tracking.ttc import tracks_time_to_collision
from drivestack.perception.visualize import draw_tracks
from drivestack.planning.agents.creep import CreepConfig, CreepMonitor
from drivestack.planning.agents.gates import gate_detections
from drivestack.planning.agents.red_light import RedLightStop
from drivestack.planning.agents.safety import EmergencyBrake, SafetyConfig
from drivestack.planning.control import ControllerConfig, WaypointController
from drivestack.planning.policy.driving_model import INPUTS
from drivestack.sim.agent import Agent, AgentDebug
from drivestack.sim.interface import Observation, VehicleControl
from drivestack.sim.settings import SimConfig
from drivestack.sim.visualize import box_color

BRAKE_THRESHOLD = 0.5  # brake probability above which the learned agent's target speed is 0


class ModelMismatchError(InputError):
    """A model file that does not fit the simulator config (camera size, kind of model)."""


def load_driving_model(path: str | Path):
    """The DrivingModel of a policy checkpoint, in eval mode, and the checkpoint's meta."""
    from drivestack.common.checkpoint import builder_name, load_model

    model, checkpoint = load_model(path)
    if builder_name(checkpoint["model"]) != "driving":
        raise ModelMismatchError(f"{path}: not a driving-policy checkpoint (a '{builder_name(checkpoint['model'])}' model); "
                                 "train one with `drivestack train-policy`")  # fmt: skip
    return model.model.eval(), checkpoint.get("meta", {})


class TorchDriver:
    """The driving model in PyTorch: (frame HxWx3 uint8, speed, command, target point (2,)) -> numpy outputs."""

    def __init__(self, checkpoint: str | Path, threads: int = 0, perception: str | Path | None = None):
        self.source = str(checkpoint)
        self.model, self.meta = load_driving_model(checkpoint)
        if perception:  # swap in other perception weights (e.g. to drive a ground-truth-trained policy on predictions)
            from drivestack.common.checkpoint import load_checkpoint

            state = load_checkpoint(perception)
            self.model.perception.load_state_dict(state["state_dict"])
            self.source += f" + perception {perception}"
        if threads:
            torch.set_num_threads(threads)

    @torch.no_grad()
    def __call__(self, frame: np.ndarray, speed: float, command: int, target_point: np.ndarray) -> dict[str, np.ndarray]:
        image = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).unsqueeze(0)
        target = torch.as_tensor(np.asarray(target_point, np.float32).reshape(1, 2))
        out = self.model(image, torch.tensor([speed], dtype=torch.float32), torch.tensor([command]), target)
        return {k: v.numpy() for k, v in out.items()}


class OnnxDriver:
    """The fused ONNX graph in ONNX Runtime (see :mod:`drivestack.planning.deploy.runtime`)."""

    def __init__(self, path: str | Path, engine_config=None):
        from drivestack.planning.deploy.runtime import OnnxEngine

        self.source = str(path)
        self.engine = OnnxEngine(path, engine_config, expect={"kind": "fused", "inputs": INPUTS})
        self.meta = self.engine.meta

    def __call__(self, frame: np.ndarray, speed: float, command: int, target_point: np.ndarray) -> dict[str, np.ndarray]:
        image = np.ascontiguousarray(frame.transpose(2, 0, 1))[None]
        return self.engine({"image": image, "speed": np.array([speed], np.float32), "command": np.array([command], np.int64),
                            "target_point": np.asarray(target_point, np.float32).reshape(1, 2)})  # fmt: skip


def check_camera(meta: dict, sim_config: SimConfig, camera: str, source: str) -> None:
    cams = {c.name: c for c in sim_config.cameras}
    if camera not in cams:
        raise ModelMismatchError(f"the agent needs camera '{camera}', the simulator config has {sorted(cams)}")
    size = meta.get("image_size")
    have = [cams[camera].height, cams[camera].width]
    if size is not None and list(size) != have:
        raise ModelMismatchError(f"{source} was trained on {size[0]}x{size[1]} (HxW) frames, but camera '{camera}' "
                                 f"is {have[0]}x{have[1]} in the simulator config")  # fmt: skip


def brake_probability(out: dict[str, np.ndarray]) -> float:
    """The policy's brake output of the first sample, as a probability (the network gives a logit)."""
    return 1.0 / (1.0 + float(np.exp(-float(out["brake"][0]))))


class PolicyAgent(Agent):
    """The learned agent. It drives off slowly after a long stop when perception sees no red light and no
    obstacle ahead (``creep``, :mod:`drivestack.planning.agents.creep`; default on, as ``drivestack drive``
    does; ``CreepConfig(enabled=False)`` turns it off). Each step it tracks the vehicles and pedestrians its
    network detects (``tracks``: ids, ground velocities, time to collision along its path;
    :mod:`drivestack.perception.tracking`), drawn on the drive video, and brakes fully when one of them is
    about to collide (:mod:`drivestack.planning.agents.safety`; ``SafetyConfig(enabled=False)`` only counts);
    it stops for the red lights its network detects when the policy does not
    (:mod:`drivestack.planning.agents.red_light`; ``RedLightConfig(enabled=False)`` only counts).
    The tracker's ego-motion compensation reads the speed and the compass (the pose's yaw)."""

    def __init__(self, driver: TorchDriver | OnnxDriver, camera: str = "front", controller: ControllerConfig | None = None,
                 brake_threshold: float = BRAKE_THRESHOLD, creep: CreepConfig | None = None, tracker: TrackerConfig | None = None,
                 safety: SafetyConfig | None = None):  # fmt: skip
        super().__init__()
        self.driver, self.camera = driver, camera
        self.controller_config = controller or ControllerConfig()
        self.brake_threshold = brake_threshold
        self.creep_config = CreepConfig() if creep is None else creep
        self.tracker_config = tracker or TrackerConfig()
        self.safety_config = safety or SafetyConfig()
        self.classes = classes_from_meta(driver.meta, driver.source)

    def sensors(self) -> list[str]:
        return [self.camera]

    def reads_truth(self) -> bool:
        return False  # its network reads the RGB image alone

    def setup(self, sim_config: SimConfig) -> None:
        check_camera(self.driver.meta, sim_config, self.camera, self.driver.source)
        self.controller = WaypointController(self.controller_config, sim_config.dt)
        self.camera_config = next(c for c in sim_config.cameras if c.name == self.camera)
        self.creep = None
        if self.creep_config.enabled:
            self.creep = CreepMonitor(self.creep_config, self.camera_config, self.classes, sim_config.dt)
        self.tracker = Tracker(self.tracker_config, self.camera_config, sim_config.dt)
        self.safety = EmergencyBrake(self.safety_config)
        self.red_light = RedLightStop(self.safety_config.red_light, self.camera_config, self.classes, sim_config.dt)
        self.tracks: list[Track] = []
        self._yaw: float | None = None
        self.last: tuple[np.ndarray, dict[str, np.ndarray]] | None = None

    def run_step(self, obs: Observation) -> VehicleControl:
        t0 = time.perf_counter()
        frame = obs.cameras[self.camera].rgb
        out = self.driver(frame, obs.ego.speed, int(obs.command), obs.target_point)
        self.last = (frame, out)
        t1 = time.perf_counter()
        path = out["path"][0].astype(np.float64)
        brake = brake_probability(out)
        target = 0.0 if brake > self.brake_threshold else min(float(out["target_speed"][0]), obs.speed_limit)
        creeping = self.creep is not None and self.creep.update(obs.ego.speed, out["heatmap"], out["box"])
        if creeping:
            target = min(max(target, self.creep.config.speed), obs.speed_limit)
        policy_target = target
        lights = gate_detections(out["heatmap"], out["box"], self.camera_config.width, self.safety_config.red_light.score)
        target = self.red_light.update(*lights, obs.ego.speed, target)
        control = self.controller.control(path, target, obs.ego.speed)
        t2 = time.perf_counter()
        self.tracks = self._track(obs, out, path)
        emergency = self.safety.update(self.tracks, obs.ego.speed)
        if emergency:
            control = VehicleControl(throttle=0.0, steer=control.steer, brake=1.0)
        t3 = time.perf_counter()
        self.debug = AgentDebug(waypoints=path, target_speed=target, brake_probability=brake, creeping=creeping,
                                emergency_brake=emergency, red_light_stop=target < policy_target,
                                timings_ms={"model": 1e3 * (t1 - t0), "control": 1e3 * (t2 - t1), "track": 1e3 * (t3 - t2)})  # fmt: skip
        return control

    def stats(self) -> dict[str, float | int | None]:
        """The safety layers' counts on this route (:meth:`EmergencyBrake.stats`, :meth:`RedLightStop.stats`)."""
        return {**self.safety.stats(), **self.red_light.stats()}

    def _track(self, obs: Observation, out: dict[str, np.ndarray], path: np.ndarray) -> list[Track]:
        """This frame's tracks, each with its time to collision along the planned ``path``."""
        yaw = obs.ego.pose.yaw
        motion = (0.0, 0.0, 0.0) if self._yaw is None else ego_motion(obs.ego.speed, self.tracker.dt, self._yaw, yaw)
        self._yaw = yaw
        detections = tracked_detections(out, self.classes, self.camera_config.width, self.tracker_config.low_score)
        tracks = self.tracker.update(*detections, motion=motion)
        for track, seconds in zip(tracks, tracks_time_to_collision(tracks, path, obs.ego.speed)):
            track.ttc = float(seconds)
        return tracks

    def perceived(self) -> np.ndarray | None:
        """The last frame with the network's segmentation overlaid and its detections boxed, each in the drive
        video's colour of its kind (:func:`drivestack.sim.visualize.box_color`), so one legend serves both, and
        its tracks' ids, speeds and velocity arrows (:func:`drivestack.perception.visualize.draw_tracks`)."""
        if self.last is None:
            return None
        frame, out = self.last
        classes = replace(self.classes, det=[replace(c, color=box_color(c.kind, c.light_state)) for c in self.classes.det])
        return draw_tracks(postprocess(out)[0].plot(frame, classes), self.tracks, self.camera_config)


def make_driver(engine: str, model: str, onnx_model: str, engine_config=None, perception: str = "") -> TorchDriver | OnnxDriver:
    """``engine``: torch (a driving-model checkpoint, optionally with other perception weights) or onnx (the fused graph)."""
    if engine == "torch":
        return TorchDriver(model, perception=perception or None)
    if engine == "onnx":
        return OnnxDriver(onnx_model, engine_config)
    raise ValueError(f"engine must be torch or onnx, got '{engine}'")
