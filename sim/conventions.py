"""CARLA's conventions shared by every backend: semantic tags, palette, RoadOption, light states.

Numbers follow CARLA 0.9.14+ (``carla.CityObjectLabel``), agents' ``RoadOption`` and
``carla.TrafficLightState``.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Tag(IntEnum):
    """CARLA 0.9.14+ semantic tag ids (``carla.CityObjectLabel``)."""

    UNLABELED = 0
    ROADS = 1
    SIDEWALKS = 2
    BUILDINGS = 3
    WALLS = 4
    FENCES = 5
    POLES = 6
    TRAFFIC_LIGHT = 7
    TRAFFIC_SIGNS = 8
    VEGETATION = 9
    TERRAIN = 10
    SKY = 11
    PEDESTRIANS = 12
    RIDER = 13
    CAR = 14
    TRUCK = 15
    BUS = 16
    TRAIN = 17
    MOTORCYCLE = 18
    BICYCLE = 19
    STATIC = 20
    DYNAMIC = 21
    OTHER = 22
    WATER = 23
    ROAD_LINES = 24
    GROUND = 25
    BRIDGE = 26
    RAIL_TRACK = 27
    GUARD_RAIL = 28


# CityScapes palette as CARLA uses it, RGB, indexed by tag id.
PALETTE = np.array(
    [
        (0, 0, 0), (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180),
        (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230),
        (119, 11, 32), (110, 190, 160), (170, 120, 50), (55, 90, 80), (45, 60, 150), (157, 234, 50),
        (81, 0, 81), (150, 100, 100), (230, 150, 140), (180, 165, 180),
    ],
    dtype=np.uint8,
)

VEHICLE_TAGS = (Tag.CAR, Tag.TRUCK, Tag.BUS, Tag.MOTORCYCLE, Tag.BICYCLE)


def colorize(semantic: np.ndarray) -> np.ndarray:
    """Map a HxW array of tag ids to an RGB image with CARLA's CityScapes palette."""
    if semantic.max(initial=0) >= len(PALETTE):
        raise ValueError(f"semantic ids must be < {len(PALETTE)}, got max {int(semantic.max())}")
    return PALETTE[semantic]


class RoadOption(IntEnum):
    """High-level command, as in CARLA's ``agents.navigation.local_planner.RoadOption``."""

    VOID = -1
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    LANEFOLLOW = 4
    CHANGELANELEFT = 5
    CHANGELANERIGHT = 6


class TrafficLightState(IntEnum):
    """``carla.TrafficLightState`` values."""

    RED = 0
    YELLOW = 1
    GREEN = 2
    OFF = 3
    UNKNOWN = 4


class ActorKind(IntEnum):
    """What an actor (or a collision partner) is."""

    VEHICLE = 0
    PEDESTRIAN = 1
    TRAFFIC_LIGHT = 2
    STATIC = 3
