"""Statistics that come with every suite result: 95 % bootstrap confidence intervals over routes
(``scipy.stats.bootstrap``, BCa), and the paired comparison of two result folders on the same routes."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from drivestack.common.errors import InputError
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 9999
SEED = 0  # the intervals of one result are the same on every call


def bootstrap_ci(samples: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray]) -> list[float]:
    """[low, high] of ``statistic`` (vectorised, ``axis`` keyword) over routes resampled with replacement;
    the samples are paired (one value per route in each array). Routes that all agree give a zero-width interval."""
    samples = tuple(np.asarray(s, np.float64) for s in samples)
    point = float(statistic(*samples, axis=-1))
    if len(samples[0]) < 2 or all(np.all(s == s[0]) for s in samples):
        return [point, point]
    for method in ("BCa", "percentile"):  # BCa is undefined for some degenerate samples (few distinct values)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ci = stats.bootstrap(samples, statistic, paired=True, vectorized=True, confidence_level=CONFIDENCE,
                                 n_resamples=RESAMPLES, method=method, random_state=np.random.default_rng(SEED)).confidence_interval  # fmt: skip
        if np.all(np.isfinite([ci.low, ci.high])):
            break
    return [float(ci.low), float(ci.high)]


def mean_ci(values: list[float] | np.ndarray) -> list[float]:
    """95 % CI of the mean of ``values``."""
    return bootstrap_ci((np.asarray(values),), np.mean)


def ratio_ci(counts: list[float] | np.ndarray, distances: list[float] | np.ndarray) -> list[float]:
    """95 % CI of sum(counts) / sum(distances) (infractions per km) over routes."""
    return bootstrap_ci((np.asarray(counts), np.asarray(distances)), lambda c, d, axis: c.sum(axis) / np.maximum(d.sum(axis), 1e-9))


@dataclass
class RouteDifference:
    name: str
    score_a: float
    score_b: float
    outcome_a: str
    outcome_b: str
    infractions_a: dict[str, int]
    infractions_b: dict[str, int]

    @property
    def difference(self) -> float:
        return self.score_b - self.score_a

    def why(self) -> str:
        """What changed on the route, in words: its outcome and each infraction count that differs."""
        parts = [f"{self.outcome_a} -> {self.outcome_b}"] if self.outcome_a != self.outcome_b else []
        for kind in sorted(set(self.infractions_a) | set(self.infractions_b)):
            a, b = self.infractions_a.get(kind, 0), self.infractions_b.get(kind, 0)
            if a != b:
                parts.append(f"{kind} {a} -> {b}")
        return ", ".join(parts) or "same outcome and infractions (completion or lanes)"


@dataclass
class Comparison:
    a: str
    b: str
    routes: list[RouteDifference]
    only_in_one: list[str]

    @property
    def mean_difference(self) -> float:
        return float(np.mean([r.difference for r in self.routes]))

    @property
    def ci(self) -> list[float]:
        """Paired bootstrap 95 % CI of the mean difference in driving score (B - A)."""
        return mean_ci([r.difference for r in self.routes])

    def flipped(self) -> list[RouteDifference]:
        """Routes whose outcome or infractions changed, largest change in score first."""
        return sorted((r for r in self.routes if r.outcome_a != r.outcome_b or r.infractions_a != r.infractions_b),
                      key=lambda r: -abs(r.difference))  # fmt: skip

    def table(self) -> str:
        lines = [f"A = {self.a}", f"B = {self.b}", "", f"{'route':<26}{'A':>7}{'B':>7}{'B-A':>8}  why"]
        for r in self.flipped():
            lines.append(f"{r.name:<26}{r.score_a:7.1f}{r.score_b:7.1f}{r.difference:+8.1f}  {r.why()}")
        same = len(self.routes) - len(self.flipped())
        lo, hi = self.ci
        lines += ["", f"{len(self.routes)} routes in both ({same} with the same outcome and infractions); "
                      f"driving score A {np.mean([r.score_a for r in self.routes]):.1f}, B {np.mean([r.score_b for r in self.routes]):.1f}",
                  f"mean difference B - A: {self.mean_difference:+.1f} (paired bootstrap 95 % CI {lo:+.1f} to {hi:+.1f})"]  # fmt: skip
        if self.only_in_one:
            lines.append(f"left out, in one folder only: {', '.join(self.only_in_one)}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "mean_difference": self.mean_difference, "ci": self.ci,
                "routes": [asdict(r) | {"difference": r.difference} for r in self.routes], "only_in_one": self.only_in_one}  # fmt: skip


def finished_records(folder: str | Path) -> dict[str, dict]:
    """The finished route records of a ``drivestack drive`` results folder (an interrupted drive's too), by name."""
    records = [json.loads(p.read_text()) for p in sorted((Path(folder) / "routes").glob("*.json"))]
    finished = {r["name"]: r for r in records if r.get("status") == "finished"}
    if not finished:
        raise InputError(f"{folder}: no finished route in {folder}/routes; give a folder that `drivestack drive` wrote")
    return finished


def compare(a: str | Path, b: str | Path) -> Comparison:
    """Route by route, the results in folder ``b`` against those in ``a`` (routes of the same name)."""
    routes_a, routes_b = finished_records(a), finished_records(b)
    common = [name for name in routes_a if name in routes_b]
    if not common:
        raise InputError(f"{a} and {b} share no route: compare results of the same suite")
    differences = [RouteDifference(n, routes_a[n]["driving_score"], routes_b[n]["driving_score"], routes_a[n]["outcome"],
                                   routes_b[n]["outcome"], routes_a[n]["infractions"], routes_b[n]["infractions"]) for n in common]  # fmt: skip
    return Comparison(str(a), str(b), differences, sorted(set(routes_a) ^ set(routes_b)))
