"""The policy's perception inputs for recorded frames, computed once and kept on disk.

Training the policy on perception inputs runs the frozen perception network on every frame of every epoch,
which is nearly all of the cost on a CPU (the policy is 0.8 M parameters, the perception network 0.7 GFLOPs
a frame). Its outputs only change with the augmentation, so view ``v`` of the cache holds them for the
frames as the dataset's seeded augmentation draws them in epoch ``v`` (:meth:`DrivingDataset.set_epoch`),
and epoch ``e`` of training reads view ``e mod views``. With ``views >= epochs`` the inputs are exactly those
of an uncached run, quantised to uint8 (steps of 1/255).

One cache folder per dataset, keyed by all its contents depend on: the perception weights (file hash), the
frames (episode files' sizes and times), the augmentation config and seed. Each view is written under a
temporary name and renamed when complete, so an interrupted build resumes at the first missing view and a
finished view is never half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from drivestack.common.io import file_digest
from drivestack.perception.data.dataset import DrivingDataset, collate, flip_policy
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm


def cache_key(dataset: DrivingDataset, perception_digest: str, augment: dict | None) -> str:
    """A short hash of what the cached inputs of ``dataset`` depend on."""
    episodes = sorted({f.episode for f in dataset.frames})
    stats = [(str(e.resolve()), (e / "measurements.jsonl").stat().st_size, (e / "measurements.jsonl").stat().st_mtime_ns)
             for e in episodes]  # fmt: skip
    frames = [(f.episode.name, f.record["frame"]) for f in dataset.frames]
    text = json.dumps([perception_digest, stats, frames, dataset.camera, augment, dataset.seed], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class PolicyInputCache(Dataset):
    """The samples of ``dataset`` with cached perception inputs (uint8 (C,h,w): segmentation probabilities,
    then detection heatmaps) instead of images; it stands in for the dataset (``frames``, ``root``, ...)."""

    def __init__(self, dataset: DrivingDataset, folder: Path, views: int) -> None:
        self.dataset, self.folder = dataset, folder
        self.frames, self.root, self.camera, self.shape = dataset.frames, dataset.root, dataset.camera, dataset.shape
        self.shift = dataset.shift  # a side camera's displaced view (perception.dataset.ViewShift), or None
        self.views = [np.load(folder / f"view{v}.npy", mmap_mode="r") for v in range(views)]
        self.flipped = np.stack([np.load(folder / f"view{v}_flipped.npy") for v in range(views)])
        for v, array in enumerate(self.views):
            if len(array) != len(self.frames):
                raise ValueError(f"{folder / f'view{v}.npy'}: {len(array)} frames, the dataset has {len(self.frames)}; "
                                 f"delete the folder to rebuild it")  # fmt: skip
        self.view = 0

    def __len__(self) -> int:
        return len(self.frames)

    def set_epoch(self, epoch: int) -> None:
        self.view = epoch % len(self.views)

    def __getitem__(self, index: int) -> dict:
        policy = self.dataset.policy(index)
        if self.flipped[self.view, index]:
            policy = flip_policy(policy)
        return {
            "inputs": torch.from_numpy(np.array(self.views[self.view][index])),
            "policy": {k: torch.as_tensor(v) for k, v in policy.items()},
            "index": index,
        }


def quantize(probabilities: torch.Tensor) -> np.ndarray:
    """Values in 0..1 -> uint8 (0..255, rounded)."""
    return (probabilities.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def build_input_cache(
    perceive, dataset: DrivingDataset, perception_path: str | Path, augment: dict | None, views: int,
    cache_dir: str | Path, batch_size: int = 32, workers: int = 1,
) -> PolicyInputCache:  # fmt: skip
    """Compute the missing views of ``dataset``'s cache under ``cache_dir`` and return it.

    ``perceive(images) -> (seg, det)`` is the frozen network (:meth:`DrivingModel.perceive`); ``augment`` is the
    dataset's augmentation config as plain data (None when it has none)."""
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    folder = Path(cache_dir) / cache_key(dataset, file_digest(perception_path), augment)
    folder.mkdir(parents=True, exist_ok=True)
    for v in range(views):
        if not (folder / f"view{v}.npy").is_file():
            _build_view(perceive, dataset, folder, v, views, batch_size, workers)
    return PolicyInputCache(dataset, folder, views)


def _build_view(perceive, dataset: DrivingDataset, folder: Path, view: int, views: int, batch_size: int, workers: int) -> None:
    dataset.set_epoch(view)
    loader = DataLoader(dataset, batch_size, shuffle=False, num_workers=workers, collate_fn=collate)
    tmp = folder / f".view{view}.{os.getpid()}.tmp.npy"
    array = None
    flipped = np.zeros(len(dataset), bool)
    try:
        desc = f"perception inputs {dataset.root.name}/{dataset.camera} view {view + 1}/{views}"
        with tqdm(total=len(dataset), desc=desc, unit="frame", dynamic_ncols=True) as bar:
            for images, targets in loader:
                values = quantize(torch.cat(perceive(images), dim=1))
                if array is None:
                    array = np.lib.format.open_memmap(tmp, "w+", np.uint8, (len(dataset), *values.shape[1:]))
                index = targets["index"].numpy()
                array[index] = values
                flipped[index] = targets["flipped"].numpy()
                bar.update(len(index))
        array.flush()
        del array
        np.save(folder / f"view{view}_flipped.npy", flipped)
        os.replace(tmp, folder / f"view{view}.npy")
    finally:
        tmp.unlink(missing_ok=True)
