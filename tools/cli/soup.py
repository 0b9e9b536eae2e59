"""Average the weights of checkpoints of one model (a uniform model soup), e.g. the last DAgger rounds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from drivestack.common.checkpoint import save_checkpoint
from drivestack.common.training.averaging import average_checkpoints


@dataclass
class SoupConfig:
    checkpoints: list[str] = field(default_factory=list)  # (list[str]) checkpoints of one model to average, e.g. [runs/policy_dagger3/last.pt, runs/policy_dagger4/last.pt]
    out: str = "runs/policy_soup/last.pt"  # (str) the averaged checkpoint


CONFIG_CLASS = SoupConfig
DEFAULT_CONFIG = "soup.yaml"


def run(config: SoupConfig) -> int:
    if len(config.checkpoints) < 2:
        print(f"soup: checkpoints needs two or more files, got {config.checkpoints}")
        return 2
    missing = [c for c in config.checkpoints if not Path(c).is_file()]
    if missing:
        print(f"soup: checkpoints not found: {', '.join(missing)}")
        return 2
    save_checkpoint(config.out, average_checkpoints(config.checkpoints))
    print(f"{config.out}: mean of the weights of {len(config.checkpoints)} checkpoints ({', '.join(config.checkpoints)})")
    return 0
