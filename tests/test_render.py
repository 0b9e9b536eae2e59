"""Tests of drivestack.sim.embedded.render against the analytic CARLA camera model of drivestack.sim.camera."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
from drivestack.sim.camera import UE_TO_CV, Pose, intrinsics, project
from drivestack.sim.conventions import Tag
from drivestack.sim.embedded.render import AMBIENT, DIFFUSE, BoxInstances, GroundMap, Lighting, Renderer
from drivestack.sim.settings import CameraConfig

W, H, FOV = 320, 160, 90.0
K = intrinsics(W, H, FOV)
F, CX, CY = K[0, 0], K[0, 2], K[1, 2]
CELL = 2.0  # metres: the test ground map has one random tag and colour per 2 m x 2 m cell
SUN = Lighting(sun_direction=(0.48, 0.36, 0.8))


def make_ground(seed: int = 0, crop: int = 0) -> GroundMap:
    """100 m x 60 m map at 0.5 m per texel with a random tag and colour per cell, origin (-20, -30);
    ``crop`` texel columns cut off the far end (odd widths test the row alignment)."""
    rng = np.random.default_rng(seed)
    cells = (30, 50)  # rows (y), columns (x)
    tags = rng.choice([Tag.ROADS, Tag.SIDEWALKS, Tag.ROAD_LINES, Tag.TERRAIN], cells).astype(np.uint8)
    rgb = rng.integers(40, 220, cells + (3,), dtype=np.uint8)
    per_cell = int(CELL / 0.5)
    tags, rgb = (a.repeat(per_cell, 0).repeat(per_cell, 1)[:, : a.shape[1] * per_cell - crop] for a in (tags, rgb))
    return GroundMap(rgb=rgb, tags=tags, x0=-20.0, y0=-30.0, resolution=0.5, outside_tag=int(Tag.WATER))


def boxes(rows: list[dict]) -> BoxInstances:
    """BoxInstances from dicts with keys center, half, and optionally yaw, color, tag, instance, emissive, pattern."""
    defaults = dict(yaw=0.0, color=(200, 60, 40), tag=Tag.CAR, instance=1, emissive=0.0, pattern=0)
    rows = [{**defaults, **r} for r in rows]

    def col(key: str, dtype: type) -> np.ndarray:
        return np.array([r[key] for r in rows], dtype)

    return BoxInstances(
        center=col("center", np.float32),
        half=col("half", np.float32),
        yaw=col("yaw", np.float32),
        color=col("color", np.uint8),
        tag=col("tag", np.uint8),
        instance=col("instance", np.uint16),
        emissive=col("emissive", np.float32),
        pattern=col("pattern", np.uint8),
    )


def box_corners(center, half, yaw_deg) -> np.ndarray:
    """(8,3) world corners of a box, CARLA yaw convention."""
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    local = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * half
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return local @ rot.T + center


def pixel_rays(pose: np.ndarray) -> np.ndarray:
    """(H,W,3) world direction through each pixel centre, scaled so that planar depth 1 is one unit."""
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    cv_dirs = np.stack([(u - CX) / F, (v - CY) / F, np.ones_like(u)], axis=-1)
    return cv_dirs @ (pose[:3, :3] @ UE_TO_CV.T).T


def plane_depth(pose: np.ndarray, pixel: tuple[int, int], point, normal) -> float:
    """Planar depth of the plane (point, normal) at the centre of pixel (u, v)."""
    u, v = pixel
    ray = pixel_rays(pose)[v, u]
    return float(np.dot(np.asarray(point) - pose[:3, 3], normal) / np.dot(ray, normal))


@pytest.fixture(scope="module")
def renderer():
    r = Renderer([CameraConfig(width=W, height=H, fov=FOV)], make_ground())
    yield r
    r.close()


def render_one(renderer: Renderer, pose: np.ndarray, scene: BoxInstances, lighting: Lighting = SUN):
    """Copies of the single camera's view: rgb, semantic, instance, depth."""
    view = renderer.render([pose], scene, lighting)[0]
    return view.rgb.copy(), view.semantic.copy(), view.instance.copy(), view.depth.copy()


