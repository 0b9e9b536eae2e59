"""A ByteTrack-style multi-object tracker over one camera's detections, with positions and velocities on the ground.

Each frame (Zhang et al. 2022, ByteTrack):

1. every track's box is predicted by a constant-velocity Kalman filter in the image (centre, width, height and
   their rates, noise proportional to the box height, as in SORT/ByteTrack);
2. detections scoring at least ``high_score`` are matched to all tracks (Hungarian on 1 - IoU, same class only,
   IoU >= ``match_iou``), both boxes widened by ``buffer`` of their size on each side (the buffered IoU of
   C-BIoU, Yang et al. 2023: thin, fast pedestrian boxes still overlap their prediction);
3. detections in [``low_score``, ``high_score``) are matched to the confirmed tracks left (IoU >= ``low_match_iou``):
   a partly occluded object keeps its id through a dip in score;
4. unmatched high detections start tentative tracks; a track is confirmed after ``min_hits`` matched frames; a
   tentative track that misses a frame ends, a confirmed one is kept ``max_age_s`` seconds unmatched (occlusion).

Position and velocity live in a second constant-velocity Kalman filter on the ground, in the ego frame (x forward,
y right, metres, origin at the vehicle centre): its measurement is the box's contact point on flat ground
(:mod:`drivestack.perception.tracking.ground`), with the pixel error propagated through the projection, so far
objects (range error ~ d^2) are smoothed more than near ones. Before each prediction the ground states are moved
into the new ego frame by the ego's motion (:func:`ego_motion`), so velocities are over the ground (an object
standing still has velocity 0 while the ego drives and turns), expressed in the current ego axes. A box whose
bottom edge is at or above the horizon cannot stand on flat ground and is not tracked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from drivestack.perception.tracking.ground import ground_measurements
from drivestack.sim.settings import CameraConfig
from scipy.optimize import linear_sum_assignment


@dataclass
class TrackerConfig:
    """``tracker:`` settings (configs/track.yaml)."""

    high_score: float = 0.5  # (float) detections scoring at least this are matched first and may start tracks
    low_score: float = 0.2  # (float) detections in [low_score, high_score) only extend confirmed tracks
    match_iou: float = 0.2  # (float) least IoU of a high detection with a track's predicted box
    low_match_iou: float = 0.5  # (float) least IoU of a low detection with a track's predicted box
    buffer: float = 0.3  # (float) boxes are widened by this fraction of their size on each side for matching (buffered IoU)
    min_hits: int = 2  # (int) matched frames before a track is confirmed and reported
    max_age_s: float = 1.0  # (float) seconds a confirmed track is kept without a match (occlusion)
    pixel_std: float = 1.5  # (float) pixels, error of a box's bottom centre (ground measurement noise)
    accel_std: float = 3.0  # (float) m/s^2, process noise of ground motion (white-noise acceleration)
    initial_speed_std: float = 8.0  # (float) m/s, velocity uncertainty of a new track

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_score <= self.high_score <= 1.0:
            raise ValueError(f"need 0 <= low_score <= high_score <= 1, got {self.low_score}, {self.high_score}")
        for name in ("match_iou", "low_match_iou"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.buffer < 0:
            raise ValueError(f"buffer must be >= 0, got {self.buffer}")
        if self.min_hits < 1 or self.max_age_s < 0 or min(self.pixel_std, self.accel_std, self.initial_speed_std) <= 0:
            raise ValueError("min_hits must be >= 1, max_age_s >= 0 and pixel_std, accel_std, initial_speed_std > 0")


@dataclass
class Track:
    """A tracked object in one frame. ``position``: its contact point on the ground, ego frame (x forward, y right,
    metres); ``velocity``: over the ground, in the ego axes (m/s); ``ttc``: time to collision along the planned
    path (s, inf when it is not closing in the path; :mod:`drivestack.perception.tracking.ttc`)."""

    id: int
    label: int  # detection class index
    box: np.ndarray  # (4,) x1 y1 x2 y2 pixels, the matched detection
    score: float
    position: np.ndarray  # (2,)
    velocity: np.ndarray  # (2,)
    ttc: float = math.inf


def ego_motion(speed: float, dt: float, yaw_before: float, yaw_now: float) -> tuple[float, float, float]:
    """The new ego frame in the previous one, (dx, dy, dyaw radians), from the speedometer and the compass (yaw in
    degrees, as a leaderboard agent's IMU gives it): ``speed * dt`` metres along the chord of the turn."""
    dyaw = math.radians((yaw_now - yaw_before + 180.0) % 360.0 - 180.0)
    step = speed * dt
    return step * math.cos(dyaw / 2), step * math.sin(dyaw / 2), dyaw


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of (N,4) ``a`` with every box of (M,4) ``b``, x1 y1 x2 y2 -> (N,M)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _transition(dims: int, dt: float) -> np.ndarray:
    F = np.eye(2 * dims)
    F[:dims, dims:] = dt * np.eye(dims)
    return F


def _kf_predict(mean: np.ndarray, cov: np.ndarray, F: np.ndarray, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched Kalman prediction: mean (N,n), cov (N,n,n), Q (n,n) or (N,n,n)."""
    return mean @ F.T, F @ cov @ F.T + Q


def _kf_update(mean: np.ndarray, cov: np.ndarray, z: np.ndarray, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched Kalman update with a position measurement z (N,m) of the first m of n state entries, noise R (N,m,m)."""
    m = z.shape[1]
    S = cov[:, :m, :m] + R
    K = cov[:, :, :m] @ np.linalg.inv(S)  # (N,n,m)
    mean = mean + (K @ (z - mean[:, :m])[..., None])[..., 0]
    cov = cov - K @ cov[:, :m, :]
    return mean, cov


class Tracker:
    """Tracks over one camera's detections; ``update`` once per processed frame, ``dt`` seconds apart."""

    # image filter noise, as fractions of the box height (ByteTrack's weights)
    POSITION_STD, VELOCITY_STD = 1.0 / 20, 1.0 / 160

    def __init__(self, config: TrackerConfig, camera: CameraConfig, dt: float) -> None:
        if dt <= 0:
            raise ValueError(f"dt must be > 0, got {dt}")
        self.config, self.camera, self.dt = config, camera, dt
        self.max_misses = int(round(config.max_age_s / dt))
        self.F_image, self.F_ground = _transition(4, 1.0), _transition(2, dt)
        q = config.accel_std**2 * np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]])
        self.Q_ground = np.kron(q, np.eye(2))
        self.reset()

    def reset(self) -> None:
        """Forget every track (a new route); ids start again at 1."""
        self.next_id = 1
        self.ids = np.zeros(0, np.int64)
        self.labels = np.zeros(0, np.int64)
        self.hits = np.zeros(0, np.int64)
        self.misses = np.zeros(0, np.int64)
        self.image_mean, self.image_cov = np.zeros((0, 8)), np.zeros((0, 8, 8))
        self.ground_mean, self.ground_cov = np.zeros((0, 4)), np.zeros((0, 4, 4))

    def update(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
               motion: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> list[Track]:  # fmt: skip
        """One frame's detections ((N,4) x1 y1 x2 y2 pixels, (N,) scores, (N,) class indices) and the ego's motion
        since the last update (:func:`ego_motion`) -> the confirmed tracks matched in this frame."""
        c = self.config
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores, labels = np.asarray(scores, np.float64).reshape(-1), np.asarray(labels, np.int64).reshape(-1)
        points, point_cov = ground_measurements(boxes, self.camera, c.pixel_std)
        keep = (scores >= c.low_score) & np.isfinite(points).all(axis=1) & np.isfinite(point_cov).all(axis=(1, 2))
        boxes, scores, labels, points, point_cov = boxes[keep], scores[keep], labels[keep], points[keep], point_cov[keep]
        self._predict(motion)
        predicted = _boxes_from_state(self.image_mean)
        high = np.flatnonzero(scores >= c.high_score)
        low = np.flatnonzero(scores < c.high_score)
        everyone = np.arange(len(self.ids))
        first, unmatched_tracks = self._associate(everyone, high, predicted, boxes, labels, c.match_iou)
        confirmed_left = unmatched_tracks[self.hits[unmatched_tracks] >= c.min_hits]
        second, _ = self._associate(confirmed_left, low, predicted, boxes, labels, c.low_match_iou)
        matches = first + second
        track_index = np.array([t for t, _ in matches], np.int64)
        det_index = np.array([d for _, d in matches], np.int64)
        self._correct(track_index, det_index, boxes, points, point_cov)
        order = np.argsort(self.ids[track_index])
        tracks = [Track(int(self.ids[t]), int(self.labels[t]), boxes[d].copy(), float(scores[d]), self.ground_mean[t, :2].copy(),
                        self.ground_mean[t, 2:].copy())
                  for t, d in zip(track_index[order], det_index[order]) if self.hits[t] >= c.min_hits]  # fmt: skip
        self._age(track_index)
        matched = set(det_index.tolist())
        self._start(np.array([d for d in high if d not in matched], np.int64), boxes, labels, points, point_cov)
        return tracks

    def _predict(self, motion: tuple[float, float, float]) -> None:
        if not len(self.ids):
            return
        h = np.maximum(self.image_mean[:, 3], 1.0)
        std = np.concatenate([np.repeat(self.POSITION_STD * h[:, None], 4, 1), np.repeat(self.VELOCITY_STD * h[:, None], 4, 1)], 1)
        self.image_mean, self.image_cov = _kf_predict(self.image_mean, self.image_cov, self.F_image, _diag(std**2))
        dx, dy, dyaw = motion  # move the ground states into the new ego frame: p' = R(-dyaw)(p - t), v' = R(-dyaw) v
        cos, sin = math.cos(dyaw), math.sin(dyaw)
        R = np.kron(np.eye(2), np.array([[cos, sin], [-sin, cos]]))
        self.ground_mean = (self.ground_mean - [dx, dy, 0.0, 0.0]) @ R.T
        self.ground_cov = R @ self.ground_cov @ R.T
        self.ground_mean, self.ground_cov = _kf_predict(self.ground_mean, self.ground_cov, self.F_ground, self.Q_ground)

    def _associate(self, tracks: np.ndarray, dets: np.ndarray, predicted: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                   min_iou: float) -> tuple[list[tuple[int, int]], np.ndarray]:  # fmt: skip
        """Hungarian matching of ``tracks`` to ``dets`` (indices) on IoU, same class only, IoU >= ``min_iou``;
        returns the (track, detection) pairs and the unmatched tracks."""
        if not len(tracks) or not len(dets):
            return [], tracks
        iou = box_iou(_widen(predicted[tracks], self.config.buffer), _widen(boxes[dets], self.config.buffer))
        iou[self.labels[tracks][:, None] != labels[dets][None, :]] = 0.0
        rows, cols = linear_sum_assignment(1.0 - iou)
        good = iou[rows, cols] >= min_iou
        unmatched = np.ones(len(tracks), bool)
        unmatched[rows[good]] = False
        return [(int(tracks[r]), int(dets[col])) for r, col in zip(rows[good], cols[good])], tracks[unmatched]

    def _correct(self, tracks: np.ndarray, dets: np.ndarray, boxes: np.ndarray, points: np.ndarray, point_cov: np.ndarray) -> None:
        if not len(tracks):
            return
        z = _state_from_boxes(boxes[dets])
        R = _diag((self.POSITION_STD * np.maximum(z[:, 3:4], 1.0)).repeat(4, 1) ** 2)
        self.image_mean[tracks], self.image_cov[tracks] = _kf_update(self.image_mean[tracks], self.image_cov[tracks], z, R)
        self.ground_mean[tracks], self.ground_cov[tracks] = _kf_update(self.ground_mean[tracks], self.ground_cov[tracks],
                                                                       points[dets], point_cov[dets])  # fmt: skip
        self.hits[tracks] += 1

    def _age(self, matched: np.ndarray) -> None:
        """Count a miss for every unmatched track; end tentative ones and those missing for longer than max_age_s."""
        missed = np.ones(len(self.ids), bool)
        missed[matched] = False
        self.misses[missed] += 1
        self.misses[~missed] = 0
        alive = ~missed | ((self.hits >= self.config.min_hits) & (self.misses <= self.max_misses))
        for name in ("ids", "labels", "hits", "misses", "image_mean", "image_cov", "ground_mean", "ground_cov"):
            setattr(self, name, getattr(self, name)[alive])

    def _start(self, dets: np.ndarray, boxes: np.ndarray, labels: np.ndarray, points: np.ndarray, point_cov: np.ndarray) -> None:
        n = len(dets)
        if not n:
            return
        z = _state_from_boxes(boxes[dets])
        image_mean = np.concatenate([z, np.zeros((n, 4))], 1)
        h = np.maximum(z[:, 3:4], 1.0)
        image_cov = _diag(np.concatenate([(2 * self.POSITION_STD * h).repeat(4, 1), (10 * self.VELOCITY_STD * h).repeat(4, 1)], 1) ** 2)
        ground_mean = np.concatenate([points[dets], np.zeros((n, 2))], 1)
        ground_cov = np.zeros((n, 4, 4))
        ground_cov[:, :2, :2] = point_cov[dets]
        ground_cov[:, 2, 2] = ground_cov[:, 3, 3] = self.config.initial_speed_std**2
        self.ids = np.concatenate([self.ids, np.arange(self.next_id, self.next_id + n)])
        self.next_id += n
        self.labels = np.concatenate([self.labels, labels[dets]])
        self.hits = np.concatenate([self.hits, np.ones(n, np.int64)])
        self.misses = np.concatenate([self.misses, np.zeros(n, np.int64)])
        self.image_mean, self.image_cov = np.concatenate([self.image_mean, image_mean]), np.concatenate([self.image_cov, image_cov])
        self.ground_mean, self.ground_cov = np.concatenate([self.ground_mean, ground_mean]), np.concatenate([self.ground_cov, ground_cov])


def _diag(variances: np.ndarray) -> np.ndarray:
    """(N,n) variances -> (N,n,n) diagonal covariances."""
    out = np.zeros(variances.shape + (variances.shape[-1],))
    index = np.arange(variances.shape[-1])
    out[:, index, index] = variances
    return out


def _state_from_boxes(boxes: np.ndarray) -> np.ndarray:
    """(N,4) x1 y1 x2 y2 -> (N,4) centre x, centre y, width, height."""
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2, boxes[:, 2] - boxes[:, 0],
                     boxes[:, 3] - boxes[:, 1]], axis=1)  # fmt: skip


def _widen(boxes: np.ndarray, fraction: float) -> np.ndarray:
    """(N,4) boxes widened by ``fraction`` of their width and height on each side."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes + fraction * np.stack([-w, -h, w, h], axis=1)


def _boxes_from_state(mean: np.ndarray) -> np.ndarray:
    cx, cy, w, h = mean[:, 0], mean[:, 1], np.maximum(mean[:, 2], 0.0), np.maximum(mean[:, 3], 0.0)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
