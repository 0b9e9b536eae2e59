"""Drive the expert on one route and write an MP4 with overlays, a contact sheet PNG and a town map."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
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


def show(config: ShowConfig) -> int:
    from drivestack.planning.agents.expert import ExpertAgent
    from drivestack.sim.embedded.backend import EmbeddedSimulator
    from drivestack.sim.visualize import VideoWriter, render_frame

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    sheet = []
    with EmbeddedSimulator(config.sim) as sim, VideoWriter(out / "drive.mp4", fps=20 / config.every) as video:
        expert = ExpertAgent()
        expert.setup(config.sim)
        obs = sim.reset(config.seed, RouteSpec(town=config.town, length=config.route_length))
        trail = []
        for step in tqdm(range(config.max_steps), desc="show", unit="step"):
            render = step % config.every == 0
            obs = sim.step(expert.run_step(obs), render=render)
            trail.append((obs.ego.pose.x, obs.ego.pose.y))
            if render:
                frame = render_frame(obs, scale=config.scale)
                video.write(frame)
                if step % (config.every * 60) == 0 and len(sheet) < 6:
                    sheet.append(frame)
            if obs.done:
                break
        cv2.imwrite(str(out / "map.png"), sim.top_down_map(np.array(trail))[:, :, ::-1])
    if sheet:
        cv2.imwrite(str(out / "frames.png"), np.vstack(sheet)[:, :, ::-1])
    print(f"wrote {out / 'drive.mp4'}, {out / 'frames.png'}, {out / 'map.png'}")
    return 0
