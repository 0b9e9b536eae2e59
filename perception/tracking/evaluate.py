"""Tracking measured against the simulator's truth: identity metrics with TrackEval (HOTA, CLEAR MOT, Identity;
the reference implementation of Luiten et al.), and the errors of estimated range and speed.

Ground truth per frame: the camera's boxes of vehicles and pedestrians with their actor ids; boxes smaller than
the evaluation's limits (height, visibility) are *ignored*: a track on one counts neither as a hit nor a false
positive (as MOTChallenge treats distractors). Range truth: the distance from the ego's centre to the nearest
point, seen from the camera, of the actor's footprint (the near face the contact point stands for); speed truth:
the actor's speed over the ground; time-to-collision truth: :func:`time_to_collision` of those true points and
velocities along the ego's planned path, scored per frame as an alarm (below 1 s, the emergency brake's
threshold) raised or missed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from drivestack.perception.tracking.tracker import Track, box_iou
from drivestack.perception.tracking.ttc import time_to_collision, tracks_time_to_collision
from drivestack.sim.interface import ActorState, Box2D, EgoState
from drivestack.sim.settings import CameraConfig
from scipy.optimize import linear_sum_assignment

MATCH_IOU = 0.5  # a track and a ground-truth box of IoU at least this are the same object (CLEAR MOT's threshold)


@dataclass
class FrameTracks:
    """One evaluated frame: ground-truth actor ids and boxes, track ids and boxes."""

    gt_ids: np.ndarray  # (n,)
    gt_boxes: np.ndarray  # (n,4)
    track_ids: np.ndarray  # (m,)
    track_boxes: np.ndarray  # (m,4)


@dataclass
class EstimateErrors:
    """Matched (track, truth) pairs: estimated and true range (m) and speed over the ground (m/s)."""

    range_est: list[float] = field(default_factory=list)
    range_true: list[float] = field(default_factory=list)
    speed_est: list[float] = field(default_factory=list)
    speed_true: list[float] = field(default_factory=list)

    def summary(self, near_m: float = 20.0) -> dict[str, float]:
        """Mean and median absolute errors, all pairs and those nearer than ``near_m``; NaN without pairs."""
        r_est, r_true = np.array(self.range_est), np.array(self.range_true)
        s_est, s_true = np.array(self.speed_est), np.array(self.speed_true)
        out: dict[str, float] = {"pairs": len(r_est)}
        for name, keep in (("", np.ones(len(r_true), bool)), (f"_under_{near_m:g}m", r_true < near_m)):
            range_err, speed_err = np.abs(r_est - r_true)[keep], np.abs(s_est - s_true)[keep]
            out[f"range_mae{name}"] = _mean(range_err)
            out[f"range_median_ae{name}"] = _median(range_err)
            out[f"range_median_rel{name}"] = _median(range_err / np.maximum(r_true[keep], 1e-6))
            out[f"speed_mae{name}"] = _mean(speed_err)
            out[f"speed_median_ae{name}"] = _median(speed_err)
        return out


@dataclass
class TtcAlarms:
    """Frames, driving at ``min_speed`` or more, in which some object's time to collision along the ego's path is
    below ``ttc_s`` (as :mod:`drivestack.planning.agents.safety` would brake): by the truth (the actors of the
    frame's scored boxes, their true footprints and velocities) and by the tracks; and the TTC of matched pairs
    whose true TTC is under ``near_s`` (an infinite estimate counts as ``2 * near_s`` in the errors)."""

    ttc_s: float = 1.0
    min_speed: float = 1.0
    near_s: float = 5.0
    frames: int = 0
    true_alarms: int = 0
    raised: int = 0
    both: int = 0
    ttc_est: list[float] = field(default_factory=list)
    ttc_true: list[float] = field(default_factory=list)

    def add(self, tracks: list[Track], truth: list[Box2D], actors: dict[int, ActorState], ego: EgoState, path: np.ndarray,
            camera: CameraConfig) -> None:  # fmt: skip
        """One frame: ``path``, the ego's planned path in its frame (K,2)."""
        if ego.speed < self.min_speed:
            return
        est = tracks_time_to_collision(tracks, path, ego.speed)
        known = [(i, actors[b.actor_id]) for i, b in enumerate(truth) if b.actor_id in actors]
        states = [actor_ground_truth(actor, ego, camera) for _, actor in known]
        true = time_to_collision(np.array([p for p, _ in states]), np.array([v for _, v in states]), path, ego.speed)
        alarm, raised = bool((true < self.ttc_s).any()), bool((est < self.ttc_s).any())
        self.frames += 1
        self.true_alarms += alarm
        self.raised += raised
        self.both += alarm and raised
        true_by_box = {i: t for (i, _), t in zip(known, true)}
        boxes = np.array([t.box for t in tracks], np.float64).reshape(-1, 4)
        for ti, gi in match(boxes, np.array([b.as_list() for b in truth], np.float64).reshape(-1, 4)):
            if gi in true_by_box and true_by_box[gi] < self.near_s:
                self.ttc_est.append(float(est[ti]))
                self.ttc_true.append(float(true_by_box[gi]))

    def summary(self) -> dict[str, float]:
        est, true = np.array(self.ttc_est), np.array(self.ttc_true)
        return {"ttc_frames": self.frames, "ttc_alarm_frames_true": self.true_alarms, "ttc_alarm_frames_raised": self.raised,
                "ttc_alarm_recall": self.both / self.true_alarms if self.true_alarms else math.nan,
                "ttc_alarm_precision": self.both / self.raised if self.raised else math.nan,
                "ttc_pairs_near": len(true), "ttc_mae_near": _mean(np.abs(np.minimum(est, 2 * self.near_s) - true)),
                "ttc_median_ae_near": _median(np.abs(np.minimum(est, 2 * self.near_s) - true))}  # fmt: skip


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else math.nan


def _median(x: np.ndarray) -> float:
    return float(np.median(x)) if len(x) else math.nan


def split_truth(boxes: list[Box2D], kinds: set[int], min_height: float, min_visibility: float) -> tuple[list[Box2D], list[Box2D]]:
    """The frame's boxes of ``kinds``: (evaluated, ignored: lower than ``min_height`` px or less visible)."""
    mine = [b for b in boxes if int(b.kind) in kinds]
    kept = [b for b in mine if b.y2 - b.y1 >= min_height and b.visibility >= min_visibility]
    return kept, [b for b in mine if not (b.y2 - b.y1 >= min_height and b.visibility >= min_visibility)]


def frame_tracks(tracks: list[Track], truth: list[Box2D], ignored: list[Box2D], min_height: float) -> FrameTracks:
    """The frame's evaluation record: tracks lower than ``min_height`` pixels (the size range scored, as for the
    truth) or matching an ignored box (IoU >= MATCH_IOU) are left out."""
    boxes = np.array([t.box for t in tracks], np.float64).reshape(-1, 4)
    ids = np.array([t.id for t in tracks], np.int64)
    high = boxes[:, 3] - boxes[:, 1] >= min_height
    boxes, ids = boxes[high], ids[high]
    if ignored and len(boxes):
        keep = box_iou(boxes, np.array([b.as_list() for b in ignored], np.float64)).max(axis=1) < MATCH_IOU
        boxes, ids = boxes[keep], ids[keep]
    return FrameTracks(np.array([b.actor_id for b in truth], np.int64), np.array([b.as_list() for b in truth], np.float64).reshape(-1, 4),
                       ids, boxes)  # fmt: skip


def match(track_boxes: np.ndarray, gt_boxes: np.ndarray) -> list[tuple[int, int]]:
    """(track, ground truth) index pairs of one frame: Hungarian on IoU, IoU >= MATCH_IOU."""
    if not len(track_boxes) or not len(gt_boxes):
        return []
    iou = box_iou(track_boxes, gt_boxes)
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= MATCH_IOU]


