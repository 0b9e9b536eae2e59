"""The drive video's overlays and the town map's marks: drawn where they belong, in distinct colours."""

from __future__ import annotations

import numpy as np
from drivestack.planning.evaluation.metrics import FLAG_HOLD_S, RouteScorer
from drivestack.sim.camera import Pose, intrinsics
from drivestack.sim.conventions import ActorKind, RoadOption, TrafficLightState
from drivestack.sim.interface import CameraFrame, Collision, EgoState, Events, Observation, TrafficLightInfo
from drivestack.sim.visualize import (
    BOX_LEGEND,
    END_COLOR,
    FLAG_COLOR,
    MARK_COLORS,
    PLAN_COLOR,
    ROUTE_COLOR,
    START_COLOR,
    annotate_map,
    box_color,
    hud_text,
    render_frame,
)

W, H, FOV, CAMERA_Z = 160, 80, 90.0, 1.6


def observation(frame: int = 0, time: float = 0.0, x: float = 0.0, speed: float = 5.0, events: Events | None = None,
                light: TrafficLightInfo | None = None) -> Observation:  # fmt: skip
    """The ego at (x, 0) heading +x with a black camera 1.6 m above it looking ahead; no route ahead to draw."""
    camera = CameraFrame("front", np.zeros((H, W, 3), np.uint8), np.zeros((H, W), np.uint8), np.full((H, W), 1000.0, np.float32),
                         np.zeros((H, W), np.uint16), intrinsics(W, H, FOV), Pose(x=x, z=CAMERA_Z).matrix(), [])  # fmt: skip
    return Observation(frame=frame, time=time, cameras={"front": camera}, ego=EgoState(Pose(x=x), speed, 0.0, (2.4, 1.0, 0.7)),
                       route=np.zeros((50, 2)), command=RoadOption.LANEFOLLOW, target_point=np.zeros(2),
                       traffic_light=light or TrafficLightInfo(), events=events or Events(), route_progress=0.0, route_length=100.0,
                       actors=[], speed_limit=8.0)  # fmt: skip


def test_planned_waypoints_are_drawn_where_they_project():
    scale = 2
    waypoints = np.array([[4.0, 0.0], [8.0, 1.5], [12.0, -2.0]])
    frame = render_frame(observation(), scale=scale, waypoints=waypoints)
    camera = frame[: H * scale, : W * scale]
    f = W / (2 * np.tan(np.radians(FOV) / 2))  # pinhole: a ground point x ahead, y right is at u = cx + f y / x, v = cy + f z / x
    expected = [((W / 2 + f * y / x) * scale, (H / 2 + f * CAMERA_Z / x) * scale) for x, y in waypoints]
    for u, v in expected:
        assert tuple(camera[int(v), int(u)]) == PLAN_COLOR
    ys, xs = np.nonzero((camera == PLAN_COLOR).all(axis=-1))
    assert len(xs) > 0
    nearest = np.min([np.hypot(xs - u, ys - v) for u, v in expected], axis=0)
    assert nearest.max() <= scale + 2  # every magenta pixel belongs to a dot at a projected waypoint


def test_infraction_flags_show_on_the_frame_and_hold_for_a_second():
    scorer = RouteScorer("r")
    scorer.update(observation(frame=1, time=0.25))
    assert scorer.flags() == []
    scorer.update(observation(frame=2, time=0.5, x=0.5, events=Events(collisions=[Collision(ActorKind.PEDESTRIAN, 8)])))
    assert scorer.flags() == ["COLLISION PEDESTRIAN"]  # on the frame where it happens (an odd one need not be written)
    later = observation(frame=21, time=0.5 + FLAG_HOLD_S - 0.25, x=1.0, events=Events(lane_invasion=True))
    scorer.update(later)
    assert scorer.flags() == ["COLLISION PEDESTRIAN", "OUTSIDE LANES"]
    scorer.update(observation(frame=22, time=0.5 + FLAG_HOLD_S, x=1.5))
    assert scorer.flags() == []

    flagged, plain = render_frame(later, flags=["COLLISION PEDESTRIAN"]), render_frame(later)
    assert (flagged == FLAG_COLOR).all(axis=-1).sum() > 500 and not (plain == FLAG_COLOR).all(axis=-1).any()


