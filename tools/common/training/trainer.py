"""A task-agnostic trainer: AdamW, warm-up + cosine, clipping, AMP, EMA, DDP, atomic checkpoints, resume.

Used by perception (:mod:`drivestack.perception.train`) and the driving policy
(:mod:`drivestack.planning.policy.train`): one training loop for both.

Extension points (what a task provides):

- ``model``: an ``nn.Module`` with ``forward(inputs) -> outputs`` (the same structure in train and eval)
  and ``compute_loss(outputs, targets) -> dict[str, Tensor]`` of named, already weighted losses; the
  trainer backpropagates their sum and logs each one.
- ``model_spec``: from :func:`drivestack.common.checkpoint.model_spec` -- the registered builder's name
  and the config that rebuild the model from a checkpoint.
- ``train_set`` / ``val_set``: map-style datasets; ``collate_fn`` must return ``(inputs, targets)``; tensors
  anywhere inside them (dicts, lists) are moved to the device. A dataset with ``set_epoch(epoch)`` is told
  the epoch before each one (seeded per-epoch augmentation). A sample's randomness must depend only on
  (epoch, index), as the perception dataset's does, not on the DataLoader worker's RNG: a mid-epoch resume
  hands the remaining batches to the workers in another order.
- ``evaluate(model, val_set) -> dict[str, float]``: metrics hook, run on rank 0 after every
  ``eval_every`` epochs with the EMA model (or the model) in eval mode; logged to TensorBoard and stored in
  the checkpoint.
- ``visualize(model, val_set) -> dict[str, ndarray]``: HxWx3 uint8 images for TensorBoard (rank 0).
- ``meta`` and ``run_config``: stored in the checkpoint as they are (class names, the whole run config).

Run it with ``python ...`` (one process) or ``torchrun --nproc_per_node N ...`` (DDP; gloo on CPU).
``fit()`` saves ``<out>/last.pt`` atomically after every epoch and, mid-epoch, every ``save_every_steps``
steps and every ``save_every_min`` minutes, so a kill (even ``kill -9``) loses at most that many steps or
minutes. Running the same command again resumes from it (``resume``) where it stopped, inside the epoch
too: the batches already done are skipped without being loaded, and the run continues bit-identically (one
process; the RNG states are rank 0's). TensorBoard reopens with ``purge_step``, which hides the events a
killed run logged after its checkpoint. ``fit()`` stops with :class:`NonFiniteLossError` on a NaN/inf loss
(the last good checkpoint stays) and lets Ctrl-C through without writing (the last checkpoint stays).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from drivestack.common.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from drivestack.common.errors import InputError
from drivestack.common.training import distributed
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

Metrics = dict[str, float]


@dataclass
class TrainConfig:
    """Optimisation, schedule, logging and checkpointing (any task)."""

    out: str = "runs/perception"  # (str) run folder: last.pt, TensorBoard events
    epochs: int = 7  # (int) passes over the training split
    batch_size: int = 16  # (int) images per step and process
    lr: float = 3e-3  # (float) peak AdamW learning rate
    min_lr_ratio: float = 0.02  # (float) final learning rate as a fraction of lr (cosine)
    warmup_steps: int = 150  # (int) linear warm-up steps
    weight_decay: float = 0.01  # (float) AdamW weight decay (not on norms and biases)
    betas: tuple[float, float] = (0.9, 0.999)  # (float) AdamW betas
    grad_clip: float = 5.0  # (float) max gradient norm; 0 = no clipping
    amp: bool = True  # (bool) mixed precision (float16 + grad scaling) on CUDA; ignored on the CPU
    ema: bool = False  # (bool) keep an exponential moving average of the weights, used for evaluation
    ema_decay: float = 0.998  # (float) EMA decay per step (after a warm-up: min(decay, (1 + n) / (10 + n)))
    seed: int = 0  # (int) seeds init, sampling and augmentation
    workers: int = 1  # (int) DataLoader worker processes per training process
    device: str = "auto"  # (str) auto | cpu | cuda | cuda:N
    channels_last: bool = True  # (bool) NHWC memory format (faster convolutions on CPU and GPU)
    log_every: int = 20  # (int) steps between TensorBoard scalar logs
    eval_every: int = 1  # (int) epochs between evaluations (and image logs); 0 = never
    save_every_steps: int = 0  # (int) also save last.pt mid-epoch every this many steps (a kill loses at most these); 0 = off
    save_every_min: float = 10.0  # (float) also save last.pt mid-epoch every this many minutes; 0 = off (both 0: epoch ends only)
    resume: bool = True  # (bool) continue from <out>/last.pt if it exists (inside the epoch for a mid-epoch checkpoint)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("save_every_steps", "save_every_min"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0 (0 = off), got {getattr(self, name)}")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"need lr > 0 and 0 <= min_lr_ratio <= 1, got {self.lr}, {self.min_lr_ratio}")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; training stopped and the last good checkpoint was kept."""


