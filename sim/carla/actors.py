"""Spawning an episode's actors (ego, sensors, traffic vehicles, walkers) and destroying exactly those."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import carla
import numpy as np
from drivestack.sim.interface import SimulatorError

log = logging.getLogger(__name__)

SPAWN_CLEARANCE_M = 15.0  # traffic is not spawned this close to the ego's start
WALKER_SPEED = 1.4  # m/s when a walker blueprint recommends none


@dataclass
class SpawnRecord:
    """Everything an episode spawned, so that cleanup destroys exactly that."""

    sensors: list[Any] = field(default_factory=list)
    controllers: list[Any] = field(default_factory=list)
    actors: list[Any] = field(default_factory=list)  # ego, vehicles, walkers

    @property
    def ids(self) -> list[int]:
        """Every spawned id, children first (sensors, walker controllers, then their parents)."""
        return [a.id for a in self.sensors + self.controllers + self.actors]


def destroy_all(client: Any, record: SpawnRecord) -> None:
    """Stop sensors and walker controllers, then destroy every recorded actor in one DestroyActor batch."""
    for actor in record.sensors + record.controllers:
        try:
            actor.stop()
        except RuntimeError as e:  # already gone with a crashed server
            log.warning("could not stop actor %s: %s", actor.id, e)
    ids = record.ids
    record.sensors, record.controllers, record.actors = [], [], []
    if ids:
        responses = client.apply_batch_sync([carla.command.DestroyActor(i) for i in ids], False)
        failed = [r.error for r in responses or [] if r.error]
        if failed:
            log.warning("%d of %d actors were not destroyed: %s", len(failed), len(ids), failed[0])


def _blueprint(world: Any, blueprint_id: str) -> Any:
    try:
        return world.get_blueprint_library().find(blueprint_id)
    except (IndexError, RuntimeError) as e:
        raise SimulatorError(f"no blueprint '{blueprint_id}' on this CARLA server") from e


def spawn_ego(world: Any, blueprint_id: str, transform: carla.Transform, record: SpawnRecord) -> Any:
    """The ego vehicle ('hero') at ``transform``; SimulatorError if the spot is taken."""
    bp = _blueprint(world, blueprint_id)
    bp.set_attribute("role_name", "hero")
    ego = world.try_spawn_actor(bp, transform)
    if ego is None:
        loc = transform.location
        raise SimulatorError(f"could not spawn the ego '{blueprint_id}' at ({loc.x:.1f}, {loc.y:.1f}): spot taken")
    record.actors.append(ego)
    return ego


def spawn_sensor(
    world: Any,
    blueprint_id: str,
    attributes: dict[str, str],
    transform: carla.Transform,
    parent: Any,
    callback: Callable[[Any], None],
    record: SpawnRecord,
) -> Any:
    """A sensor attached to ``parent`` that sends its data to ``callback``."""
    bp = _blueprint(world, blueprint_id)
    for key, value in attributes.items():
        bp.set_attribute(key, value)
    sensor = world.try_spawn_actor(bp, transform, attach_to=parent)
    if sensor is None:
        raise SimulatorError(f"could not spawn sensor '{blueprint_id}'")
    record.sensors.append(sensor)
    sensor.listen(callback)
    return sensor


def spawn_vehicles(
    client: Any,
    world: Any,
    count: int,
    spawn_points: list[carla.Transform],
    avoid: carla.Location,
    tm_port: int,
    rng: np.random.Generator,
    record: SpawnRecord,
) -> list[Any]:
    """Up to ``count`` four-wheeled vehicles at free spawn points, on the Traffic Manager's autopilot."""
    blueprints = sorted(
        (
            bp
            for bp in world.get_blueprint_library().filter("vehicle.*")
            if int(bp.get_attribute("number_of_wheels")) == 4
        ),
        key=lambda bp: bp.id,
    )
    if not blueprints or count <= 0:
        return []
    vehicles = []
    for k in rng.permutation(len(spawn_points)):
        if len(vehicles) == count:
            break
        transform = spawn_points[int(k)]
        if transform.location.distance(avoid) < SPAWN_CLEARANCE_M:
            continue
        bp = blueprints[int(rng.integers(len(blueprints)))]
        if bp.has_attribute("color"):
            colors = bp.get_attribute("color").recommended_values
            bp.set_attribute("color", colors[int(rng.integers(len(colors)))])
        bp.set_attribute("role_name", "autopilot")
        vehicle = world.try_spawn_actor(bp, transform)
        if vehicle is not None:
            record.actors.append(vehicle)
            vehicles.append(vehicle)
    if len(vehicles) < count:
        log.warning("spawned %d of %d traffic vehicles (free spawn points ran out)", len(vehicles), count)
    client.apply_batch_sync([carla.command.SetAutopilot(v.id, True, tm_port) for v in vehicles], False)
    return vehicles


def spawn_walkers(
    world: Any, count: int, rng: np.random.Generator, record: SpawnRecord
) -> list[tuple[Any, Any, float]]:
    """Up to ``count`` walkers on sidewalks, each with an AI controller (started by :func:`start_walkers`).

    Returns (walker, controller, walking speed) triples.
    """
    blueprints = sorted(world.get_blueprint_library().filter("walker.pedestrian.*"), key=lambda bp: bp.id)
    if not blueprints or count <= 0:
        return []
    controller_bp = _blueprint(world, "controller.ai.walker")
    walkers = []
    for _ in range(2 * count):
        if len(walkers) == count:
            break
        location = world.get_random_location_from_navigation()
        if location is None:
            continue
        bp = blueprints[int(rng.integers(len(blueprints)))]
        if bp.has_attribute("is_invincible"):
            bp.set_attribute("is_invincible", "false")
        speed = WALKER_SPEED
        if bp.has_attribute("speed"):
            speeds = bp.get_attribute("speed").recommended_values
            speed = float(speeds[1]) if len(speeds) > 1 else speed  # [1] is walking, [2] running
        walker = world.try_spawn_actor(bp, carla.Transform(location))
        if walker is None:
            continue
        record.actors.append(walker)
        controller = world.try_spawn_actor(controller_bp, carla.Transform(), attach_to=walker)
        if controller is None:
            continue
        record.controllers.append(controller)
        walkers.append((walker, controller, speed))
    if len(walkers) < count:
        log.warning("spawned %d of %d walkers", len(walkers), count)
    return walkers


def start_walkers(world: Any, walkers: list[tuple[Any, Any, float]]) -> None:
    """Send each walker's controller to a random sidewalk destination (after one tick following the spawn)."""
    for _, controller, speed in walkers:
        controller.start()
        controller.go_to_location(world.get_random_location_from_navigation())
        controller.set_max_speed(speed)
