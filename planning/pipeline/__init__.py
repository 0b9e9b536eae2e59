"""The whole pipeline in one command: collect expert episodes, train perception, train the policy (ground
truth, then perception outputs, then DAgger rounds), evaluate perception, export ONNX (fp32, int8), drive
the held-out suite with the ONNX engine and the expert, benchmark latency, write a report. A stage whose
output exists and is complete is skipped, so a re-run resumes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from drivestack.common.checkpoint import load_checkpoint
from drivestack.common.config import ConfigError
from drivestack.common.training.averaging import SoupConfig
from drivestack.perception.config import PerceptionConfig
from drivestack.planning.dagger import DaggerConfig
from drivestack.planning.deploy.bench import BenchConfig
from drivestack.planning.deploy.export import ExportConfig
from drivestack.planning.deploy.package import PackageConfig
from drivestack.planning.evaluation.drive import DriveConfig
from drivestack.planning.policy.train import PolicyTrainConfig
from drivestack.sim.record.recorder import CollectConfig
from drivestack.sim.settings import SimConfig


@dataclass
class PipelineConfig:
    out: str = "runs/quickstart"  # (str) folder for every artefact: dataset/, perception/, policy_gt/, policy/, export/, drive*/, bench/, report.md
    policy_gt_epochs: int = 3  # (int) epochs of the ground-truth policy stage (the perception stage uses policy.train.epochs)
    dagger_rounds: int = 1  # (int) DAgger rounds after the policy stages: the policy drives, the expert labels, the policy fine-tunes on all data so far; 0 = none
    dagger_epochs: int = 2  # (int) fine-tuning epochs per DAgger round
    dagger_lr: float | None = None  # (float) peak learning rate of the DAgger fine-tunes; null = policy.train.lr
    soup_rounds: int = 1  # (int) export the mean of the weights of the last n DAgger rounds' policies (a uniform model soup, `drivestack soup`); 1 = the last round alone
    drive_videos: int = 2  # (int) drive videos with overlays for the first n routes (0 = none)
    package_out: str = ""  # (str) also package the final model into this folder (`drivestack package`: checkpoint, fused int8 graph, metrics), e.g. models; empty = no
    collect: CollectConfig = field(default_factory=CollectConfig)  # the expert recording the policy stages (and perception, unless perception_collect is set) train on
    perception_collect: CollectConfig | None = None  # a recording of its own for the perception stage (out/perception_dataset), e.g. more towns and fewer frames per town; null = perception trains on collect's
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)
    policy: PolicyTrainConfig = field(default_factory=PolicyTrainConfig)
    dagger: DaggerConfig = field(default_factory=DaggerConfig)  # recording of each round (learner, towns, sim and out are set per round)
    export: ExportConfig = field(default_factory=ExportConfig)
    drive: DriveConfig = field(default_factory=DriveConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)


def with_camera_only(sim: SimConfig, camera: str) -> SimConfig:
    """``sim`` with only ``camera``: a DAgger round renders every step for the learner, and side cameras
    (recorded by the collect stage for training) would multiply that cost. ``check_recordings`` has made sure
    ``sim`` has it."""
    return replace(sim, cameras=[c for c in sim.cameras if c.name == camera])


def check_recordings(stages: dict[str, object]) -> None:
    """Each training stage's splits are towns the recording it reads records, seen by its camera."""
    recordings = {stages[name].out: name for name in ("collect", "perception_collect") if name in stages}
    for name in ("perception", "policy"):
        data = stages[name].data
        recording = recordings[data.root]
        collect = stages[recording]
        missing = sorted({t for split in ("train", "val", "test") for t in data.towns(split)} - set(collect.town_seeds))
        if missing:
            raise ConfigError(f"{name}.data splits use towns {missing} that {recording}.town_seeds does not record")
        if data.camera not in [c.name for c in collect.sim.cameras]:
            raise ConfigError(f"{name}.data.camera '{data.camera}' is not among {recording}.sim.cameras")