def test_box_front_face_matches_projection(renderer):
    pose = Pose(x=2.0, y=1.0, z=1.7, pitch=-4.0, yaw=20.0).matrix()
    center, half, yaw = np.array([12.0, 5.0, 1.0]), np.array([2.0, 1.0, 1.0]), 200.0
    scene = boxes([dict(center=center, half=half, yaw=yaw, tag=Tag.TRUCK, instance=42)])
    _, sem, inst, depth = render_one(renderer, pose, scene)
    # Box yaw 200: its local +x axis points back towards the camera, so that face is visible.
    normal = np.array([np.cos(np.radians(yaw)), np.sin(np.radians(yaw)), 0.0])
    face_centre = center + half[0] * normal
    uv, _ = project(face_centre[None], pose, K)
    u, v = np.floor(uv[0]).astype(int)
    assert sem[v, u] == Tag.TRUCK and inst[v, u] == 42
    assert depth[v, u] == pytest.approx(plane_depth(pose, (u, v), face_centre, normal), abs=0.01)


@pytest.mark.parametrize("crop", [0, 41])
def test_ground_depth_and_tags(renderer, crop):
    h = 1.6
    pose = Pose(x=3.0, y=-2.0, z=h, yaw=-30.0).matrix()
    ground = make_ground(crop=crop)
    renderer.set_ground(ground)
    try:
        rgb, sem, inst, depth = render_one(renderer, pose, BoxInstances.empty())
    finally:
        renderer.set_ground(make_ground())
    rows = np.arange(H)
    below = rows + 0.5 > CY + 1
    expected = h * F / (rows[below] + 0.5 - CY)
    assert np.allclose(depth[below], expected[:, None], rtol=1e-3)
    assert (inst == 0).all()

    hits = pose[:3, 3] + pixel_rays(pose) * depth[..., None]  # the ground point each pixel sees
    col = (hits[..., 0] - ground.x0) / ground.resolution
    row = (hits[..., 1] - ground.y0) / ground.resolution
    gh, gw = ground.tags.shape
    inside = below[:, None] & (col >= 0) & (col < gw) & (row >= 0) & (row < gh)
    cell_pos = np.stack([col, row]) * ground.resolution / CELL
    border_m = (np.abs(cell_pos - np.round(cell_pos)) * CELL).min(axis=0)  # to the nearest cell border
    clear = inside & (border_m > 0.04)
    assert clear.sum() > 5000
    r, c = row[clear].astype(int), col[clear].astype(int)
    assert (sem[clear] == ground.tags[r, c]).all()
    outside = below[:, None] & ~inside
    assert outside.sum() > 1000 and (sem[outside] == ground.outside_tag).all()

    # Colour follows the same cells where texture filtering does not reach across a border.
    sharp = clear & (border_m > 0.6) & (depth < 6.0)
    assert sharp.sum() > 1000
    light = AMBIENT + DIFFUSE * SUN.sun_direction[2]
    expected_rgb = ground.rgb[row[sharp].astype(int), col[sharp].astype(int)] * light
    assert np.abs(rgb[sharp] - expected_rgb).max() <= 2


def test_sky_above_horizon(renderer):
    pose = Pose(z=1.6, yaw=75.0).matrix()
    rgb, sem, inst, depth = render_one(renderer, pose, BoxInstances.empty())
    above = np.arange(H) + 0.5 < CY
    assert (sem[above] == Tag.SKY).all() and (depth[above] == 1000.0).all() and (inst[above] == 0).all()
    assert (sem[~above] != Tag.SKY).all() and (depth[~above] < 1000.0).all()
    sky = rgb[above].astype(int)
    assert (np.abs(sky - np.array(SUN.sky_rgb)) <= 255 * 0.25).all() and (sky[..., 2] > sky[..., 0]).all()
    assert sky[0, :, 0].mean() < sky[-1, :, 0].mean()  # whiter towards the horizon


def test_near_box_occludes_far_box(renderer):
    pose = Pose(z=1.5).matrix()
    near = dict(center=(6.0, 0.0, 1.5), half=(0.5, 0.5, 0.5), tag=Tag.PEDESTRIANS, instance=1)
    far = dict(center=(15.0, 0.0, 2.0), half=(1.0, 3.0, 2.0), tag=Tag.BUILDINGS, instance=2)
    for order in ([near, far], [far, near]):
        _, sem, inst, depth = render_one(renderer, pose, boxes(order))
        # Pixel rectangle of the near box's front face (x = 5.5, |y| <= 0.5, 1 <= z <= 2).
        (u0, v0), (u1, v1) = project(np.array([[5.5, -0.5, 2.0], [5.5, 0.5, 1.0]]), pose, K)[0]
        front = np.s_[int(np.ceil(v0)) : int(v1), int(np.ceil(u0)) : int(u1)]
        assert (inst[front] == 1).all() and (sem[front] == Tag.PEDESTRIANS).all()
        assert np.allclose(depth[front], 5.5, atol=0.01)
        around = (inst == 2) & (np.abs(depth - 14.0) < 0.01)  # the far box's front face, around the near box
        assert around.sum() > 500 and (sem[around] == Tag.BUILDINGS).all()


