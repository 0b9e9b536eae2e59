"""Drive the expert on one route and write an MP4 with overlays, a contact sheet PNG and a town map."""

from __future__ import annotations

from drivestack.planning.evaluation.show import ShowConfig, show

CONFIG_CLASS = ShowConfig
DEFAULT_CONFIG = "show.yaml"


def run(config: ShowConfig) -> int:
    return show(config)