def stage_configs(config: PipelineConfig) -> dict[str, object]:
    """Every stage's config with its paths inside ``config.out`` (what one stage writes, the next reads);
    refused when a stage would read what its recording lacks."""
    out = Path(config.out)
    data = str(out / "dataset")
    p = config.perception
    perception_root = data if config.perception_collect is None else str(out / "perception_dataset")
    perception = replace(p, data=replace(p.data, root=perception_root), train=replace(p.train, out=str(out / "perception")),
                         val=replace(p.val, checkpoint=str(out / "perception" / "last.pt"), out=str(out / "perception" / "val")))  # fmt: skip
    policy_data = perception.data if config.perception_collect is None else replace(config.policy.data, root=data)
    policy = replace(config.policy, perception=str(out / "perception" / "last.pt"), data=policy_data,
                     classes=perception.classes, init=str(out / "policy_gt" / "last.pt"), inputs="perception",
                     cache_dir=str(out / "policy_inputs"),
                     train=replace(config.policy.train, out=str(out / "policy")))  # fmt: skip
    policy_gt = replace(policy, inputs="ground_truth", init="",
                        train=replace(policy.train, out=str(out / "policy_gt"), epochs=config.policy_gt_epochs))  # fmt: skip
    collects = {"collect": replace(config.collect, out=data)}
    if config.perception_collect is not None:
        collects["perception_collect"] = replace(config.perception_collect, out=perception_root)
    check_recordings({**collects, "perception": perception, "policy": policy})
    if config.package_out and "fused" not in config.export.targets:
        raise ConfigError(f"package_out ships the fused graph, but export.targets {config.export.targets} leaves it out")
    fine_tune = replace(policy.train, epochs=config.dagger_epochs, lr=policy.train.lr if config.dagger_lr is None else config.dagger_lr)
    rounds, learner = {}, policy.train.out
    for i in range(1, config.dagger_rounds + 1):
        rounds[f"dagger{i}"] = replace(config.dagger, out=str(out / f"dagger{i}"), model=str(Path(learner) / "last.pt"), engine="torch",
                                       town_seeds=list(policy.data.train_towns), seed=config.dagger.seed + i - 1,
                                       sim=with_camera_only(config.collect.sim, policy.data.camera))  # fmt: skip
        rounds[f"policy_dagger{i}"] = replace(policy, init=str(Path(learner) / "last.pt"),
                                              extra_roots=[str(out / f"dagger{j}") for j in range(1, i + 1)],
                                              train=replace(fine_tune, out=str(out / f"policy_dagger{i}")))  # fmt: skip
        learner = rounds[f"policy_dagger{i}"].train.out
    final = str(Path(learner) / "last.pt")
    if not 1 <= config.soup_rounds <= max(config.dagger_rounds, 1):
        raise ConfigError(f"soup_rounds {config.soup_rounds} must be between 1 and dagger_rounds ({config.dagger_rounds})")
    if config.soup_rounds > 1:
        last_rounds = range(config.dagger_rounds - config.soup_rounds + 1, config.dagger_rounds + 1)
        rounds["soup"] = SoupConfig(checkpoints=[str(out / f"policy_dagger{i}" / "last.pt") for i in last_rounds],
                                    out=str(out / "policy_soup" / "last.pt"))  # fmt: skip
        final = rounds["soup"].out
    export = replace(config.export, checkpoint=final, out=str(out / "export"), data=data)
    drive = replace(config.drive, agent="policy", engine="onnx", onnx_model=str(out / "export" / "fused_fp32.onnx"),
                    model=export.checkpoint, out=str(out / "drive"))  # fmt: skip
    expert = replace(config.drive, agent="expert", out=str(out / "drive_expert"), videos=False)
    bench = replace(config.bench, checkpoint=export.checkpoint, onnx_dir=export.out, data=data, out=str(out / "bench"))
    return {**collects, "perception": perception, "policy_gt": policy_gt, "policy": policy,
            **rounds, "export": export, "drive": drive, "drive_expert": expert, "bench": bench}  # fmt: skip


def _trained(checkpoint: str, epochs: int) -> bool:
    path = Path(checkpoint)
    return path.is_file() and load_checkpoint(path).get("epoch", 0) >= epochs


def _newer(output: Path, sources: list[str]) -> bool:
    """``output`` exists and was written after every one of ``sources`` (a source remade under the same path
    makes it stale; a missing source too)."""
    return output.is_file() and all(Path(s).is_file() and Path(s).stat().st_mtime <= output.stat().st_mtime for s in sources)


def _exported(config: ExportConfig) -> bool:
    """Every graph exists, was exported from ``config.checkpoint`` and is newer than it (a checkpoint remade
    under the same path, such as the soup of other rounds, is exported again)."""
    from drivestack.planning.deploy.onnx_io import read_metadata

    files = [Path(config.out) / f"{t}_{p}.onnx" for t in config.targets for p in {"fp32", *config.precisions}]
    return all(_newer(f, [config.checkpoint]) and read_metadata(f).get("checkpoint") == config.checkpoint for f in files)


def _averaged(config: SoupConfig) -> bool:
    """The soup exists, averages exactly ``config.checkpoints`` and is newer than each of them."""
    out = Path(config.out)
    return _newer(out, config.checkpoints) and load_checkpoint(out).get("soup") == [str(c) for c in config.checkpoints]


