"""Training-loader throughput (decode or RAM cache + augment + collate), in images per second."""

from __future__ import annotations

import time

from torch.utils.data import DataLoader, RandomSampler

from perception.config import PerceptionConfig, make_dataset
from perception.dataset import collate

CONFIG_CLASS = PerceptionConfig
DEFAULT_CONFIG = "perception.yaml"


def run(config: PerceptionConfig) -> int:
    cfg = config.bench
    start = time.perf_counter()
    dataset = make_dataset(config, "train", augment=True, cache=cfg.cache)
    prepare = time.perf_counter() - start
    sampler = RandomSampler(dataset, replacement=True, num_samples=cfg.batch_size * (cfg.batches + 2 * cfg.workers + 1))
    loader = DataLoader(dataset, cfg.batch_size, sampler=sampler, num_workers=cfg.workers, collate_fn=collate)
    iterator = iter(loader)
    next(iterator)  # workers started, first batch out
    start = time.perf_counter()
    for _ in range(cfg.batches):
        images, _ = next(iterator)
    elapsed = time.perf_counter() - start
    h, w = images.shape[-2:]
    rate = cfg.batches * cfg.batch_size / elapsed
    what = "RAM cache (decoded once, not timed)" if cfg.cache else "JPEG + PNG decoding per sample"
    print(f"{rate:.0f} img/s at {w}x{h}: {what} + augmentation + collate into uint8 batches of {cfg.batch_size}, "
          f"{cfg.workers} workers, {cfg.batches} batches ({len(dataset)} frames; cache built in {prepare:.1f} s)")  # fmt: skip
    return 0
