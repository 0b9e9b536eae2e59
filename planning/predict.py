"""The driving model as a Python object: ``drivestack.load()`` gives a :class:`Model` whose ``predict``
turns one camera frame (and the speed, the route command and the target point) into :class:`Results` that
convert (``boxes``, ``segmentation``, ``path``, ``target_speed``, ``to_dict()``) and draw themselves
(``plot()``); ``Model.agent()`` is the learned agent that drives with it."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from drivestack.common.errors import InputError
from drivestack.common.paths import resolve
from drivestack.perception.classes import ClassMap, classes_from_meta
from drivestack.perception.postprocess import Prediction, postprocess
from drivestack.perception.visualize import draw_policy
from drivestack.planning.agents.creep import CreepConfig
from drivestack.planning.agents.learned import BRAKE_THRESHOLD, OnnxDriver, PolicyAgent, TorchDriver, brake_probability
from drivestack.planning.agents.safety import SafetyConfig
from drivestack.planning.deploy.runtime import EngineConfig
from drivestack.sim.conventions import RoadOption

SHIPPED_MODEL = "models/driving_fused_int8.onnx"  # the default path is the best measured one (docs/results.md)


@dataclass
class Results:
    """What the model made of one frame: raw network outputs plus lazy, converted views of them."""

    image: np.ndarray  # (H, W, 3) uint8 RGB, the frame it saw
    outputs: dict[str, np.ndarray]  # the network's outputs, batch of one
    classes: ClassMap
    brake_threshold: float = BRAKE_THRESHOLD

    @cached_property
    def prediction(self) -> Prediction:
        return postprocess(self.outputs)[0]

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) detected boxes, x1 y1 x2 y2 in pixels."""
        return self.prediction.boxes.numpy()

    @property
    def scores(self) -> np.ndarray:
        return self.prediction.scores.numpy()

    @property
    def labels(self) -> list[str]:
        """The class name of each box."""
        return [self.classes.det[int(i)].name for i in self.prediction.labels]

    @property
    def segmentation(self) -> np.ndarray:
        """(H, W) uint8 class ids; their names are ``segmentation_classes``."""
        return self.prediction.seg.numpy().astype(np.uint8)

    @property
    def segmentation_classes(self) -> list[str]:
        return [c.name for c in self.classes.seg]

    @property
    def path(self) -> np.ndarray:
        """(K, 2) planned path points, metres in the ego frame (x forward, y right)."""
        return self.outputs["path"][0].astype(np.float64)

    @property
    def brake(self) -> float:
        """Brake probability, 0..1."""
        return brake_probability(self.outputs)

    @property
    def target_speed(self) -> float:
        """m/s the policy asks for; 0 when it brakes."""
        return 0.0 if self.brake > self.brake_threshold else float(self.outputs["target_speed"][0])

    def to_dict(self) -> dict:
        """Plain JSON-ready data."""
        return {"boxes": [{"label": label, "score": round(float(s), 4), "xyxy": [round(float(v), 1) for v in box]}
                          for label, s, box in zip(self.labels, self.scores, self.boxes)],
                "path": self.path.round(3).tolist(), "target_speed": round(self.target_speed, 3),
                "brake": round(self.brake, 4), "segmentation_classes": self.segmentation_classes}  # fmt: skip

    def plot(self) -> np.ndarray:
        """The frame with the segmentation overlaid, the boxes and the planned path (HxWx3 RGB)."""
        image = self.prediction.plot(self.image, self.classes)
        policy = {"waypoints": self.path, "waypoints_valid": np.ones(len(self.path), bool), "command": int(RoadOption.LANEFOLLOW),
                  "speed": self.target_speed, "control": np.zeros(3)}  # fmt: skip
        return draw_policy(image, policy)


class Model:
    """A driving model in PyTorch (a checkpoint) or ONNX Runtime (a fused graph from ``drivestack export``)."""

    def __init__(self, driver: TorchDriver | OnnxDriver, path: Path, perception: Path | None = None,
                 engine_config: EngineConfig | None = None) -> None:  # fmt: skip
        self.driver, self.path, self.perception, self.engine_config = driver, path, perception, engine_config
        self.classes = classes_from_meta(driver.meta, driver.source)

    @property
    def engine(self) -> str:
        return "onnx" if isinstance(self.driver, OnnxDriver) else "torch"

    @property
    def source(self) -> str:
        return self.driver.source

    def predict(self, rgb: np.ndarray, speed: float = 0.0, command: RoadOption | int = RoadOption.LANEFOLLOW,
                target_point: tuple[float, float] = (20.0, 0.0)) -> Results:  # fmt: skip
        """One frame (H, W, 3 uint8 RGB at the model's image size), the ego speed (m/s), the route command and
        the next route point (metres, ego frame)."""
        size = self.driver.meta.get("image_size")
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"predict: rgb must be an HxWx3 uint8 image, got {rgb.dtype} {rgb.shape}")
        if size is not None and list(rgb.shape[:2]) != list(size):
            raise ValueError(f"predict: the model takes {size[0]}x{size[1]} (HxW) frames, got {rgb.shape[0]}x{rgb.shape[1]}")
        outputs = self.driver(rgb, float(speed), int(command), np.asarray(target_point, np.float32))
        return Results(rgb, outputs, self.classes)

    def agent(self, camera: str = "front", creep: CreepConfig | None = None, safety: SafetyConfig | None = None) -> PolicyAgent:
        """The learned agent driving with this model, with the command line's defaults (creeping and emergency brake on)."""
        return PolicyAgent(self.driver, camera, creep=creep, safety=safety)


def load(path: str | Path = SHIPPED_MODEL, engine_config: EngineConfig | None = None, perception: str | Path | None = None) -> Model:
    """The driving model in ``path``: a PyTorch checkpoint (``drivestack train-policy``; the shipped one by
    default) or a fused ONNX graph (``drivestack export``), told apart by their contents. ``perception``:
    a perception checkpoint whose weights replace the model's (PyTorch only)."""
    path = resolve(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    if zipfile.is_zipfile(path):  # torch.save writes a zip archive; an ONNX file is a protobuf
        perception = resolve(perception) if perception else None
        return Model(TorchDriver(path, perception=perception), path, perception)
    if perception:
        raise InputError(f"{path}: perception weights can only replace those of a PyTorch checkpoint")
    return Model(OnnxDriver(path, engine_config), path, engine_config=engine_config)
