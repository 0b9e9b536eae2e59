"""Drive the expert on seeded routes in held-out towns and report leaderboard metrics (resumable)."""

from __future__ import annotations

from drivestack.planning.evaluation.drive import ExpertEvalConfig, evaluate_expert

CONFIG_CLASS = ExpertEvalConfig
DEFAULT_CONFIG = "expert.yaml"


def run(config: ExpertEvalConfig) -> int:
    return evaluate_expert(config)
