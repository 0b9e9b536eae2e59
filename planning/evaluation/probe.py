"""Probe a driving policy on recorded frames where the car stands at a light: how often it brakes when the
expert would go (green) and when the expert waits (red), and how often the creep gates (planning/agents/creep.py:
no red or yellow light seen, nothing in the corridor ahead) would let it drive off. Run it on a DAgger round
the policy did not train on to tell learning the light from memorising the stops (docs/policy.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from drivestack.common.config import config_from_dict
from drivestack.perception.classes import classes_from_meta
from drivestack.planning.agents.creep import CreepConfig, CreepGates
from drivestack.planning.agents.learned import TorchDriver, brake_probability
from drivestack.sim.conventions import TrafficLightState
from drivestack.sim.record.dataset_io import image_path, list_episodes, load_manifest, read_measurements, read_rgb
from drivestack.sim.settings import CameraConfig
from tqdm import tqdm


@dataclass
class ProbeConfig:
    model: str = "models/driving.pt"  # (str) driving-model checkpoint
    data: str = "data/dagger"  # (str) recorded dataset (collect or dagger) to probe on
    camera: str = "front"  # (str) camera of the dataset
    standing_below: float = 0.3  # (float) m/s: a frame with the ego slower than this is standing
    light_within: float = 15.0  # (float) metres to the stop line at most
    go_above: float = 1.0  # (float) m/s: an expert target speed above this means "go"
    frames: int = 200  # (int) frames probed per group at most (a seeded sample)
    seed: int = 0  # (int) seeds the sample
    out: str = ""  # (str) JSON file for the results; empty = print only
    groups: list[str] = field(default_factory=lambda: ["green_go", "red_wait"])  # (list[str]) green_go | red_wait
    creep: CreepConfig = field(default_factory=CreepConfig)  # the creep gates checked on each frame (as in configs/drive.yaml)


def standing_frames(config: ProbeConfig) -> dict[str, list[tuple[Path, dict]]]:
    """Frames standing within ``light_within`` of a green light with the expert going, and of a red light with
    the expert waiting."""
    groups: dict[str, list[tuple[Path, dict]]] = {"green_go": [], "red_wait": []}
    for episode in list_episodes(config.data):
        for record in read_measurements(episode / "measurements.jsonl"):
            light, target = record["traffic_light"], record["expert_target_speed"]
            if record["speed"] >= config.standing_below or light["distance"] is None or light["distance"] > config.light_within:
                continue
            if light["state"] == TrafficLightState.GREEN and target is not None and target > config.go_above:
                groups["green_go"].append((episode, record))
            elif light["state"] == TrafficLightState.RED and target is not None and target < 0.3:
                groups["red_wait"].append((episode, record))
    return {name: groups[name] for name in config.groups}


def probe(config: ProbeConfig) -> int:
    driver = TorchDriver(config.model)
    manifest = load_manifest(config.data)
    ext = manifest.format.rgb_format
    cameras = {c["name"]: c for c in manifest.config["sim"]["cameras"]}
    camera = config_from_dict(CameraConfig, cameras[config.camera], f"{config.data} manifest camera")
    gates = CreepGates(config.creep, camera, classes_from_meta(driver.meta, driver.source))
    rng = np.random.default_rng(config.seed)
    results = {}
    for name, frames in standing_frames(config).items():
        picks = rng.choice(len(frames), min(config.frames, len(frames)), replace=False) if frames else []
        probabilities, creep_allowed = [], []
        for i in tqdm(sorted(picks), desc=name, unit="frame"):
            episode, record = frames[i]
            rgb = read_rgb(image_path(episode, "rgb", config.camera, record["frame"], ext))
            out = driver(rgb, record["speed"], record["command"], np.asarray(record["target_point"], np.float32))
            probabilities.append(brake_probability(out))
            check = gates.check(out["heatmap"], out["box"])
            creep_allowed.append(not (check.stop_light or check.obstacle))
        p = np.array(probabilities)
        results[name] = {"frames_found": len(frames), "probed": len(p),
                         "brake_rate": float((p > 0.5).mean()) if len(p) else None,
                         "median_brake_probability": float(np.median(p)) if len(p) else None,
                         "creep_allowed_rate": float(np.mean(creep_allowed)) if len(p) else None}  # fmt: skip
        rate = "-" if not len(p) else f"{results[name]['brake_rate']:.2f}"
        allowed = "-" if not len(p) else f"{results[name]['creep_allowed_rate']:.2f}"
        print(f"{name:<9} {len(frames):>6} frames, {len(p):>4} probed: brakes on {rate} of them "
              f"(median probability {np.median(p) if len(p) else float('nan'):.2f}); creep gates open on {allowed}")  # fmt: skip
    if config.out:
        Path(config.out).parent.mkdir(parents=True, exist_ok=True)
        Path(config.out).write_text(json.dumps({"model": config.model, "data": config.data, "results": results}, indent=2))
    return 0
