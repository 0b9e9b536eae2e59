"""Training-loader throughput (decode or RAM cache + augment + collate), in images per second.

Besides the wall-clock rate it prints the CPU time per image summed over the main process and the workers:
on a shared machine the rate depends on the other jobs, the CPU time much less (2 idle cores would give
about 2000 / (CPU ms per image) images per second).
"""

from __future__ import annotations

import resource
import time

from drivestack.perception.config import PerceptionConfig, make_dataset
from drivestack.perception.data.dataset import collate
from torch.utils.data import DataLoader, RandomSampler


def cpu_seconds(who: int) -> float:
    """User + system CPU seconds of this process (RUSAGE_SELF) or of its finished workers (RUSAGE_CHILDREN)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def bench_loader(config: PerceptionConfig) -> int:
    cfg = config.bench
    start = time.perf_counter()
    dataset = make_dataset(config, "train", augment=True, cache=cfg.cache)
    prepare = time.perf_counter() - start
    total = cfg.batches + 2 * cfg.workers + 1  # the first batch (not timed), the timed ones, what workers prefetched
    sampler = RandomSampler(dataset, replacement=True, num_samples=cfg.batch_size * total)
    loader = DataLoader(dataset, cfg.batch_size, sampler=sampler, num_workers=cfg.workers, collate_fn=collate)
    cpu = cpu_seconds(resource.RUSAGE_SELF) + cpu_seconds(resource.RUSAGE_CHILDREN)
    iterator = iter(loader)
    next(iterator)  # workers started, first batch out
    start = time.perf_counter()
    for _ in range(cfg.batches):
        images, _ = next(iterator)
    elapsed = time.perf_counter() - start
    for _ in iterator:  # the rest, so that the workers finish and their CPU time is counted
        pass
    cpu = cpu_seconds(resource.RUSAGE_SELF) + cpu_seconds(resource.RUSAGE_CHILDREN) - cpu
    h, w = images.shape[-2:]
    rate = cfg.batches * cfg.batch_size / elapsed
    what = "RAM cache (decoded once, not timed)" if cfg.cache else "JPEG + PNG decoding per sample"
    augment = "augmentation" if dataset.augment else "no augmentation"
    print(f"{rate:.0f} img/s at {w}x{h}: {what} + {augment} + collate into uint8 batches of {cfg.batch_size}, "
          f"{cfg.workers} workers, {cfg.batches} batches ({len(dataset)} frames; cache built in {prepare:.1f} s); "
          f"{cpu / (total * cfg.batch_size) * 1e3:.2f} CPU-ms per image (main process + workers)")  # fmt: skip
    return 0