def warmup_cosine(warmup: int, total: int, min_ratio: float) -> Callable[[int], float]:
    """LR factor at a step: linear warm-up to 1, then cosine to ``min_ratio`` at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def ema_avg_fn(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """EMA update with a warm-up: decay min(decay, (1 + n) / (10 + n)) after n updates, so that the
    average forgets the random initialisation within the first few hundred steps."""

    def avg(averaged: torch.Tensor, current: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1.0 + float(n)) / (10.0 + float(n)))
        return averaged + (current - averaged) * (1.0 - d)

    return avg


def to_device(data: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move every tensor in nested dicts/lists/tuples; 4-D float/uint8 image tensors optionally to NHWC."""
    if isinstance(data, torch.Tensor):
        data = data.to(device, non_blocking=True)
        return data.contiguous(memory_format=torch.channels_last) if channels_last and data.dim() == 4 else data
    if isinstance(data, dict):
        return {k: to_device(v, device) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(to_device(v, device) for v in data)
    return data


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    """Trains ``model`` on ``train_set``; see the module docstring for the hooks."""

    def __init__(
        self, model: nn.Module, train_set: Dataset, config: TrainConfig, model_spec: dict, *,
        collate_fn: Callable | None = None, val_set: Dataset | None = None,
        evaluate: Callable[[nn.Module, Dataset], Metrics] | None = None,
        visualize: Callable[[nn.Module, Dataset], dict[str, np.ndarray]] | None = None,
        meta: dict | None = None, run_config: dict | None = None,
    ) -> None:  # fmt: skip
        self.config = config
        self.dist = distributed.init_distributed(config.device)
        self.device = self.dist.device
        self.model = model.to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.train_set, self.val_set = train_set, val_set
        self.collate_fn = collate_fn
        self.evaluate, self.visualize = evaluate, visualize
        self.model_spec, self.meta, self.run_config = model_spec, meta or {}, run_config or {}
        self.out = Path(config.out)
        self.checkpoint_path = self.out / "last.pt"
        self.sampler = DistributedSampler(train_set, self.dist.world_size, self.dist.rank, shuffle=True,
                                          seed=config.seed, drop_last=True)  # fmt: skip
        self.steps_per_epoch = len(self.sampler) // config.batch_size
        if self.steps_per_epoch < 1:
            raise InputError(f"train.batch_size {config.batch_size} > the {len(self.sampler)} training samples per process")
        self.total_steps = config.epochs * self.steps_per_epoch
        self.ddp = nn.parallel.DistributedDataParallel(self.model) if self.dist.enabled else None
        self.optimizer = torch.optim.AdamW(_param_groups(self.model, config.weight_decay), lr=config.lr,
                                           betas=config.betas)  # fmt: skip
        factor = warmup_cosine(config.warmup_steps, self.total_steps, config.min_lr_ratio)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        self.amp = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.ema = (AveragedModel(self.model, avg_fn=ema_avg_fn(config.ema_decay), use_buffers=True)
                    if config.ema else None)  # fmt: skip
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps completed
        self.epoch_step = 0  # optimizer steps completed in the current epoch (> 0 in a mid-epoch checkpoint)
        self.metrics: Metrics = {}
        self.writer = None
        self.saved_at = 0.0  # time.monotonic() when last.pt was last written (or fit() started)

    # ------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_spec,
            "state_dict": self.model.state_dict(),
            "ema_state_dict": self.ema.module.state_dict() if self.ema else None,
            "ema_n_averaged": self.ema.n_averaged if self.ema else None,
            "meta": self.meta,
            "config": self.run_config,
            "epoch": self.epoch,
            "step": self.step,
            "epoch_step": self.epoch_step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "metrics": self.metrics,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["model"]["config"] != self.model_spec["config"]:
            raise ValueError(f"{self.checkpoint_path}: the model config differs from this run's; "
                             f"use another train.out or resume=false")  # fmt: skip
        self.model.load_state_dict(state["state_dict"])
        if self.ema and state.get("ema_state_dict") is not None:
            self.ema.module.load_state_dict(state["ema_state_dict"])
            self.ema.n_averaged.copy_(state["ema_n_averaged"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step, self.metrics = state["epoch"], state["step"], state["metrics"]
        self.epoch_step = state.get("epoch_step", 0)  # absent in checkpoints written before mid-epoch saves
        set_rng_state(state["rng"])

    # ------------------------------------------------------------ loop

    def fit(self) -> Metrics:
        """Train the remaining epochs; returns the last metrics."""
        seed_everything(self.config.seed + self.dist.rank)
        if self.config.resume and self.checkpoint_path.is_file():
            self.load_state_dict(load_checkpoint(self.checkpoint_path))
            if self.dist.is_main:
                print(f"resumed from {self.checkpoint_path} at step {self.step} "
                      f"(epoch {self.epoch + 1}: {self.epoch_step}/{self.steps_per_epoch} steps done)")  # fmt: skip
        if self.dist.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.out.mkdir(parents=True, exist_ok=True)
            # hides the events logged after the checkpoint (by a killed run) or by an earlier run started over
            self.writer = SummaryWriter(str(self.out / "tensorboard"), purge_step=self.step + 1)
        self.saved_at = time.monotonic()
        bar = tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step", disable=not self.dist.is_main,
                   dynamic_ncols=True)  # fmt: skip
        try:
            while self.epoch < self.config.epochs:
                self._train_epoch(bar)
                self.epoch += 1
                self.epoch_step = 0
                if self.config.eval_every and self.epoch % self.config.eval_every == 0 or self.epoch == self.config.epochs:
                    self._evaluate()
                if self.dist.is_main:
                    self._save()
                distributed.barrier(self.dist)
        finally:
            bar.close()
            if self.writer:
                self.writer.close()
            distributed.cleanup(self.dist)
        return self.metrics

    def _train_epoch(self, bar: tqdm) -> None:
        self.model.train()
        self.sampler.set_epoch(self.epoch)
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(self.epoch)
        indices = list(self.sampler)[self.epoch_step * self.config.batch_size :]  # less the batches done before a resume
        # worker seeds from their own generator: the global torch RNG (dropout, ...) stays as a checkpoint stored it
        seed = np.random.SeedSequence([self.config.seed, self.dist.rank, self.epoch]).generate_state(1)[0]
        generator = torch.Generator().manual_seed(int(seed))
        loader = DataLoader(self.train_set, self.config.batch_size, sampler=indices, drop_last=True,
                            num_workers=self.config.workers, collate_fn=self.collate_fn,
                            pin_memory=self.device.type == "cuda", generator=generator)  # fmt: skip
        forward = self.ddp or self.model
        timer = time.perf_counter()
        for inputs, targets in loader:
            inputs = to_device(inputs, self.device, self.config.channels_last)
            targets = to_device(targets, self.device)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                outputs = forward(inputs)
                losses = self.model.compute_loss(outputs, targets)
            loss = sum(losses.values())
            if not distributed.all_true(bool(torch.isfinite(loss)), self.dist):
                values = {k: v.item() for k, v in losses.items()}
                raise NonFiniteLossError(
                    f"loss is not finite at epoch {self.epoch + 1}, step {self.step + 1} ({values}); training stopped. "
                    f"The last good checkpoint is {self.checkpoint_path if self.checkpoint_path.is_file() else 'none yet'}; "
                    f"lower train.lr or check the data."
                )  # fmt: skip
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip or float("inf"))
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            if self.ema:
                self.ema.update_parameters(self.model)
            self.step += 1
            self.epoch_step += 1
            bar.update()
            if self.dist.is_main and self.step % self.config.log_every == 0:
                elapsed, timer = time.perf_counter() - timer, time.perf_counter()
                self._log_scalars(losses, loss, norm, self.config.log_every * self.config.batch_size / elapsed)
                bar.set_postfix(epoch=self.epoch + 1, loss=f"{loss.item():.3f}")
            if self.dist.is_main and self._mid_epoch_save_due():
                self._save()

    def _mid_epoch_save_due(self) -> bool:
        """Whether ``save_every_steps`` or ``save_every_min`` asks for a save now (not at the epoch's last
        step: the epoch-end save follows)."""
        c = self.config
        by_steps = c.save_every_steps > 0 and self.step % c.save_every_steps == 0
        by_time = c.save_every_min > 0 and time.monotonic() - self.saved_at >= 60 * c.save_every_min
        return (by_steps or by_time) and self.epoch_step < self.steps_per_epoch

    def _save(self) -> None:
        """Write last.pt atomically (rank 0), after the TensorBoard events up to this step."""
        self.writer.flush()
        save_checkpoint(self.checkpoint_path, self.state_dict())
        self.saved_at = time.monotonic()

    def _log_scalars(self, losses: dict[str, torch.Tensor], loss: torch.Tensor, norm: torch.Tensor, speed: float) -> None:
        w = self.writer
        for name, value in losses.items():
            w.add_scalar(f"loss/{name}", value.item(), self.step)
        w.add_scalar("loss/total", loss.item(), self.step)
        w.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.step)
        w.add_scalar("train/grad_norm", float(norm), self.step)
        w.add_scalar("train/images_per_s", speed * self.dist.world_size, self.step)

    def eval_model(self) -> nn.Module:
        """The model used for evaluation: the EMA copy when enabled."""
        return self.ema.module if self.ema else self.model

    def _evaluate(self) -> None:
        if self.dist.is_main and self.val_set is not None:
            model = self.eval_model()
            model.eval()
            with torch.no_grad():
                if self.evaluate:
                    self.metrics = {k: float(v) for k, v in self.evaluate(model, self.val_set).items()}
                    for name, value in self.metrics.items():
                        self.writer.add_scalar(f"val/{name}", value, self.step)
                    summary = ", ".join(f"{k} {v:.4f}" for k, v in self.metrics.items() if "/" not in k)
                    tqdm.write(f"epoch {self.epoch}: {summary}")
                if self.visualize:
                    for name, image in self.visualize(model, self.val_set).items():
                        self.writer.add_image(name, image, self.step, dataformats="HWC")
            self.writer.flush()
        distributed.barrier(self.dist)
