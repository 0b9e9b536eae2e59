"""The camera model matches CARLA: its pose matrices, intrinsics and the projection formula."""

import math

import carla
import numpy as np
import pytest
from drivestack.sim.camera import Pose, intrinsics, project


@pytest.mark.parametrize("pose", [Pose(1, 2, 3, 10, 20, 30), Pose(-5, 0.5, 1.6, 0, -15, 275), Pose(0, 0, 0, 45, 0, 0)])
def test_pose_matrix_equals_carla_transform(pose):
    t = carla.Transform(carla.Location(pose.x, pose.y, pose.z), carla.Rotation(pitch=pose.pitch, yaw=pose.yaw, roll=pose.roll))
    np.testing.assert_allclose(pose.matrix(), np.array(t.get_matrix()), atol=1e-5)


def test_intrinsics_follow_carla_fov_formula():
    K = intrinsics(800, 600, 90.0)
    assert K[0, 0] == pytest.approx(400.0) and K[1, 1] == pytest.approx(400.0)
    assert (K[0, 2], K[1, 2]) == (400.0, 300.0)
    assert intrinsics(320, 160, 60.0)[0, 0] == pytest.approx(320 / (2 * math.tan(math.radians(30))))


def test_point_straight_ahead_lands_on_principal_point():
    """NOTES: camera yaw 90, 800x600, fov 90 -> a point straight ahead lands at (400, 300)."""
    cam = Pose(10, 20, 2, yaw=90).matrix()
    uv, depth = project(np.array([[10, 35, 2]]), cam, intrinsics(800, 600, 90))
    np.testing.assert_allclose(uv[0], (400, 300), atol=1e-9)
    assert depth[0] == pytest.approx(15.0)


def test_known_point_against_formula():
    """A point 20 m ahead, 3 m right, 1 m up of a yawed camera: u = cx + f*3/20, v = cy - f*1/20."""
    yaw = math.radians(30)
    cam = Pose(5, -2, 1.5, yaw=30).matrix()
    fwd, right = np.array([math.cos(yaw), math.sin(yaw)]), np.array([-math.sin(yaw), math.cos(yaw)])
    p = np.array([5, -2]) + 20 * fwd + 3 * right
    K = intrinsics(320, 160, 90)
    uv, depth = project(np.array([[p[0], p[1], 2.5]]), cam, K)
    f = K[0, 0]
    np.testing.assert_allclose(uv[0], (160 + f * 3 / 20, 80 - f * 1 / 20), atol=1e-9)
    assert depth[0] == pytest.approx(20.0)