def actor_truth(actor: ActorState, ego: EgoState, camera: CameraConfig) -> tuple[float, float]:
    """(range, speed) of an actor: distance from the ego centre to the point of its footprint nearest the camera,
    and its speed over the ground."""
    nearest, velocity = actor_ground_truth(actor, ego, camera)
    return float(np.hypot(*nearest)), float(np.hypot(*velocity))


def actor_ground_truth(actor: ActorState, ego: EgoState, camera: CameraConfig) -> tuple[np.ndarray, np.ndarray]:
    """What a track estimates of an actor, true, in the ego frame: the point of its footprint nearest the camera
    (the contact point a box's bottom centre stands for) and its velocity over the ground (both (2,))."""
    yaw = math.radians(ego.pose.yaw)
    dx, dy = actor.pose.x - ego.pose.x, actor.pose.y - ego.pose.y
    centre = np.array([math.cos(yaw) * dx + math.sin(yaw) * dy, -math.sin(yaw) * dx + math.cos(yaw) * dy])  # ego frame
    heading = math.radians(actor.pose.yaw) - yaw
    axes = np.array([[math.cos(heading), math.sin(heading)], [-math.sin(heading), math.cos(heading)]])  # actor x, y in ego frame
    local = axes @ (np.array([camera.x, camera.y]) - centre)  # the camera in the actor's frame
    nearest = centre + axes.T @ np.clip(local, [-actor.extent[0], -actor.extent[1]], [actor.extent[0], actor.extent[1]])
    vx, vy = actor.velocity
    return nearest, np.array([math.cos(yaw) * vx + math.sin(yaw) * vy, -math.sin(yaw) * vx + math.cos(yaw) * vy])


