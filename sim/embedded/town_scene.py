"""What a town looks like: the painted ground map (roads, markings, crosswalks, sidewalks, wear) and the
static props (buildings, trees, poles, traffic-light poles) as boxes for the renderer and for collisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from drivestack.sim.conventions import Tag
from drivestack.sim.embedded.render import BoxInstances, GroundMap
from drivestack.sim.embedded.town import CROSSWALK_WIDTH, STOP_LINE_SETBACK, Town
from drivestack.sim.geometry import right_normals

SHIFT = 4  # fixed-point bits for cv2 drawing (sub-texel precision)
LINE_WIDTH = 0.15
LIGHT_POLE_HEIGHT = 3.2
HOUSING_HALF = (0.18, 0.2, 0.5)  # half extents of a light housing (depth, width, height)
LAMP_HALF = 0.11  # half size of a lamp
# Far-side heads, seen from 25-35 m, are larger (30 cm lenses, as far-side signals use) and higher.
FAR_POLE_HEIGHT = 4.0
FAR_HOUSING_HALF = (0.25, 0.3, 0.8)
FAR_LAMP_HALF = 0.2


@dataclass
class StaticObstacles:
    """2D footprints of static props for collision checks: centre, yaw (rad), half length/width."""

    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    hl: np.ndarray
    hw: np.ndarray


LAMP_COLORS = np.array([(255, 40, 30), (255, 190, 20), (40, 255, 90)], dtype=np.uint8)
LAMP_OFF = np.array((35, 35, 35), dtype=np.uint8)


class TownScene:
    """Ground map and props of a town; deterministic from the town seed."""

    def __init__(self, town: Town, wear_range: tuple[float, float] = (0.0, 0.6)):
        self.town = town
        c = town.config
        self.rng = np.random.default_rng(c.seed + 7919)
        x0, y0, x1, y1 = town.bounds
        self.res = c.map_resolution
        self.origin = np.array([x0, y0])
        w, h = int(math.ceil((x1 - x0) / self.res)), int(math.ceil((y1 - y0) / self.res))
        self.rgb = np.empty((h, w, 3), dtype=np.uint8)
        self.tags = np.full((h, w), Tag.TERRAIN, dtype=np.uint8)
        self._paint_terrain()
        self._paint_surfaces()
        self._paint_wear(wear_range)
        self._paint_markings()
        self.ground = GroundMap(rgb=self.rgb, tags=self.tags, x0=x0, y0=y0, resolution=self.res)
        self._occupied = cv2.dilate((self.tags != Tag.TERRAIN).astype(np.uint8), np.ones((15, 15), np.uint8))
        parts: list[BoxInstances] = []
        footprints: list[tuple] = []
        parts.append(self._traffic_lights(footprints))
        parts.append(self._street_poles(footprints))
        parts.append(self._trees(footprints))
        parts.append(self._buildings(footprints))
        self.boxes = BoxInstances.concat(parts)
        # Lights come first, 5 rows each (pole, housing, red, yellow, green lamps).
        self.lamp_rows = np.arange(len(town.lights) * 5).reshape(-1, 5)[:, 2:]
        self.light_xy = np.array([(l.x, l.y) for l in town.lights]).reshape(-1, 2)
        self.light_facing = np.array([(math.cos(l.yaw), math.sin(l.yaw)) for l in town.lights]).reshape(-1, 2)
        f = np.array(footprints, dtype=np.float64).reshape(-1, 5)
        self.obstacles = StaticObstacles(*f.T)

    # -- painting ---------------------------------------------------------------------------------
    def _px(self, points: np.ndarray) -> np.ndarray:
        return np.round((np.asarray(points) - self.origin) / self.res * (1 << SHIFT)).astype(np.int32)

    def _fill(self, polygon: np.ndarray, color, tag: int | None) -> None:
        pts = [self._px(polygon)]
        cv2.fillPoly(self.rgb, pts, tuple(int(v) for v in color), cv2.LINE_AA, SHIFT)
        if tag is not None:
            cv2.fillPoly(self.tags, pts, int(tag), cv2.LINE_8, SHIFT)

    def _line(self, points: np.ndarray, width: float, color, tag: int | None) -> None:
        thickness = max(1, int(round(width / self.res)))
        pts = [self._px(points)]
        cv2.polylines(self.rgb, pts, False, tuple(int(v) for v in color), thickness, cv2.LINE_AA, SHIFT)
        if tag is not None:
            cv2.polylines(self.tags, pts, False, int(tag), thickness, cv2.LINE_8, SHIFT)

    def _paint_terrain(self) -> None:
        h, w = self.tags.shape
        base = np.array((92, 128, 58), dtype=np.float32) * self.rng.uniform(0.85, 1.15, 3)
        noise = cv2.resize(self.rng.normal(0, 1, (h // 16 + 1, w // 16 + 1)).astype(np.float32), (w, h))
        fine = self.rng.normal(0, 6, (h, w)).astype(np.float32)
        shade = noise * 12 + fine
        self.rgb[:] = np.clip(base[None, None, :] + shade[..., None], 0, 255).astype(np.uint8)

    def _corridor(self, center: np.ndarray, half_width: float) -> np.ndarray:
        n = right_normals(center)
        return np.concatenate([center + n * half_width, (center - n * half_width)[::-1]])

    def _junction_polygon(self, jid: int, half_width_extra: float) -> np.ndarray:
        corners = []
        for rid in self.town.junctions[jid].roads:
            road = self.town.roads[rid]
            center = road.center if road.a == jid else road.center[::-1]
            n = right_normals(center[:2])[0]
            hw = road.half_width + half_width_extra
            corners += [center[0] + n * hw, center[0] - n * hw]
        return cv2.convexHull(np.array(corners, dtype=np.float32)).reshape(-1, 2)

    def _paint_surfaces(self) -> None:
        town, sw = self.town, self.town.config.sidewalk_width
        walk = np.array((180, 178, 172)) * self.rng.uniform(0.85, 1.1)
        road_gray = self.rng.uniform(55, 95)
        road = np.array((road_gray, road_gray, road_gray * 1.02))
        for r in town.roads:
            self._fill(self._corridor(r.center, r.half_width + sw), walk, Tag.SIDEWALKS)
        for j in town.junctions:
            self._fill(self._junction_polygon(j.id, sw), walk, Tag.SIDEWALKS)
        for r in town.roads:
            self._fill(self._corridor(r.center, r.half_width), road, Tag.ROADS)
        for j in town.junctions:
            self._fill(self._junction_polygon(j.id, 0.0), road, Tag.ROADS)
        for lane in town.lanes:
            if lane.junction is not None:
                self._line(lane.line.points, town.config.lane_width, road, Tag.ROADS)
        self._road_mask = self.tags == Tag.ROADS

    def _paint_wear(self, wear_range: tuple[float, float]) -> None:
        wear = self.rng.uniform(*wear_range)
        h, w = self.tags.shape
        overlay = self.rgb.copy()
        for _ in range(int(wear * h * w / 40000)):
            center = (int(self.rng.integers(0, w)), int(self.rng.integers(0, h)))
            axes = (int(self.rng.integers(10, 60)), int(self.rng.integers(5, 30)))
            tone = int(self.rng.choice([-18, -10, 12]))
            color = tuple(int(v) for v in np.clip(self.rgb[center[1], center[0]].astype(int) + tone, 0, 255))
            cv2.ellipse(overlay, center, axes, float(self.rng.uniform(0, 180)), 0, 360, color, -1, cv2.LINE_AA)
        for _ in range(int(wear * h * w / 200000)):
            p = self.rng.integers(0, (w, h), size=(1, 2))
            steps = np.cumsum(self.rng.normal(0, 8, size=(6, 2)), axis=0)
            pts = (p + steps).astype(np.int32)
            cv2.polylines(overlay, [pts], False, (30, 30, 30), 1, cv2.LINE_AA)
        self.rgb[self._road_mask] = overlay[self._road_mask]

    def _paint_markings(self) -> None:
        town, lw = self.town, self.town.config.lane_width
        white, yellow = (225, 225, 220), (230, 190, 60)
        for r in town.roads:
            n = right_normals(r.center)
            self._line(r.center + n * 0.12, LINE_WIDTH, yellow, Tag.ROAD_LINES)
            self._line(r.center - n * 0.12, LINE_WIDTH, yellow, Tag.ROAD_LINES)
            for k in range(1, r.lanes):
                for side in (1, -1):
                    line = r.center + side * n * k * lw
                    for i in range(0, len(line) - 3, 6):
                        self._line(line[i : i + 3], LINE_WIDTH, white, Tag.ROAD_LINES)
        for lane in town.lanes:
            if lane.road is None or not town.junctions[lane.end_junction].lit:
                continue
            x, y, h = lane.line.at(lane.stop_s)
            side = np.array([-math.sin(h), math.cos(h)]) * lw / 2
            self._line(np.array([(x, y) - side, (x, y) + side]), 0.4, white, Tag.ROAD_LINES)
        for j in (j for j in town.junctions if j.lit):
            for rid in j.roads:
                self._paint_crosswalk(j.id, town.roads[rid], white)

    def _paint_crosswalk(self, jid: int, road, color) -> None:
        center = road.center if road.a == jid else road.center[::-1]
        d = center[1] - center[0]
        d /= np.linalg.norm(d)
        n = np.array([-d[1], d[0]])
        s0 = STOP_LINE_SETBACK - 0.6 - CROSSWALK_WIDTH
        for off in np.arange(-road.half_width + 0.4, road.half_width - 0.2, 1.0):
            a = center[0] + n * off + d * s0
            self._line(np.array([a, a + d * CROSSWALK_WIDTH]), 0.5, color, Tag.ROAD_LINES)

    # -- props ------------------------------------------------------------------------------------
    def _free(self, x: float, y: float, half: float) -> bool:
        px = (np.array([x, y]) - self.origin) / self.res
        r = int(half / self.res)
        c0, r0 = int(px[0]) - r, int(px[1]) - r
        if c0 < 0 or r0 < 0 or c0 + 2 * r >= self._occupied.shape[1] or r0 + 2 * r >= self._occupied.shape[0]:
            return False
        return not self._occupied[r0 : r0 + 2 * r + 1, c0 : c0 + 2 * r + 1].any()

    def _occupy(self, x: float, y: float, half: float) -> None:
        px = (np.array([x, y]) - self.origin) / self.res
        r = int(half / self.res)
        self._occupied[max(int(px[1]) - r, 0) : int(px[1]) + r + 1, max(int(px[0]) - r, 0) : int(px[0]) + r + 1] = 1

    def _traffic_lights(self, footprints: list) -> BoxInstances:
        rows = []
        for light in self.town.lights:
            yaw = math.degrees(light.yaw)
            fx, fy = math.cos(light.yaw), math.sin(light.yaw)
            pole_h, housing, lamp = (FAR_POLE_HEIGHT, FAR_HOUSING_HALF, FAR_LAMP_HALF) if light.far else (LIGHT_POLE_HEIGHT, HOUSING_HALF, LAMP_HALF)
            zc = pole_h + housing[2]
            gray = (60, 62, 58)
            rows.append((light.x, light.y, pole_h / 2, 0.1, 0.1, pole_h / 2, yaw, gray, Tag.POLES, 0, 0.0, 0))
            rows.append((light.x, light.y, zc, *housing, yaw, (30, 30, 30), Tag.TRAFFIC_LIGHT, light.actor_id, 0.0, 0))
            for k in range(3):
                z = zc + (1 - k) * (housing[2] - lamp) * 0.75
                lx, ly = light.x + fx * (housing[0] + 0.03), light.y + fy * (housing[0] + 0.03)
                rows.append((lx, ly, z, 0.03, lamp, lamp, yaw, LAMP_OFF, Tag.TRAFFIC_LIGHT, light.actor_id, 1.0, 0))
            footprints.append((light.x, light.y, 0.0, 0.15, 0.15))
            self._occupy(light.x, light.y, 1.0)
        return BoxInstances.from_rows(rows)

    def _street_poles(self, footprints: list) -> BoxInstances:
        rows = []
        for walk in self.town.sidewalks:
            line = walk.line
            for s in np.arange(8.0, line.length - 8.0, 30.0):
                x, y, h = line.at(s)
                off = self.town.config.sidewalk_width / 2 - 0.4
                px, py = x - math.sin(h) * off * walk.side, y + math.cos(h) * off * walk.side
                if not self.rng.random() < 0.7:
                    continue
                rows.append((px, py, 3.0, 0.12, 0.12, 3.0, math.degrees(h), (120, 120, 125), Tag.POLES, 0, 0.0, 0))
                footprints.append((px, py, h, 0.12, 0.12))
                self._occupy(px, py, 0.5)
        return BoxInstances.from_rows(rows)

    def _trees(self, footprints: list) -> BoxInstances:
        rows = []
        c = self.town.config
        for walk in self.town.sidewalks:
            for s in np.arange(4.0, walk.line.length - 4.0, 9.0):
                if self.rng.random() < 0.45:
                    continue
                x, y, h = walk.line.at(s + self.rng.uniform(-2, 2))
                off = (c.sidewalk_width / 2 + 2.2) * walk.side
                tx, ty = x - math.sin(h) * off, y + math.cos(h) * off
                if not self._free(tx, ty, 1.2):
                    continue
                trunk_h = self.rng.uniform(1.5, 2.5)
                canopy = self.rng.uniform(1.2, 2.4)
                green = tuple(int(v) for v in np.array((60, 110, 40)) * self.rng.uniform(0.7, 1.2))
                yaw = float(self.rng.uniform(0, 90))
                rows.append((tx, ty, trunk_h / 2, 0.2, 0.2, trunk_h / 2, yaw, (90, 65, 40), Tag.VEGETATION, 0, 0.0, 0))
                rows.append((tx, ty, trunk_h + canopy, canopy, canopy, canopy, yaw, green, Tag.VEGETATION, 0, 0.0, 0))
                footprints.append((tx, ty, math.radians(yaw), 0.2, 0.2))
                self._occupy(tx, ty, canopy)
        return BoxInstances.from_rows(rows)

    def _buildings(self, footprints: list) -> BoxInstances:
        rows = []
        x0, y0, x1, y1 = self.town.bounds
        for _ in range(2500):
            half_l, half_w = self.rng.uniform(4, 11, 2)
            half = max(half_l, half_w)
            x, y = self.rng.uniform(x0 + half, x1 - half), self.rng.uniform(y0 + half, y1 - half)
            if not self._free(x, y, half + 0.5):
                continue
            height = self.rng.uniform(4, 22)
            color = tuple(int(v) for v in self.rng.uniform(70, 220, 3))
            yaw = float(self.rng.uniform(-8, 8))
            rows.append((x, y, height / 2, half_l, half_w, height / 2, yaw, color, Tag.BUILDINGS, 0, 0.0, 1))
            footprints.append((x, y, math.radians(yaw), half_l, half_w))
            self._occupy(x, y, half + 1.0)
        return BoxInstances.from_rows(rows)

    def lamp_colors(self, states: list[int]) -> np.ndarray:
        """Colours of every lamp row for the given light states (carla.TrafficLightState values)."""
        colors = np.tile(LAMP_OFF, (len(states), 3, 1))
        lamp = np.array(states, dtype=np.int64).reshape(-1)
        lit = np.flatnonzero(lamp < len(LAMP_COLORS))  # red, yellow, green; off and unknown light no lamp
        colors[lit, lamp[lit]] = LAMP_COLORS[lamp[lit]]
        return colors
