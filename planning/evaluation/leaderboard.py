"""Route results in the CARLA leaderboard's own results format (leaderboard 1.0's ``StatisticsManager``:
``_checkpoint`` with ``global_record``, ``progress`` and ``records``, then ``entry_status``, ``eligible``,
``sensors``, ``values`` and ``labels``), so the leaderboard's tools and scripts written for it read them."""

from __future__ import annotations

import math
from pathlib import Path

from drivestack.common.io import write_json_atomic
from drivestack.planning.evaluation.metrics import Infraction, RouteResult

# the leaderboard's infraction lists, in its order, and the kind of event that fills each
INFRACTION_KEYS = {
    "collisions_pedestrian": "collision_pedestrian",
    "collisions_vehicle": "collision_vehicle",
    "collisions_layout": "collision_static",
    "red_light": "red_light",
    "stop_infraction": "stop_sign",
    "outside_route_lanes": None,
    "route_dev": "route_deviation",
    "route_timeout": None,
    "vehicle_blocked": "blocked",
}
LABELS = ["Avg. driving score", "Avg. route completion", "Avg. infraction penalty", "Collisions with pedestrians",
          "Collisions with vehicles", "Collisions with layout", "Red lights infractions", "Stop sign infractions",
          "Off-road infractions", "Route deviations", "Route timeouts", "Agent blocked"]  # fmt: skip
STATUS = {"completed": "Completed", "deviated": "Failed - Agent deviated from the route", "blocked": "Failed - Agent got blocked",
          "timeout": "Failed - Agent timed out"}  # fmt: skip


def _message(e: Infraction) -> str:
    """The leaderboard's (scenario runner's) message of an event; the location is the ego's."""
    at = f"at (x={round(e.x, 3)}, y={round(e.y, 3)}, z={round(e.z, 3)})"
    if e.kind.startswith("collision_"):
        return f"Agent collided against object with type={e.actor_kind} and id={e.actor_id} {at}"
    return {"red_light": f"Agent ran a red light {e.actor_id} {at}", "stop_sign": f"Agent ran a stop with id={e.actor_id} {at}",
            "route_deviation": f"Agent deviated from the route {at}", "blocked": f"Agent got blocked {at}"}[e.kind]  # fmt: skip


def _record(index: int, r: RouteResult) -> dict:
    infractions = {key: [_message(e) for e in r.events if e.kind == kind] if kind else [] for key, kind in INFRACTION_KEYS.items()}
    if r.outside_lanes_pct > 0:
        infractions["outside_route_lanes"].append(f"Agent went outside its route lanes for about {round(r.distance_m * r.outside_lanes_pct / 100, 3)} "
                                                  f"meters ({round(r.outside_lanes_pct, 2)}% of the completed route)")  # fmt: skip
    if r.outcome == "timeout":
        infractions["route_timeout"].append("Route timeout.")
    return {"route_id": r.name, "index": index, "status": STATUS[r.outcome], "infractions": infractions,
            "scores": {"score_route": r.completion, "score_penalty": r.penalty, "score_composed": r.driving_score},
            "meta": {"route_length": r.route_length, "duration_game": r.duration_s}}  # fmt: skip


def write_leaderboard(results: list[RouteResult], path: Path) -> dict:
    """Write ``results`` (every route of a suite, finished) to ``path`` as the leaderboard writes its results
    file, and return it. The global record holds the means of the route scores, their standard deviations and
    the infractions per km driven along the routes (route length x completion, as leaderboard 2.x fixed 1.0's
    sum of per-route rates). Not known here: each route's system duration (left out) and the agent's sensors (an
    empty list)."""
    records = [_record(i, r) for i, r in enumerate(results)]
    n = len(records)
    scores = {k: sum(r["scores"][k] for r in records) / n for k in ("score_route", "score_penalty", "score_composed")}
    std = {k: math.sqrt(sum((r["scores"][k] - m) ** 2 for r in records) / (n - 1)) if n > 1 else "NaN" for k, m in scores.items()}
    km = max(sum(r.route_length / 1000 * r.completion / 100 for r in results), 0.001)
    per_km = {key: sum(len(r["infractions"][key]) for r in records) / km for key in INFRACTION_KEYS}
    failed = [(r["route_id"], r["index"], r["status"]) for r in records if r["status"] != "Completed"]
    meta = {"total_length": sum(r.route_length for r in results), "duration_game": sum(r.duration_s for r in results)}
    global_record = {"route_id": -1, "index": -1, "status": "Failed" if failed else "Completed", "infractions": per_km,
                     "scores": scores, "scores_std_dev": std, "meta": {**meta, "exceptions": failed} if failed else meta}  # fmt: skip
    data = {
        "_checkpoint": {"global_record": global_record, "progress": [n, n], "records": records},
        "entry_status": "Finished",
        "eligible": True,
        "sensors": [],
        "values": [f"{v:.3f}" for v in (scores["score_composed"], scores["score_route"], scores["score_penalty"], *per_km.values())],
        "labels": LABELS,
    }
    write_json_atomic(path, data)
    return data