def add_errors(errors: EstimateErrors, tracks: list[Track], truth: list[Box2D], actors: dict[int, ActorState], ego: EgoState,
               camera: CameraConfig) -> None:  # fmt: skip
    """Add the range and speed errors of this frame's tracks matched to ground-truth boxes of known actors."""
    boxes = np.array([t.box for t in tracks], np.float64).reshape(-1, 4)
    for ti, gi in match(boxes, np.array([b.as_list() for b in truth], np.float64).reshape(-1, 4)):
        actor = actors.get(truth[gi].actor_id)
        if actor is None:
            continue
        true_range, true_speed = actor_truth(actor, ego, camera)
        errors.range_est.append(float(np.hypot(*tracks[ti].position)))
        errors.range_true.append(true_range)
        errors.speed_est.append(float(np.hypot(*tracks[ti].velocity)))
        errors.speed_true.append(true_speed)


def _trackeval_sequence(frames: list[FrameTracks]) -> dict:
    """One sequence in TrackEval's per-sequence data format (ids renumbered from 0, IoU similarities)."""
    gt_map = {int(i): k for k, i in enumerate(sorted({int(i) for f in frames for i in f.gt_ids}))}
    tr_map = {int(i): k for k, i in enumerate(sorted({int(i) for f in frames for i in f.track_ids}))}
    return {
        "num_timesteps": len(frames),
        "num_gt_ids": len(gt_map),
        "num_tracker_ids": len(tr_map),
        "num_gt_dets": sum(len(f.gt_ids) for f in frames),
        "num_tracker_dets": sum(len(f.track_ids) for f in frames),
        "gt_ids": [np.array([gt_map[int(i)] for i in f.gt_ids], np.int64) for f in frames],
        "tracker_ids": [np.array([tr_map[int(i)] for i in f.track_ids], np.int64) for f in frames],
        "similarity_scores": [box_iou(f.gt_boxes, f.track_boxes) for f in frames],
    }


def mot_metrics(sequences: dict[str, list[FrameTracks]]) -> dict[str, float]:
    """HOTA (mean over localisation thresholds), DetA, AssA, MOTA, MOTP, IDF1, ID switches, FP, FN, GT ids, over
    all ``sequences`` (name -> frames), computed by TrackEval."""
    from trackeval.metrics import CLEAR, HOTA, Identity

    metrics = {"hota": HOTA(), "clear": CLEAR({"THRESHOLD": MATCH_IOU, "PRINT_CONFIG": False}),
               "identity": Identity({"THRESHOLD": MATCH_IOU, "PRINT_CONFIG": False})}  # fmt: skip
    data = {name: _trackeval_sequence(frames) for name, frames in sequences.items()}
    combined = {key: metric.combine_sequences({name: metric.eval_sequence(d) for name, d in data.items()})
                for key, metric in metrics.items()}  # fmt: skip
    hota, clear, identity = combined["hota"], combined["clear"], combined["identity"]
    return {
        "HOTA": float(np.mean(hota["HOTA"])), "DetA": float(np.mean(hota["DetA"])), "AssA": float(np.mean(hota["AssA"])),
        "MOTA": float(clear["MOTA"]), "MOTP": float(clear["MOTP"]), "IDF1": float(identity["IDF1"]),
        "IDSW": int(clear["IDSW"]), "FP": int(clear["CLR_FP"]), "FN": int(clear["CLR_FN"]), "TP": int(clear["CLR_TP"]),
        "gt_ids": sum(d["num_gt_ids"] for d in data.values()),
    }  # fmt: skip
