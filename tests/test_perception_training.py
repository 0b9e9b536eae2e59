"""The task-agnostic Trainer: exact resume, Ctrl-C and NaN keep the last checkpoint, DDP on gloo, rebuild."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from drivestack.cli import train as train_command
from drivestack.common.checkpoint import load_checkpoint, load_model, model_spec
from drivestack.common.training.trainer import NonFiniteLossError, TrainConfig, Trainer, warmup_cosine
from drivestack.perception.classes import ClassMap
from drivestack.perception.data.dataset import DrivingDataset, collate
from drivestack.perception.models.multitask import build_multitask
from perception_helpers import recorded_dataset, tiny_config, tiny_model_config
from torch import nn


class ToyRegressor(nn.Module):
    """Any task: forward + compute_loss, nothing perception-specific."""

    def __init__(self, config: dict | None = None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"y": self.net(x)}

    def compute_loss(self, outputs: dict, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mse": ((outputs["y"] - targets) ** 2).mean()}


class ToyData(torch.utils.data.Dataset):
    """y = sum(x); from ``nan_from_epoch`` on, the targets are NaN."""

    def __init__(self, n: int = 32, nan_from_epoch: int | None = None) -> None:
        self.x = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))
        self.nan_from_epoch, self.epoch = nan_from_epoch, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        nan = self.nan_from_epoch is not None and self.epoch >= self.nan_from_epoch
        return self.x[i], self.x[i].sum(0, keepdim=True) * (float("nan") if nan else 1.0)


def toy_collate(items):
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


def toy_trainer(out: Path, dataset: ToyData | None = None, epochs: int = 2) -> Trainer:
    config = TrainConfig(out=str(out), epochs=epochs, batch_size=8, warmup_steps=2, workers=0, device="cpu",
                         channels_last=False, log_every=1)  # fmt: skip
    torch.manual_seed(0)
    return Trainer(ToyRegressor(), dataset or ToyData(), config, {"builder": "none", "config": {}},
                   collate_fn=toy_collate)  # fmt: skip


def _perception_trainer(out: Path, evaluate=None) -> Trainer:
    dataset = DrivingDataset(recorded_dataset(), [0, 1], ClassMap(), cache=True)
    config = TrainConfig(out=str(out), epochs=2, batch_size=4, warmup_steps=2, workers=0, device="cpu", log_every=1,
                         ema=True)  # fmt: skip
    torch.manual_seed(0)
    model_config = tiny_model_config()
    return Trainer(build_multitask(model_config), dataset, config, model_spec("perception", model_config),
                   collate_fn=collate, val_set=dataset, evaluate=evaluate)  # fmt: skip


def test_resume_gives_bit_identical_training(tmp_path):
    saved = tmp_path / "resumed" / "last.pt"

    def keep_epoch_one(model, dataset):  # at the end of epoch 2, last.pt still holds epoch 1
        if (tmp_path / "full" / "last.pt").exists() and not saved.exists():
            saved.parent.mkdir()
            shutil.copy(tmp_path / "full" / "last.pt", saved)
        return {"score": 1.0}

    full = _perception_trainer(tmp_path / "full", keep_epoch_one)
    full.fit()
    assert load_checkpoint(saved)["epoch"] == 1
    resumed = _perception_trainer(tmp_path / "resumed")
    resumed.fit()
    for name, tensor in full.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    for name, tensor in full.ema.module.state_dict().items():
        assert torch.equal(tensor, resumed.ema.module.state_dict()[name]), name
    assert resumed.step == full.step and resumed.scheduler.last_epoch == full.scheduler.last_epoch
    model, checkpoint = load_model(tmp_path / "full" / "last.pt", ema=True)  # rebuilt from the checkpoint alone
    images, _ = collate([resumed.train_set[0]])
    with torch.no_grad():
        expected = full.ema.module.eval()(images)["seg"]
        assert torch.allclose(model(images)["seg"], expected) and checkpoint["epoch"] == 2


def test_ctrl_c_keeps_the_last_checkpoint(tmp_path):
    def interrupt(model, dataset):
        if (tmp_path / "last.pt").exists():
            raise KeyboardInterrupt
        return {}

    trainer = toy_trainer(tmp_path)
    trainer.val_set, trainer.evaluate = trainer.train_set, interrupt
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    again = toy_trainer(tmp_path)  # re-running the same command resumes
    again.fit()
    assert again.epoch == 2 and load_checkpoint(tmp_path / "last.pt")["epoch"] == 2


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path):
    trainer = toy_trainer(tmp_path, ToyData(nan_from_epoch=1))
    with pytest.raises(NonFiniteLossError, match=r"not finite at epoch 2, step 5 .*last good checkpoint is .*last.pt"):
        trainer.fit()
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())


def test_warmup_then_cosine():
    factor = warmup_cosine(warmup=10, total=110, min_ratio=0.1)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.55) and factor(110) == pytest.approx(0.1)


def _ddp_worker(rank: int, out: str, port: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    trainer = toy_trainer(Path(out), epochs=1)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit()
    after = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    torch.save({"params": after, "step": trainer.step, "world": trainer.dist.world_size}, Path(out) / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_with_two_gloo_processes_trains(tmp_path):
    mp.spawn(_ddp_worker, args=(str(tmp_path), _free_port()), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["step"] == r1["step"] == 2  # 32 samples / 2 processes / batch 8
    assert torch.equal(r0["params"], r1["params"])  # gradients were averaged across processes
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1


def test_train_command_warns_about_train_towns_missing_from_the_dataset(tmp_path, capsys):
    config = tiny_config(recorded_dataset(), out=str(tmp_path / "run"), epochs=1, batch_size=4, warmup_steps=1,
                         workers=0, device="cpu")  # fmt: skip
    config.data.train_towns = [0, 1, 7]  # town 7 was never recorded
    config.val.render = 0
    assert train_command.run(config) == 0
    out = capsys.readouterr().out
    assert "no completed episodes of train towns [7]" in out and "training on 2 of 3 towns" in out
    assert "(towns [0, 1])" in out
    assert (tmp_path / "run" / "last.pt").exists()