def test_hud_names_a_light_only_where_there_is_one():
    assert "light" not in hud_text(observation())
    assert "light RED 12 m" in hud_text(observation(light=TrafficLightInfo(TrafficLightState.RED, 12.0, 1001)))


def test_each_kind_of_box_and_dot_has_its_own_colour():
    colours = [c for _, c, _ in BOX_LEGEND] + [ROUTE_COLOR, PLAN_COLOR]
    assert len(set(colours)) == len(colours)
    assert box_color(ActorKind.PEDESTRIAN) != box_color(ActorKind.TRAFFIC_LIGHT, TrafficLightState.RED)
    assert box_color(ActorKind.TRAFFIC_LIGHT, None) not in [box_color(ActorKind.TRAFFIC_LIGHT, s) for s in TrafficLightState if s < 3]


def test_map_marks_start_end_and_infractions_with_a_legend():
    image = np.full((400, 600, 3), 90, np.uint8)
    route = np.array([[320.0, 300.0], [560.0, 300.0]])
    marks = [("collision pedestrian", 350.0, 360.0), ("red light", 450.0, 360.0), ("collision pedestrian", 520.0, 360.0)]
    annotate_map(image, lambda p: np.asarray(p).astype(np.int32), route, np.array([[320.0, 300.0], [400.0, 300.0]]), marks)
    assert tuple(image[300, 320]) == START_COLOR and tuple(image[300, 560]) == END_COLOR
    assert tuple(image[360, 350]) == tuple(image[360, 520]) == MARK_COLORS[0] and tuple(image[360, 450]) == MARK_COLORS[1]
    assert (image[:60, :200] == 0).any() and (image[:60, :200] == 255).any()  # the legend: white text on black


def test_the_embedded_town_map_takes_marks(embedded):
    from drivestack.sim.interface import RouteSpec

    embedded.reset(0, RouteSpec(town=0, length=60))
    trail = embedded.route.points[:20]
    image = embedded.top_down_map(trail, [("collision vehicle", *trail[-1])], size=300)
    assert image.shape[2] == 3 and max(image.shape[:2]) == 300


def test_tracks_show_their_id_and_a_velocity_arrow_on_the_ground():
    from drivestack.perception.tracking.ground import ground_to_pixels
    from drivestack.perception.tracking.tracker import Track
    from drivestack.perception.visualize import draw_tracks
    from drivestack.sim.settings import CameraConfig

    camera = CameraConfig(width=W, height=H, fov=FOV, z=CAMERA_Z)
    track = Track(id=42, label=0, box=np.array([60.0, 30.0, 100.0, 60.0]), score=0.9, position=np.array([11.3, 0.0]),
                  velocity=np.array([0.0, 3.0]))  # fmt: skip
    image = draw_tracks(np.zeros((H, W, 3), np.uint8), [track], camera, horizon_s=1.0)
    (start, end), _ = ground_to_pixels(np.array([[11.3, 0.0], [11.3, 3.0]]), camera)  # where it stands, where it will be in 1 s
    drawn = image.min(axis=-1) > 100  # white (TRACK_COLOR), or nearly where anti-aliased
    for u, v in (start, end):
        assert drawn[int(round(v)) - 1 : int(round(v)) + 2, int(round(u)) - 1 : int(round(u)) + 2].any()
    row = int(round(start[1]))
    assert drawn[row, int(start[0]) : int(end[0])].mean() > 0.8  # the shaft runs between them, to the right
    assert drawn[:30, 60:].any() and not drawn[:30, :55].any()  # the id label sits over the box
    plain = draw_tracks(np.zeros((H, W, 3), np.uint8), [], camera)
    assert not plain.any()
