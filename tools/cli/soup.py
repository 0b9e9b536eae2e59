"""Average the weights of checkpoints of one model (a uniform model soup), e.g. the last DAgger rounds."""

from __future__ import annotations

from drivestack.common.training.averaging import SoupConfig, soup

CONFIG_CLASS = SoupConfig
DEFAULT_CONFIG = "soup.yaml"


def run(config: SoupConfig) -> int:
    return soup(config)
