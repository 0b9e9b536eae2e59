"""The pipeline report: dataset summary, training curves, perception metrics, driving scores against the
expert, latency per stage, and links to the drive videos, as Markdown with images."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from drivestack.sim.record.dataset_io import load_manifest


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def training_curves(runs: dict[str, Path], path: Path) -> bool:
    """Plot every ``loss/*`` scalar of each run's TensorBoard events; False when there are none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series = {}
    for name, folder in runs.items():
        if not (folder / "tensorboard").is_dir():
            continue
        events = EventAccumulator(str(folder / "tensorboard"), size_guidance={"scalars": 0})
        events.Reload()
        series[name] = {tag: events.Scalars(tag) for tag in events.Tags()["scalars"] if tag.startswith("loss/")}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return False
    fig, axes = plt.subplots(1, len(series), figsize=(5 * len(series), 3.4), dpi=100, squeeze=False)
    for ax, (name, tags) in zip(axes[0], series.items()):
        for tag, points in tags.items():
            ax.plot([p.step for p in points], [p.value for p in points], label=tag.removeprefix("loss/"))
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _dataset_section(title: str, root: Path, data) -> list[str]:
    manifest = load_manifest(root)
    lines = [f"## {title}", "", f"`{root}`: {len(manifest.episodes)} episodes, {sum(e.frames for e in manifest.episodes)} saved frames.", "",
             "| split | towns | episodes | frames |", "|---|---|---|---|"]  # fmt: skip
    for split in ("train", "val", "test"):
        towns = set(data.towns(split))
        eps = [e for e in manifest.episodes if e.town_seed in towns]
        lines.append(f"| {split} | {sorted(towns)} | {len(eps)} | {sum(e.frames for e in eps)} |")
    return lines + [""]


def _perception_section(metrics: dict | None) -> list[str]:
    if metrics is None:
        return []
    lines = ["## Perception (test split, towns unseen in training)", "",
             f"mIoU {metrics['miou']:.3f} (classes present), mAP@0.5 {metrics['map50']:.3f}, mAP@0.5:0.95 {metrics['map']:.3f}, "
             f"{metrics['images']} images.", "", "| class | IoU |", "|---|---|"]  # fmt: skip
    lines += [f"| {k} | {v:.3f} |" for k, v in metrics["iou"].items()]
    lines += ["", "| detection class | boxes | AP@0.5 | AP@0.5:0.95 |", "|---|---|---|---|"]
    lines += [f"| {k} | {metrics['gt_boxes'].get(k, 0)} | {v:.3f} | {metrics['ap'][k]:.3f} |" for k, v in metrics["ap50"].items()]
    return lines + [""]


def _dagger_section(stages: dict) -> list[str]:
    """Per DAgger round: how the learner's recording episodes ended, and the fine-tuned policy's val metrics."""
    from drivestack.common.checkpoint import load_checkpoint

    rounds = sorted(int(name.removeprefix("dagger")) for name in stages if name.startswith("dagger"))
    rows = []
    for i in rounds:
        record, tuned = Path(stages[f"dagger{i}"].out), Path(stages[f"policy_dagger{i}"].train.out) / "last.pt"
        if not (record / "manifest.json").is_file() or not tuned.is_file():
            continue
        episodes = load_manifest(record).episodes
        ends = Counter(e.end_reason for e in episodes if e.end_reason)
        m = load_checkpoint(tuned).get("metrics", {})
        rows.append(f"| {i} | {len(episodes)} | {sum(e.frames or 0 for e in episodes)} | "
                    f"{', '.join(f'{k} {v}' for k, v in sorted(ends.items()))} | "
                    + " | ".join(f"{m[k]:.3f}" if k in m else "-" for k in ("path_l1_m", "brake_acc", "start_acc")) + " |")  # fmt: skip
    if not rows:
        return []
    soup = [f"The exported policy is the mean of the weights of {len(stages['soup'].checkpoints)} rounds' policies "
            f"({', '.join(f'`{c}`' for c in stages['soup'].checkpoints)}): `{stages['soup'].out}`.", ""] if "soup" in stages else []  # fmt: skip
    return ["## DAgger rounds", "", "The previous policy drives the training towns while the expert labels every frame; "
            "the policy is then fine-tuned on the expert data and every round's.", "",
            "| round | episodes | frames | how the learner's episodes ended | val path L1 (m) | brake acc | start acc |",
            "|---|---|---|---|---|---|---|", *rows, "", *soup]  # fmt: skip


def _driving_section(agent: dict | None, expert: dict | None) -> list[str]:
    if agent is None:
        return []
    rows = [("learned agent (ONNX Runtime)", agent["summary"])] + ([("expert", expert["summary"])] if expert else [])
    lines = ["## Driving (held-out route suite)", "", "| agent | routes | driving score | route completion | penalty | infractions per km |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, s in rows:
        per_km = ", ".join(f"{k} {v:.2f}" for k, v in s["infractions_per_km"].items() if v) or "none"
        lines.append(f"| {name} | {s['routes']} | {s['driving_score']:.1f} | {s['route_completion']:.1f} % | {s['infraction_penalty']:.3f} | {per_km} |")
    if expert and expert["summary"]["driving_score"] > 0:
        lines += ["", f"Learned / expert driving score: {agent['summary']['driving_score'] / expert['summary']['driving_score']:.2f}."]
    return lines + [""]


def _latency_section(bench: dict | None, image: str) -> list[str]:
    if bench is None:
        return []
    stages = ["preprocess", "perception", "policy", "postprocess", "control", "loop", "fused_model"]
    lines = ["## Latency per stage (ms, p50 / p99, batch 1)", "", "| variant | " + " | ".join(stages) + " | loop fps |",
             "|---" * (len(stages) + 2) + "|"]  # fmt: skip
    for name, stats in bench["results"].items():
        cells = " | ".join(f"{stats[s]['p50']:.2f} / {stats[s]['p99']:.2f}" for s in stages)
        lines.append(f"| {name} | {cells} | {1000 / stats['loop']['p50']:.0f} |")
    return lines + ["", f"![latency]({image})", ""]


def write_report(out: Path, stages: dict, timings: dict[str, float]) -> Path:
    """Write ``out/report.md`` (and its images) from what the pipeline stages left in ``out``."""
    out = Path(out)
    lines = ["# drivestack pipeline report", "", f"Written {time.strftime('%Y-%m-%d %H:%M')} from `{out}`.", "",
             "| stage | minutes |", "|---|---|"]  # fmt: skip
    lines += [f"| {k} | {v / 60:.1f} |" for k, v in timings.items()] + [f"| total | {sum(timings.values()) / 60:.1f} |", ""]
    lines += _dataset_section("Dataset", Path(stages["collect"].out), stages["policy"].data)
    if "perception_collect" in stages:
        lines += _dataset_section("Perception dataset", Path(stages["perception"].data.root), stages["perception"].data)
    runs = {"perception": out / "perception", "policy (ground truth)": out / "policy_gt", "policy (perception)": out / "policy"}
    runs |= {f"policy ({name.removeprefix('policy_').replace('dagger', 'DAgger round ')})": Path(stage.train.out)
             for name, stage in stages.items() if name.startswith("policy_dagger")}  # fmt: skip
    if training_curves(runs, out / "curves.png"):
        lines += ["## Training curves", "", "![training curves](curves.png)", ""]
    lines += _perception_section(_json(Path(stages["perception"].val.out) / "metrics.json"))
    lines += _dagger_section(stages)
    lines += _driving_section(_json(out / "drive" / "summary.json"), _json(out / "drive_expert" / "summary.json"))
    lines += _latency_section(_json(out / "bench" / "bench.json"), "bench/latency.png")
    videos = sorted((out / "drive" / "videos").glob("*.mp4"))
    if videos:
        lines += ["## Drive videos", ""] + [f"- [{v.stem}](drive/videos/{v.name}) ([route map](drive/videos/{v.stem}.png))" for v in videos] + [""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
