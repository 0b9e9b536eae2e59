"""The model set shipped in models/ loads, describes itself and drives (so `drivestack drive` works after install)."""

from pathlib import Path

import numpy as np
from drivestack.planning.agents.learned import OnnxDriver, PolicyAgent, TorchDriver
from drivestack.planning.deploy.runtime import EngineConfig
from drivestack.planning.evaluation.drive import DriveConfig
from drivestack.sim.interface import RouteSpec
from drivestack.sim.settings import SimConfig

MODELS = Path(__file__).resolve().parent.parent / "models"


def test_shipped_files_are_the_drive_defaults_and_small():
    config = DriveConfig()
    for name in (config.model, config.onnx_model):
        assert (MODELS.parent / name).is_file(), name
    assert sum(f.stat().st_size for f in MODELS.iterdir()) < 20e6


def test_shipped_model_follows_the_route_without_infractions():
    from drivestack.sim.embedded.backend import EmbeddedSimulator

    config = SimConfig()
    agent = PolicyAgent(TorchDriver(MODELS / "driving.pt"))
    agent.setup(config)
    with EmbeddedSimulator(config) as sim:
        obs = sim.reset(100, RouteSpec(town=2000, length=250))
        for _ in range(120):
            obs = sim.step(agent(obs))
            assert not obs.events.collisions and not obs.events.off_road
    assert obs.route_progress >= 10.0, "the shipped model should drive off along its route"
    frame, _ = agent.last
    picture = agent.perceived()  # what the drive video shows of the network's view: segmentation overlaid
    assert picture.shape == frame.shape and np.abs(picture.astype(int) - frame).mean() > 5


def test_shipped_onnx_graph_agrees_with_the_checkpoint():
    torch_driver = TorchDriver(MODELS / "driving.pt")
    onnx_driver = OnnxDriver(MODELS / "driving_fused_int8.onnx", EngineConfig(warmup=0))
    assert onnx_driver.meta["kind"] == "fused" and onnx_driver.meta["image_size"] == [160, 320]
    from drivestack.sim.embedded.backend import EmbeddedSimulator

    with EmbeddedSimulator(SimConfig()) as sim:  # a camera frame, not noise: INT8 is calibrated on such frames
        frame = sim.reset(100, RouteSpec(town=2000, length=250)).cameras["front"].rgb
    target = np.array([30.0, 0.0], np.float32)
    a, b = torch_driver(frame, 5.0, 4, target), onnx_driver(frame, 5.0, 4, target)
    assert np.abs(a["path"] - b["path"]).max() < 1.0
    assert (a["seg"].argmax(1) == b["seg"].argmax(1)).mean() > 0.8
