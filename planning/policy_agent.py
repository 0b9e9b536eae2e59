"""The learned agent: camera frame -> perception -> policy -> PID controller -> VehicleControl.

It reads only the camera image, the ego speed, the command and the speed limit of the observation.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from planning.agent import Agent, AgentDebug
from planning.controllers import ControllerConfig, WaypointController
from sim.interface import Observation, VehicleControl
from sim.settings import SimConfig

POLICY_BUILDER = "planning.driving_model:build_policy_training"


class ModelMismatchError(ValueError):
    """A model file that does not fit the simulator config (camera size, kind of model)."""


def load_driving_model(path: str | Path):
    """The DrivingModel of a policy checkpoint, in eval mode, and the checkpoint's meta."""
    from perception.training.checkpoint import load_model

    model, checkpoint = load_model(path)
    if checkpoint["model"]["builder"] != POLICY_BUILDER:
        raise ModelMismatchError(f"{path}: not a driving-policy checkpoint (built by {checkpoint['model']['builder']}, "
                                 f"expected {POLICY_BUILDER}); train one with `drivestack train-policy`")  # fmt: skip
    return model.model.eval(), checkpoint.get("meta", {})


def check_camera(meta: dict, sim_config: SimConfig, camera: str, source: str) -> None:
    cams = {c.name: c for c in sim_config.cameras}
    if camera not in cams:
        raise ModelMismatchError(f"the agent needs camera '{camera}', the simulator config has {sorted(cams)}")
    size = meta.get("image_size")
    have = [cams[camera].height, cams[camera].width]
    if size is not None and list(size) != have:
        raise ModelMismatchError(f"{source} was trained on {size[0]}x{size[1]} (HxW) frames, but camera '{camera}' "
                                 f"is {have[0]}x{have[1]} in the simulator config")  # fmt: skip


class PolicyAgent(Agent):
    needs_cameras = True

    def __init__(self, checkpoint: str | Path, camera: str = "front", controller: ControllerConfig | None = None,
                 brake_threshold: float = 0.5, threads: int = 0):  # fmt: skip
        super().__init__()
        self.checkpoint, self.camera = str(checkpoint), camera
        self.model, self.meta = load_driving_model(checkpoint)
        if threads:
            torch.set_num_threads(threads)
        self.controller_config = controller or ControllerConfig()
        self.brake_threshold = brake_threshold

    def setup(self, sim_config: SimConfig) -> None:
        check_camera(self.meta, sim_config, self.camera, self.checkpoint)
        self.controller = WaypointController(self.controller_config, sim_config.dt)

    @torch.no_grad()
    def run_step(self, obs: Observation) -> VehicleControl:
        t0 = time.perf_counter()
        frame = obs.cameras[self.camera].rgb
        image = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).unsqueeze(0)
        speed = torch.tensor([obs.ego.speed], dtype=torch.float32)
        command = torch.tensor([int(obs.command)])
        t1 = time.perf_counter()
        out = self.model(image, speed, command)
        t2 = time.perf_counter()
        path = out["path"][0].numpy().astype(np.float64)
        brake = float(torch.sigmoid(out["brake"][0])) > self.brake_threshold
        target = 0.0 if brake else min(float(out["target_speed"][0]), obs.speed_limit)
        control = self.controller.control(path, target, obs.ego.speed)
        t3 = time.perf_counter()
        self.debug = AgentDebug(waypoints=path, target_speed=target, segmentation=out["seg"][0].argmax(0).numpy().astype(np.uint8),
                                timings_ms={"preprocess": 1e3 * (t1 - t0), "model": 1e3 * (t2 - t1), "control": 1e3 * (t3 - t2)})  # fmt: skip
        return control
