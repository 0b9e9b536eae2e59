"""The perception config (``configs/perception.yaml``): one dataclass shared by the perception verbs.

``train`` reads data/classes/augment/model/train, ``val`` the ``val`` section, ``look`` and ``bench-loader``
theirs; every verb accepts the same file and ``key=value`` overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drivestack.common.training.trainer import TrainConfig
from drivestack.perception.classes import ClassMap
from drivestack.perception.data.augment import Augment, AugmentConfig
from drivestack.perception.data.dataset import DataConfig, DrivingDataset
from drivestack.perception.models.multitask import ModelConfig
from drivestack.perception.postprocess import Decoding


@dataclass
class ValConfig:
    """``drivestack val``: evaluate a checkpoint on a split."""

    checkpoint: str = "runs/perception/last.pt"  # (str) checkpoint to evaluate
    ema: bool = False  # (bool) evaluate the EMA weights when the checkpoint has them (false: the raw weights)
    split: str = "test"  # (str) train | val | test
    batch_size: int = 16  # (int) images per forward pass
    score_threshold: float = 0.01  # (float) detection score threshold for mAP (low: AP integrates over scores)
    decoding: Decoding = field(default_factory=Decoding)  # detection decoding (NMS, candidate cells) for mAP and renders
    render: int = 16  # (int) images rendered with predictions next to the ground truth
    render_threshold: float = 0.3  # (float) detection score threshold of the rendered images
    out: str = "runs/perception/val"  # (str) folder for metrics.json, metrics.txt and renders
    latency_runs: int = 50  # (int) timed forward passes (batch 1, 320x160 or the data size) for the latency


@dataclass
class LookConfig:
    """``drivestack look``: render what enters the network after augmentation, with its labels."""

    split: str = "train"  # (str) train (augmented) | val | test (not augmented)
    images: int = 16  # (int) samples in the grid
    columns: int = 4  # (int) grid columns
    start: int = 0  # (int) index of the first sample
    epoch: int = 0  # (int) augmentation epoch (augmentation depends on seed, epoch and index)
    out: str = "runs/look.png"  # (str) PNG file to write


@dataclass
class BenchLoaderConfig:
    """``drivestack bench-loader``: decode + augment + collate throughput of the training loader."""

    batch_size: int = 32  # (int) images per batch
    workers: int = 2  # (int) DataLoader worker processes
    batches: int = 100  # (int) timed batches (after one warm-up epoch start)
    cache: bool = True  # (bool) decode the split into RAM first (not timed) instead of per sample


TRAIN_TOWNS = [*range(0, 22), *range(30, 114)]  # around the val (22-24) and test (25-29) towns: 19,080 frames


@dataclass
class PerceptionConfig:
    """Everything the perception verbs need."""

    data: DataConfig = field(default_factory=lambda: DataConfig(train_towns=list(TRAIN_TOWNS)))
    classes: ClassMap = field(default_factory=ClassMap)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2))  # 2384 steps: 28 min on 2 CPU cores
    val: ValConfig = field(default_factory=ValConfig)
    look: LookConfig = field(default_factory=LookConfig)
    bench: BenchLoaderConfig = field(default_factory=BenchLoaderConfig)

    def __post_init__(self) -> None:
        seg, det = len(self.classes.seg), len(self.classes.det)
        if (self.model.num_seg_classes, self.model.num_det_classes) != (seg, det):
            raise ValueError(f"model.num_seg_classes/num_det_classes are {self.model.num_seg_classes}/"
                             f"{self.model.num_det_classes} but the class map has {seg}/{det}; set them to match")  # fmt: skip


def make_dataset(config: PerceptionConfig, split: str, augment: bool, cache: bool | None = None) -> DrivingDataset:
    """The dataset of a split; ``augment`` applies the config's augmentation (if enabled)."""
    aug = Augment(config.augment) if augment and config.augment.enabled else None
    return DrivingDataset(config.data.root, config.data.towns(split), config.classes, config.data.camera, aug,
                          config.data.cache if cache is None else cache, config.train.seed)  # fmt: skip