def random_scene(n: int, seed: int) -> BoxInstances:
    rng = np.random.default_rng(seed)
    rows = [
        dict(
            center=(rng.uniform(4, 40), rng.uniform(-20, 20), rng.uniform(0.3, 2.0)),
            half=rng.uniform(0.3, 2.5, 3),
            yaw=rng.uniform(-180, 180),
            color=rng.integers(0, 256, 3),
            tag=rng.choice([Tag.CAR, Tag.PEDESTRIANS, Tag.BUILDINGS, Tag.POLES]),
            instance=i + 1,
            pattern=rng.integers(0, 2),
        )
        for i in range(n)
    ]
    return boxes(rows)


def test_outputs_agree_pixel_for_pixel(renderer):
    pose = Pose(z=1.6, yaw=3.0).matrix()
    scene = random_scene(40, seed=1)
    rgb, sem, inst, depth = render_one(renderer, pose, scene)
    covered = inst != 0
    assert covered.sum() > 3000
    assert (sem[covered] == scene.tag[inst[covered] - 1]).all()
    assert ((sem == Tag.SKY) == (depth == 1000.0)).all()
    for i in np.unique(inst[covered]):
        corners = box_corners(scene.center[i - 1], scene.half[i - 1], scene.yaw[i - 1])
        _, corner_depth = project(corners, pose, K)
        d = depth[inst == i]
        assert d.min() >= corner_depth.min() - 0.01 and d.max() <= corner_depth.max() + 0.01


def test_rgb_alone_is_the_rgb_of_all_the_images(renderer):
    """Rendered without truth, a view has the same RGB pixels and no truth images; a full render after it
    draws the truth afresh."""
    scene = random_scene(40, seed=3)
    first, second = Pose(z=1.6, yaw=3.0).matrix(), Pose(x=4.0, z=1.6, yaw=-20.0).matrix()
    render_one(renderer, first, scene)
    alone = renderer.render([second], scene, SUN, truth=False)[0]
    assert alone.semantic is None and alone.instance is None and alone.depth is None
    rgb_alone = alone.rgb.copy()
    rgb, sem, inst, depth = render_one(renderer, second, scene)
    assert np.array_equal(rgb_alone, rgb)
    covered = inst != 0
    assert covered.sum() > 1000 and (sem[covered] == scene.tag[inst[covered] - 1]).all()
    assert ((sem == Tag.SKY) == (depth == 1000.0)).all()


def test_render_is_deterministic(renderer):
    pose = Pose(x=-3.0, z=1.6, yaw=10.0).matrix()
    scene = random_scene(60, seed=2)
    first = render_one(renderer, pose, scene)
    render_one(renderer, Pose(z=5.0, yaw=90.0).matrix(), random_scene(10, seed=3))
    again = render_one(renderer, pose, scene)
    fresh = Renderer([CameraConfig(width=W, height=H, fov=FOV)], make_ground())
    other = render_one(fresh, pose, scene)
    fresh.close()
    for a, b, c in zip(first, again, other):
        assert a.tobytes() == b.tobytes() == c.tobytes()


def test_projected_corners_hug_instance_pixels(renderer):
    pose = Pose(x=1.0, y=-1.0, z=2.0, pitch=-8.0, yaw=-12.0).matrix()
    scene = random_scene(8, seed=4)
    scene.center[:, 2] = scene.half[:, 2] + 0.2  # above the ground, so nothing hides part of the box
    checked = 0
    for i in range(len(scene)):
        single = BoxInstances(*(getattr(scene, f.name)[i : i + 1] for f in fields(BoxInstances)))
        _, _, inst, _ = render_one(renderer, pose, single)
        corners = box_corners(single.center[0], single.half[0], single.yaw[0])
        uv, d = project(corners, pose, K)
        (umin, vmin), (umax, vmax) = uv.min(axis=0), uv.max(axis=0)
        if d.min() <= 0.1 or umin < 0 or vmin < 0 or umax > W or vmax > H:
            continue  # only boxes fully in view
        vs, us = np.nonzero(inst == single.instance[0])
        assert us.min() >= np.floor(umin) and us.max() + 1 <= np.ceil(umax)
        assert vs.min() >= np.floor(vmin) and vs.max() + 1 <= np.ceil(vmax)
        assert us.min() <= umin + 1 and us.max() + 1 >= umax - 1
        assert vs.min() <= vmin + 1 and vs.max() + 1 >= vmax - 1
        checked += 1
    assert checked >= 4


