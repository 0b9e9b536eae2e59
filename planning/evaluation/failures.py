"""Where a drive fails: its routes grouped by kind of route (the traffic mixes of the generated suites), with
outcomes and infractions counted per group, and the worst routes listed (``drivestack failures``)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
from drivestack.planning.evaluation.metrics import RouteResult
from drivestack.planning.evaluation.stats import finished_records

OUTCOMES = ("completed", "blocked", "timeout", "deviated")
GENERATED_NAME = re.compile(r"^[a-z]+\d+_(?P<kind>[a-z]+)_t\d+$")  # <prefix><index>_<mix>_t<town>


def route_kind(name: str) -> str:
    """The mix a generated suite drew the route from (``v003_crowdlong_t4000`` -> ``crowdlong``); other routes: ``-``."""
    match = GENERATED_NAME.match(name)
    return match["kind"] if match else "-"


def read_results(folder: str | Path) -> list[RouteResult]:
    """The finished routes of a ``drivestack drive`` results folder."""
    return [RouteResult.from_record(record) for record in finished_records(folder).values()]


def failure_table(results: list[RouteResult]) -> str:
    """Markdown: one row per kind of route and one for all, with mean driving score and route completion, the
    outcomes, the infractions (counts and per km) and the mean share of the distance driven outside route lanes."""
    kinds = sorted({route_kind(r.name) for r in results})
    infractions = sorted({k for r in results for k in r.infractions})
    head = ["route kind", "routes", "km", "driving score", "route completion", *OUTCOMES, *infractions, "infractions per km",
            "outside lanes"]  # fmt: skip
    rows = [head, ["---"] * len(head)]
    for kind in [*kinds, "all"] if len(kinds) > 1 else ["all"]:
        group = [r for r in results if kind in ("all", route_kind(r.name))]
        km = sum(r.distance_m for r in group) / 1000.0
        outcomes = Counter(r.outcome for r in group)
        counts = Counter()
        for r in group:
            counts.update(r.infractions)
        rows.append([f"**{kind}**" if kind == "all" else kind, str(len(group)), f"{km:.1f}",
                     f"{np.mean([r.driving_score for r in group]):.1f}", f"{np.mean([r.completion for r in group]):.1f} %",
                     *(str(outcomes[o]) for o in OUTCOMES), *(str(counts[i]) for i in infractions),
                     f"{sum(counts.values()) / km:.2f}" if km > 0 else "-", f"{np.mean([r.outside_lanes_pct for r in group]):.1f} %"])  # fmt: skip
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def worst_routes(results: list[RouteResult], count: int = 10) -> str:
    """Markdown: the ``count`` routes of lowest driving score, with what ended or marred each."""
    rows = ["| route | kind | driving score | route completion | outcome | infractions |", "|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r.driving_score, r.name))[:count]:
        marred = [f"{k} {v}" for k, v in sorted(r.infractions.items())]
        marred += [f"outside lanes {r.outside_lanes_pct:.1f} %"] if r.outside_lanes_pct > 0 else []
        rows.append(f"| {r.name} | {route_kind(r.name)} | {r.driving_score:.1f} | {r.completion:.1f} % | {r.outcome} | {', '.join(marred) or '-'} |")
    return "\n".join(rows)
