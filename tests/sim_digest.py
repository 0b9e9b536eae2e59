"""Digests of every field of the embedded simulator's observations over an expert drive, to check that a change
kept the simulation bit for bit: record them with one version, compare with another.

    python tests/sim_digest.py record before.json   # with the old code importable as drivestack
    python tests/sim_digest.py compare before.json  # with the new one; names the first step and field that differ
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import sys

import numpy as np

EPISODES = ((0, 1, 2000.0), (7, 3, 2000.0), (3, 2, 100.0))  # (episode seed, town seed, route metres); the last one ends


def _feed(h, value) -> None:
    """Feed ``value`` into ``h`` exactly: types, dtypes, shapes and bytes (a float and a numpy float differ)."""
    h.update(type(value).__name__.encode())
    if isinstance(value, np.ndarray):
        h.update(f"{value.dtype}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            _feed(h, getattr(value, f.name))
    elif isinstance(value, dict):
        for k, v in value.items():
            _feed(h, k)
            _feed(h, v)
    elif isinstance(value, (list, tuple)):
        h.update(str(len(value)).encode())
        for v in value:
            _feed(h, v)
    elif isinstance(value, enum.Enum):
        h.update(repr(value).encode())
    else:
        h.update(repr(value).encode())


def observation_digest(obs) -> dict[str, str]:
    """One digest per field of an observation."""
    out = {}
    for f in dataclasses.fields(obs):
        h = hashlib.sha256()
        _feed(h, getattr(obs, f.name))
        out[f.name] = h.hexdigest()[:16]
    return out


def drive_digests(steps: int, vehicles: int = 20, pedestrians: int = 10) -> list[dict[str, str]]:
    """Digests of the observations of an expert driving ``steps`` rendered steps in each of ``EPISODES``."""
    from drivestack.planning.agents.expert import ExpertAgent
    from drivestack.sim.embedded.backend import EmbeddedSimulator
    from drivestack.sim.interface import RouteSpec
    from drivestack.sim.settings import SimConfig, TrafficConfig

    config = SimConfig(traffic=TrafficConfig(vehicles=vehicles, pedestrians=pedestrians))
    digests = []
    with EmbeddedSimulator(config) as sim:
        for seed, town, length in EPISODES:
            expert = ExpertAgent()
            expert.setup(config)
            obs = sim.reset(seed, RouteSpec(town=town, length=length))
            digests.append(observation_digest(obs))
            for _ in range(steps):
                obs = sim.step(expert.run_step(obs))
                digests.append(observation_digest(obs))
    return digests


def main(argv: list[str]) -> int:
    mode, path = argv[0], argv[1]
    steps = int(argv[2]) if len(argv) > 2 else 300
    digests = drive_digests(steps)
    if mode == "record":
        with open(path, "w") as f:
            json.dump(digests, f)
        print(f"{len(digests)} observations recorded in {path}")
        return 0
    with open(path) as f:
        reference = json.load(f)
    for i, (a, b) in enumerate(zip(reference, digests)):
        differ = [k for k in a if a[k] != b.get(k)]
        if differ:
            print(f"observation {i} differs in {differ}")
            return 1
    if len(reference) != len(digests):
        print(f"{len(reference)} observations recorded, {len(digests)} now")
        return 1
    print(f"all {len(digests)} observations identical, every field")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