def test_lighting_emissive_and_facade(renderer):
    pose = Pose(z=1.5).matrix()
    lamp = dict(center=(8.0, -3.0, 1.5), half=(0.5, 0.5, 0.5), color=(250, 170, 30), emissive=1.0, instance=1)
    facade = dict(center=(20.0, 6.0, 5.0), half=(1.0, 6.0, 5.0), color=(180, 160, 140), pattern=1, instance=2,
                  tag=Tag.BUILDINGS)
    scene = boxes([lamp, facade])
    bright = render_one(renderer, pose, scene, Lighting((0.0, 0.0, 1.0), brightness=1.0))
    dim = render_one(renderer, pose, scene, Lighting((0.0, 0.0, 1.0), brightness=0.5))
    for rgb, _, inst, _ in (bright, dim):
        assert (rgb[inst == 1] == (250, 170, 30)).all()
    wall = bright[2] == 2
    colours = np.unique(bright[0][wall], axis=0)
    assert len(colours) == 2 and (bright[1][wall] == Tag.BUILDINGS).all()
    ground = (bright[1] != Tag.SKY) & (bright[2] == 0)
    ratio = dim[0][ground].astype(float).sum() / bright[0][ground].astype(float).sum()
    assert ratio == pytest.approx(0.5, abs=0.01)
    # A face towards the sun is lit more than one facing away; the sun comes from -x here.
    towards = render_one(renderer, pose, boxes([facade]), Lighting((-1.0, 0.0, 0.0)))
    away = render_one(renderer, pose, boxes([facade]), Lighting((1.0, 0.0, 0.0)))
    assert towards[0][towards[2] == 2].mean() > away[0][away[2] == 2].mean() + 40


def test_several_cameras_and_new_ground():
    wide = CameraConfig(name="wide", width=96, height=64, fov=120.0)
    r = Renderer([CameraConfig(name="front", width=W, height=H, fov=FOV), wide], make_ground(0))
    h = 1.6
    pose = Pose(z=h, yaw=40.0).matrix()
    front_view, wide_view = r.render([pose, pose], BoxInstances.empty(), SUN)
    assert front_view.rgb.shape == (H, W, 3) and wide_view.rgb.shape == (64, 96, 3)
    assert [a.dtype for a in vars(wide_view).values()] == [np.uint8, np.uint8, np.uint16, np.float32]
    f_wide = intrinsics(96, 64, 120.0)[0, 0]
    rows = np.arange(33, 64)  # below the horizon at v = 32
    assert np.allclose(wide_view.depth[rows], (h * f_wide / (rows + 0.5 - 32))[:, None], rtol=1e-3)

    scene = random_scene(20, seed=5)
    before = r.render([pose, pose], scene, SUN)[0].semantic.copy()
    r.set_ground(make_ground(1))
    after = r.render([pose, pose], BoxInstances.concat([scene, BoxInstances.empty()]), SUN)[0]
    assert (after.semantic != before).any()
    assert ((after.semantic == Tag.SKY) == (before == Tag.SKY)).all()
    r.close()


def test_culling_leaves_out_only_boxes_that_cannot_be_seen(renderer):
    """Boxes behind the camera, beside its view or beyond the far plane are left out of the draw; one whose centre
    is outside the view but whose body reaches into it is drawn, and the images equal those drawn without
    the others."""
    pose = Pose(x=0.0, y=0.0, z=1.7, yaw=0.0).matrix()
    seen = dict(center=(15.0, 0.0, 1.0), half=(2.0, 1.0, 1.0), instance=1)
    edge = dict(center=(10.0, 13.0, 1.0), half=(4.0, 4.0, 1.0), instance=2)  # centre right of the 90-degree view, near side in it
    hidden = [dict(center=(-10.0, 0.0, 1.0), half=(2.0, 1.0, 1.0), instance=3),  # behind
              dict(center=(5.0, 30.0, 1.0), half=(2.0, 1.0, 1.0), instance=4),  # beside
              dict(center=(2000.0, 0.0, 1.0), half=(2.0, 1.0, 1.0), instance=5)]  # beyond the far plane
    scene = boxes([seen, *hidden, edge])
    assert renderer.targets[0].in_view(pose, scene).tolist() == [0, 4]
    with_all = render_one(renderer, pose, scene)
    only_visible = render_one(renderer, pose, boxes([seen, edge]))
    assert set(np.unique(with_all[2])) == {0, 1, 2}
    for a, b in zip(with_all, only_visible):
        assert np.array_equal(a, b)
