"""Drive an agent over a route suite and report leaderboard metrics (per-route JSON, summary, videos)."""

from __future__ import annotations

from drivestack.planning.evaluation.drive import DriveConfig, drive_suite

CONFIG_CLASS = DriveConfig
DEFAULT_CONFIG = "drive.yaml"


def run(config: DriveConfig) -> int:
    return drive_suite(config)