def _drive_with_videos(config: DriveConfig, videos: int) -> int:
    """Drive the suite; the first ``videos`` routes with drive videos (the rest resume without)."""
    from drivestack.planning.evaluation.drive import drive_suite
    from drivestack.planning.evaluation.suite import load_suite

    names = config.routes or [r.name for r in load_suite(config.suite).routes]
    if videos:
        code = drive_suite(replace(config, routes=names[:videos], videos=True))
        if code:
            return code
    return drive_suite(config)


def _dagger_steps(config: PipelineConfig, stages: dict) -> list[tuple]:
    """Per round: record with the current policy driving, then fine-tune it on the expert data and every round's."""
    from drivestack.planning.policy.train import train_policy
    from drivestack.planning.record import collect_dagger

    steps = []
    for i in range(1, config.dagger_rounds + 1):
        record, fine_tune = stages[f"dagger{i}"], stages[f"policy_dagger{i}"]
        steps += [
            (f"DAgger round {i}: record", lambda c=record: collect_dagger(c), None),
            (f"DAgger round {i}: train policy", lambda c=fine_tune: train_policy(c),
             lambda c=fine_tune: _trained(str(Path(c.train.out) / "last.pt"), c.train.epochs)),
        ]  # fmt: skip
    return steps


def package_config(config: PipelineConfig, stages: dict) -> PackageConfig:
    """What ships: the final policy's checkpoint, its fused int8 graph (fp32 when int8 is not exported) and the
    metrics measured on it (perception on the test towns, the learned agent and the expert on the suite)."""
    export = stages["export"]
    precision = "int8" if "int8" in export.precisions else "fp32"
    metrics = [Path(stages["perception"].val.out) / "metrics.json", Path(stages["drive"].out) / "summary.json",
               Path(stages["drive_expert"].out) / "summary.json"]  # fmt: skip
    return PackageConfig(checkpoint=export.checkpoint, onnx=[str(Path(export.out) / f"fused_{precision}.onnx")],
                         metrics=[str(m) for m in metrics], out=config.package_out)  # fmt: skip


def run_pipeline(config: PipelineConfig) -> int:
    from drivestack.common.training.averaging import soup
    from drivestack.perception.train import train_perception
    from drivestack.perception.val import val_perception
    from drivestack.planning.deploy.bench import bench
    from drivestack.planning.deploy.export import export
    from drivestack.planning.deploy.package import package
    from drivestack.planning.evaluation.drive import drive_suite
    from drivestack.planning.pipeline.report import write_report
    from drivestack.planning.policy.train import train_policy
    from drivestack.planning.record import collect_expert

    stages = stage_configs(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = json.loads((out / "timings.json").read_text()) if (out / "timings.json").exists() else {}
    steps = [
        ("collect", lambda: collect_expert(stages["collect"]), None),
        *([("collect for perception", lambda: collect_expert(stages["perception_collect"]), None)] if "perception_collect" in stages else []),
        ("train perception", lambda: train_perception(stages["perception"]),
         lambda: _trained(stages["perception"].val.checkpoint, stages["perception"].train.epochs)),
        ("evaluate perception", lambda: val_perception(stages["perception"]),
         lambda: (Path(stages["perception"].val.out) / "metrics.json").is_file()),
        ("train policy on ground truth", lambda: train_policy(stages["policy_gt"]),
         lambda: _trained(stages["policy"].init, stages["policy_gt"].train.epochs)),
        ("train policy on perception", lambda: train_policy(stages["policy"]),
         lambda: _trained(str(Path(stages["policy"].train.out) / "last.pt"), stages["policy"].train.epochs)),
        *_dagger_steps(config, stages),
        *([(f"average the last {config.soup_rounds} rounds' weights", lambda: soup(stages["soup"]),
            lambda: _averaged(stages["soup"]))] if "soup" in stages else []),
        ("export onnx", lambda: export(stages["export"]), lambda: _exported(stages["export"])),
        ("drive (onnx engine)", lambda: _drive_with_videos(stages["drive"], config.drive_videos), None),
        ("drive (expert)", lambda: drive_suite(stages["drive_expert"]), None),
        ("bench", lambda: bench(stages["bench"]), lambda: (Path(stages["bench"].out) / "bench.json").is_file()),
    ]  # fmt: skip
    for name, action, done in steps:
        if done is not None and done():
            print(f"== {name}: done already, skipped")
            continue
        print(f"== {name}")
        start = time.perf_counter()
        code = action()
        if code not in (0, None):
            print(f"== {name} failed (exit {code}); fix it and re-run the same command to resume")
            return int(code)
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
        (out / "timings.json").write_text(json.dumps(timings, indent=2))
    path = write_report(out, stages, timings)
    print(f"== report: {path}")
    if config.package_out:
        print(f"== package into {config.package_out}")
        return package(package_config(config, stages))
    return 0
