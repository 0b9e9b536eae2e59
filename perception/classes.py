"""Training classes: CARLA semantic tags -> segmentation classes, recorded boxes -> detection classes.

The map is a config dataclass (the ``classes:`` section of ``configs/perception.yaml``). Segmentation
classes list the CARLA tag ids (``sim.conventions.Tag``) they cover; tags in no class become
``ignore_index``. Detection classes select boxes by ``kind`` (``sim.conventions.ActorKind``) and, for
traffic lights, ``light_state`` (``sim.conventions.TrafficLightState``): the light's state is its class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from drivestack.common.config import config_from_dict
from drivestack.sim.conventions import ActorKind, Tag, TrafficLightState

IGNORE_INDEX = 255  # segmentation label of pixels that no class covers (and of padding)


@dataclass
class SegClass:
    """A segmentation class: its name, the CARLA tags it covers and its display colour (RGB)."""

    name: str
    tags: list[int]
    color: tuple[int, int, int]

    def __post_init__(self) -> None:
        self.tags = [int(t) for t in self.tags]  # plain ints (not IntEnum) so the config dumps to YAML/JSON


@dataclass
class DetClass:
    """A detection class: boxes of ``kind`` (and, when set, of traffic-light ``light_state``)."""

    name: str
    kind: int
    light_state: int | None
    color: tuple[int, int, int]

    def __post_init__(self) -> None:
        self.kind = int(self.kind)
        self.light_state = None if self.light_state is None else int(self.light_state)


def _default_seg() -> list[SegClass]:
    t = Tag
    return [
        SegClass("road", [t.ROADS], (128, 64, 128)),
        SegClass("road_line", [t.ROAD_LINES], (157, 234, 50)),
        SegClass("sidewalk", [t.SIDEWALKS], (244, 35, 232)),
        SegClass("vehicle", [t.CAR, t.TRUCK, t.BUS, t.TRAIN, t.MOTORCYCLE, t.BICYCLE], (0, 0, 142)),
        SegClass("pedestrian", [t.PEDESTRIANS, t.RIDER], (220, 20, 60)),
        SegClass("traffic_light", [t.TRAFFIC_LIGHT], (250, 170, 30)),
        SegClass("building", [t.BUILDINGS], (70, 70, 70)),
        SegClass("vegetation_terrain", [t.VEGETATION, t.TERRAIN], (107, 142, 35)),
        SegClass("sky", [t.SKY], (70, 130, 180)),
        SegClass("other", [t.UNLABELED, t.WALLS, t.FENCES, t.POLES, t.TRAFFIC_SIGNS, t.STATIC, t.DYNAMIC, t.OTHER,
                           t.WATER, t.GROUND, t.BRIDGE, t.RAIL_TRACK, t.GUARD_RAIL], (190, 153, 153)),
    ]  # fmt: skip


def _default_det() -> list[DetClass]:
    light, s = ActorKind.TRAFFIC_LIGHT, TrafficLightState
    return [
        DetClass("vehicle", ActorKind.VEHICLE, None, (0, 90, 255)),
        DetClass("pedestrian", ActorKind.PEDESTRIAN, None, (255, 40, 80)),
        DetClass("light_red", light, s.RED, (255, 0, 0)),
        DetClass("light_yellow", light, s.YELLOW, (255, 220, 0)),
        DetClass("light_green", light, s.GREEN, (0, 230, 0)),
    ]


@dataclass
class ClassMap:
    """Segmentation and detection classes (order = class index)."""

    seg: list[SegClass] = field(default_factory=_default_seg)  # segmentation classes
    det: list[DetClass] = field(default_factory=_default_det)  # detection classes

    def __post_init__(self) -> None:
        seen: dict[int, str] = {}
        for c in self.seg:
            for tag in c.tags:
                if not 0 <= tag < IGNORE_INDEX:
                    raise ValueError(f"seg class '{c.name}': tag {tag} must be in 0..{IGNORE_INDEX - 1}")
                if tag in seen:
                    raise ValueError(f"tag {tag} is in both '{seen[tag]}' and '{c.name}'; each tag needs one class")
                seen[tag] = c.name
        keys = [(c.kind, c.light_state) for c in self.det]
        if len(set(keys)) != len(keys):
            raise ValueError(f"detection classes must select distinct (kind, light_state), got {keys}")
        if not self.seg or not self.det:
            raise ValueError("need at least one segmentation and one detection class")

    @property
    def seg_names(self) -> list[str]:
        return [c.name for c in self.seg]

    @property
    def det_names(self) -> list[str]:
        return [c.name for c in self.det]

    def seg_lut(self) -> np.ndarray:
        """256-entry uint8 lookup table: CARLA tag id -> class index (``IGNORE_INDEX`` if unmapped)."""
        lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        for index, c in enumerate(self.seg):
            lut[c.tags] = index
        return lut

    def seg_palette(self) -> np.ndarray:
        """(num classes + 1)x3 uint8 RGB; the last row (black) is for ignored pixels."""
        return np.array([c.color for c in self.seg] + [(0, 0, 0)], dtype=np.uint8)

    def det_palette(self) -> np.ndarray:
        return np.array([c.color for c in self.det], dtype=np.uint8)

    def det_class(self, kind: int, light_state: int | None) -> int | None:
        """Detection class index of a recorded box, or None if no class takes it."""
        for index, c in enumerate(self.det):
            if c.kind == kind and (c.light_state is None or c.light_state == light_state):
                return index
        return None

    def colorize(self, mask: np.ndarray) -> np.ndarray:
        """HxW class indices (``IGNORE_INDEX`` allowed) -> HxWx3 RGB."""
        palette = self.seg_palette()
        return palette[np.minimum(mask, len(palette) - 1)]


def classes_from_meta(meta: dict, source: str) -> ClassMap:
    """The class map a model was trained with, from its checkpoint or ONNX metadata (``seg_classes``,
    ``det_classes``; the default map for models that do not say); ``source`` names the file in errors."""
    if "det_classes" not in meta:
        return ClassMap()
    return config_from_dict(ClassMap, {"seg": meta["seg_classes"], "det": meta["det_classes"]}, source)
