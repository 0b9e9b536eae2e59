"""The whole pipeline in one command: collect expert episodes, train perception, train the policy (ground
truth, then perception outputs, then DAgger rounds), evaluate perception, export ONNX (fp32, int8), drive
the held-out suite with the ONNX engine and the expert, benchmark latency, write a report. A stage whose
output exists and is complete is skipped, so a re-run resumes."""

from __future__ import annotations

from drivestack.planning.pipeline import PipelineConfig, run_pipeline

CONFIG_CLASS = PipelineConfig
DEFAULT_CONFIG = "quickstart.yaml"


def run(config: PipelineConfig) -> int:
    return run_pipeline(config)
