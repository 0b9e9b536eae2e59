"""Mid-epoch checkpoints: a run stopped inside an epoch (Ctrl-C or kill -9) resumes bit-identically, loses at
most ``save_every_steps`` steps, skips the batches done without loading them, and leaves TensorBoard with
no overlapping steps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from drivestack.common.checkpoint import load_checkpoint
from drivestack.common.training.trainer import TrainConfig, Trainer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

STEPS_PER_EPOCH, EPOCHS, BATCH = 10, 2, 4


class DropoutRegressor(nn.Module):
    """Dropout draws from the global torch RNG every step: a resume must continue its stream exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"y": self.net(x)}

    def compute_loss(self, outputs: dict, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mse": ((outputs["y"] - targets) ** 2).mean()}


class NoisyData(torch.utils.data.Dataset):
    """y = sum(x), x with noise seeded by (epoch, index) like the perception dataset's augmentation; counts the
    samples loaded; ``delay`` seconds per sample slow a run down enough to kill it mid-epoch."""

    def __init__(self, delay: float = 0.0) -> None:
        self.x = torch.randn(STEPS_PER_EPOCH * BATCH, 4, generator=torch.Generator().manual_seed(0))
        self.epoch, self.loaded, self.delay = 0, 0, delay

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.loaded += 1
        time.sleep(self.delay)
        x = self.x[i] + torch.from_numpy(np.random.default_rng([self.epoch, i]).normal(0, 0.1, 4).astype(np.float32))
        return x, x.sum(0, keepdim=True)


def output_mean(model: nn.Module, dataset: NoisyData) -> dict[str, float]:
    return {"mean": float(model(dataset.x)["y"].mean())}


def make_trainer(out: str | Path, delay: float = 0.0, save_every_steps: int = 0, save_every_min: float = 0.0) -> Trainer:
    config = TrainConfig(out=str(out), epochs=EPOCHS, batch_size=BATCH, warmup_steps=3, workers=0, device="cpu",
                         channels_last=False, log_every=1, ema=True, save_every_steps=save_every_steps,
                         save_every_min=save_every_min)  # fmt: skip
    torch.manual_seed(0)
    data = NoisyData(delay)
    return Trainer(DropoutRegressor(), data, config, {"builder": "none", "config": {}}, val_set=data, evaluate=output_mean)


def interrupt_at(trainer: Trainer, step: int) -> None:
    """Ctrl-C from inside training once ``step`` steps are done."""
    compute_loss = trainer.model.compute_loss

    def stop(outputs: dict, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        if trainer.step == step:
            raise KeyboardInterrupt
        return compute_loss(outputs, targets)

    trainer.model.compute_loss = stop


def next_second() -> None:
    """TensorBoard reads a folder's event files in name order; a name starts with the second its writer opened
    (host, pid and a counter follow and need not sort in time), so a resumed run's file must be a second later."""
    time.sleep(1.01 - time.time() % 1)


def scalars(out: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of a TensorBoard scalar as TensorBoard shows it (events a resume purged left out)."""
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def assert_same_training(trainer: Trainer, reference: Trainer) -> None:
    for mine, theirs in ((trainer.model, reference.model), (trainer.ema.module, reference.ema.module)):
        for name, tensor in theirs.state_dict().items():
            assert torch.equal(mine.state_dict()[name], tensor), name
    assert trainer.step == reference.step == EPOCHS * STEPS_PER_EPOCH
    assert trainer.scheduler.last_epoch == reference.scheduler.last_epoch


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Trainer, Path]:
    """The reference: one run of both epochs, saving at the epoch ends only."""
    out = tmp_path_factory.mktemp("uninterrupted")
    trainer = make_trainer(out)
    trainer.fit()
    assert [s for s, _ in scalars(out, "loss/total")] == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    return trainer, out


@pytest.mark.parametrize(
    ("stop_at", "save"),
    [(5, {"save_every_steps": 3}), (10, {"save_every_steps": 3}), (14, {"save_every_steps": 3}), (7, {"save_every_min": 1e-9})],
    ids=["epoch1-step5", "epoch-boundary", "epoch2-step4", "by-time"],
)
def test_a_run_stopped_mid_epoch_resumes_bit_identically(tmp_path, uninterrupted, stop_at, save):
    reference, reference_out = uninterrupted
    stopped = make_trainer(tmp_path, **save)
    interrupt_at(stopped, stop_at)
    with pytest.raises(KeyboardInterrupt):
        stopped.fit()
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    every = save.get("save_every_steps", 1)  # 1e-9 minutes: a save after every step
    assert stop_at - every <= checkpoint["step"] <= stop_at  # at most save_every_steps steps lost
    assert checkpoint["step"] == checkpoint["epoch"] * STEPS_PER_EPOCH + checkpoint["epoch_step"]

    next_second()
    resumed = make_trainer(tmp_path, **save)  # re-running the same command resumes
    resumed.fit()
    assert_same_training(resumed, reference)
    assert resumed.train_set.loaded == (EPOCHS * STEPS_PER_EPOCH - checkpoint["step"]) * BATCH  # done batches not loaded
    for tag in ("loss/total", "train/lr", "val/mean"):  # each step once, with the uninterrupted run's values
        assert scalars(tmp_path, tag) == scalars(reference_out, tag), tag


def test_kill_9_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path, uninterrupted):
    reference, reference_out = uninterrupted
    path, log = tmp_path / "last.pt", tmp_path / "log.txt"
    script = (f"import torch; torch.set_num_threads(1); from test_trainer_resume import make_trainer; "
              f"make_trainer({str(tmp_path)!r}, delay=0.05, save_every_steps=2).fit()")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=output, stderr=output)
    try:
        deadline, checkpoint = time.monotonic() + 120, None
        while checkpoint is None or checkpoint["epoch_step"] == 0:  # wait for a mid-epoch checkpoint
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)
            checkpoint = load_checkpoint(path) if path.is_file() else None
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
    assert process.wait() == -signal.SIGKILL

    next_second()
    resumed = make_trainer(tmp_path, save_every_steps=2)
    resumed.fit()
    assert_same_training(resumed, reference)
    for tag in ("loss/total", "val/mean"):  # the killed run's events after its checkpoint are hidden
        assert scalars(tmp_path, tag) == scalars(reference_out, tag), tag


@pytest.mark.parametrize("key", ["save_every_steps", "save_every_min"])
def test_negative_save_intervals_are_refused(key):
    with pytest.raises(ValueError, match=f"train.{key} must be >= 0"):
        TrainConfig(**{key: -1})
