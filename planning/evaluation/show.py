"""Drive the expert on one route and write an MP4 with overlays (infractions flagged as the route scorer counts
them), a contact sheet PNG and a town map with its infractions marked."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from drivestack.common.io import ensure_writable
from drivestack.sim.interface import RouteSpec
from drivestack.sim.settings import SimConfig
from tqdm import tqdm


@dataclass
class ShowConfig:
    out: str = "runs/show"  # (str) output folder
    town: int = 0  # (int) town seed
    seed: int = 0  # (int) episode seed
    route_length: float = 200.0  # (float) metres
    max_steps: int = 1200  # (int) stop after this many steps
    every: int = 2  # (int) write every n-th step to the video
    scale: int = 2  # (int) upscaling of the camera image in the video
    sim: SimConfig = field(default_factory=SimConfig)

    def __post_init__(self) -> None:
        if self.every < 1 or self.scale < 1 or self.max_steps < 1 or self.route_length <= 0:
            raise ValueError(f"every, scale and max_steps must be >= 1 and route_length > 0, got {self.every}, {self.scale}, "
                             f"{self.max_steps}, {self.route_length}")  # fmt: skip
        if self.sim.backend != "embedded":
            raise ValueError(f"sim.backend must be 'embedded': show drives the embedded simulator (for a CARLA drive "
                             f"with videos: drivestack drive sim.backend=carla videos=true), got '{self.sim.backend}'")  # fmt: skip


def show(config: ShowConfig) -> int:
    from drivestack.planning.agents.expert import ExpertAgent
    from drivestack.planning.evaluation.metrics import RouteScorer
    from drivestack.sim.embedded.backend import EmbeddedSimulator
    from drivestack.sim.visualize import VideoWriter, render_frame

    out = ensure_writable(config.out)
    sheet = []
    with EmbeddedSimulator(config.sim) as sim, VideoWriter(out / "drive.mp4", fps=20 / config.every) as video:
        expert = ExpertAgent()
        expert.setup(config.sim)
        obs = sim.reset(config.seed, RouteSpec(town=config.town, length=config.route_length))
        scorer = RouteScorer("show")
        trail = []
        for step in tqdm(range(config.max_steps), desc="show", unit="step"):
            render = step % config.every == 0
            obs = sim.step(expert.run_step(obs), render=render)
            scorer.update(obs)
            trail.append((obs.ego.pose.x, obs.ego.pose.y))
            if render:
                frame = render_frame(obs, scale=config.scale, flags=scorer.flags())
                video.write(frame)
                if step % (config.every * 60) == 0 and len(sheet) < 6:
                    sheet.append(frame)
            if obs.done:
                break
        cv2.imwrite(str(out / "map.png"), sim.top_down_map(np.array(trail), scorer.marks())[:, :, ::-1])
    if sheet:
        cv2.imwrite(str(out / "frames.png"), np.vstack(sheet)[:, :, ::-1])
    print(f"wrote {out / 'drive.mp4'}, {out / 'frames.png'}, {out / 'map.png'}")
    return 0
