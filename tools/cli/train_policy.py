"""Train the driving policy by imitation (privileged ground truth or perception predictions as input)."""

from __future__ import annotations

from drivestack.planning.policy.train import PolicyTrainConfig, train_policy

CONFIG_CLASS = PolicyTrainConfig
DEFAULT_CONFIG = "policy.yaml"


def run(config: PolicyTrainConfig) -> int:
    return train_policy(config)
