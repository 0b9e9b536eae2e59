"""Drive an agent over a route suite and report leaderboard metrics (per-route JSON, summary, videos)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sim.settings import SimConfig


@dataclass
class DriveConfig:
    agent: Literal["expert", "policy"] = "expert"  # (str) which agent drives: the privileged expert or the learned policy
    model: str = "models/driving.pt"  # (str) driving-model checkpoint of the policy agent
    camera: str = "front"  # (str) camera the policy agent reads
    suite: str = "configs/routes/heldout.yaml"  # (str) route suite file
    routes: list[str] = field(default_factory=list)  # (list[str]) only these route names; empty: all
    out: str = "runs/drive"  # (str) results folder; a re-run resumes, skipping finished routes
    videos: bool = False  # (bool) write an MP4 with overlays and a top-down map per route
    sim: SimConfig = field(default_factory=SimConfig)


CONFIG_CLASS = DriveConfig
DEFAULT_CONFIG = "drive.yaml"


def make_agent_factory(config: DriveConfig):
    """A function returning the agent for each route (the policy's model is loaded once)."""
    from planning.agent import ExpertAgent

    if config.agent == "expert":
        return ExpertAgent
    from planning.policy_agent import PolicyAgent

    agent = PolicyAgent(config.model, config.camera)
    return lambda: agent


def run(config: DriveConfig) -> int:
    from planning.evaluation import load_suite, run_suite
    from tools.expert_eval import format_table

    suite = load_suite(config.suite)
    results, summary = run_suite(make_agent_factory(config), suite, config.sim, Path(config.out), config.videos, config.routes or None)
    print(format_table(results, summary))
    print(f"results in {config.out}/summary.json")
    return 0
