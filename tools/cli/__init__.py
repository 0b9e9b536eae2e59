"""``drivestack <verb> [config=FILE.yaml] [key=value ...]``: one entry point for every command.

Each verb is a thin module in ``drivestack.cli`` (``tools/cli/``) with ``CONFIG_CLASS`` (a dataclass),
``DEFAULT_CONFIG`` (a file in ``configs/`` or None) and ``run(config) -> int``, which calls the library. Keys are dotted paths into the config
(``sim.traffic.vehicles=30``); ``config=`` picks another YAML file. ``drivestack <verb> --help`` prints
the verb's documented defaults.
"""

from __future__ import annotations

import ast
import difflib
import errno
import importlib
import signal
import sys
from pathlib import Path

from drivestack.common.config import ConfigError, load_config
from drivestack.common.errors import InputError
from drivestack.common.paths import CONFIG_DIR

# verb -> (module in drivestack.cli, what it does); the modules are imported only when their verb runs
VERBS = {
    "run": ("run", "the whole pipeline: collect, train perception and policy, DAgger, export, drive, report"),
    "collect": ("collect", "record expert driving episodes into a dataset (resumes an interrupted one)"),
    "dagger": ("dagger", "the learned agent drives, the expert labels every state it visits (DAgger data)"),
    "probe": ("probe", "how often a policy brakes at green and red lights on recorded standing frames"),
    "validate": ("validate", "check a dataset and name every missing, truncated or unreadable file"),
    "look": ("look", "render what enters the network (after augmentation) with its labels"),
    "bench-loader": ("bench_loader", "training-loader throughput in images per second"),
    "train": ("train", "train the multi-task perception network (resumes; torchrun for DDP)"),
    "val": ("val", "evaluate a perception checkpoint: mIoU, mAP per class, latency"),
    "model-info": ("model_info", "parameters, GFLOPs and CPU latency of the perception network"),
    "train-policy": ("train_policy", "train the driving policy by imitation (ground-truth or perception inputs)"),
    "export": ("export", "export the driving model to ONNX (fused, perception, policy; fp32 and int8)"),
    "val-onnx": ("val_onnx", "evaluate exported perception graphs (fp32, fp16, int8) with the metrics of val"),
    "bench": ("bench", "latency per stage, PyTorch eager against ONNX Runtime fp32 and int8"),
    "soup": ("soup", "average the weights of checkpoints of one model (a uniform model soup)"),
    "package": ("package", "package a trained driving model for shipping (fp16 weights, ONNX graphs, metrics)"),
    "expert": ("expert_eval", "drive the expert on seeded routes in held-out towns (leaderboard metrics)"),
    "compare": ("compare", "two drive result folders route by route: flipped routes, mean difference with its 95 % CI"),
    "failures": ("failures", "where a drive failed: outcomes and infractions by kind of route, the worst routes"),
    "drive": ("drive", "drive an agent over a route suite: leaderboard metrics, videos, traces"),
    "bench-sim": ("bench_sim", "embedded simulator steps per second, or the closed loop's FPS (agent=policy)"),
    "show": ("show", "an expert drive: MP4 with overlays, contact sheet, town map"),
    "track": ("track", "track detected vehicles and pedestrians; HOTA, MOTA, IDF1, range and speed errors against the truth"),
}


def _usage() -> str:
    lines = ["usage: drivestack <verb> [config=FILE.yaml] [key=value ...]", "", "verbs:"]
    lines += [f"  {verb:<13}{summary}" for verb, (_, summary) in VERBS.items()]
    lines.append("\n'drivestack <verb> --help' lists a verb's keys and defaults.")
    return "\n".join(lines)


def _help(verb: str) -> str:
    """A verb's docstring and its defaults file, read from the verb's source without importing the library
    behind it (seconds of torch imports); a verb without a defaults file lists its config's fields."""
    source = Path(__file__).with_name(f"{VERBS[verb][0]}.py")
    tree = ast.parse(source.read_text())
    text = [(ast.get_docstring(tree) or "").strip(), ""]
    default = next((node.value.value for node in tree.body if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and any(getattr(t, "id", "") == "DEFAULT_CONFIG" for t in node.targets)), None)  # fmt: skip
    if default:
        path = CONFIG_DIR / default
        text += [f"defaults ({path}):", path.read_text()]
    else:
        import dataclasses

        module = importlib.import_module(f"drivestack.cli.{VERBS[verb][0]}")
        text.append("keys:")
        text += [f"  {f.name} = {f.default!r}" for f in dataclasses.fields(module.CONFIG_CLASS)]
    return "\n".join(text)


# OS errors a user's machine or paths cause (not a bug in the project): one line naming the path
USER_OS_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR, errno.ENOENT}


def one_line(error: BaseException) -> str:
    """An error's message as one line. An exception a DataLoader worker raised carries the worker's traceback
    in its message ("Original Traceback ..."): its last line is the worker's own message."""
    text = str(error).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return " ".join(text.split())


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    verb, args = argv[0], argv[1:]
    if verb not in VERBS:
        near = difflib.get_close_matches(verb, list(VERBS), n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        print(f"drivestack: unknown verb '{verb}'{hint}\n\n{_usage()}", file=sys.stderr)
        return 2
    if any(a in ("-h", "--help") for a in args):
        print(_help(verb))
        return 0
    module = importlib.import_module(f"drivestack.cli.{VERBS[verb][0]}")
    config_path = CONFIG_DIR / module.DEFAULT_CONFIG if module.DEFAULT_CONFIG else None
    overrides = []
    positional = list(getattr(module, "POSITIONAL", ()))
    for a in args:
        if a.startswith("config="):
            config_path = Path(a.split("=", 1)[1])
        elif "=" not in a and positional:  # a verb may name keys that bare words fill in order
            overrides.append(f"{positional.pop(0)}={a}")
        else:
            overrides.append(a)
    try:
        config = load_config(module.CONFIG_CLASS, config_path, overrides)
    except ConfigError as e:
        print(f"drivestack {verb}: {one_line(e)}", file=sys.stderr)
        return 2
    return execute(verb, config)


def execute(verb: str, config) -> int:
    """Run ``verb`` with a loaded config as the command line does: its exit status, bad input as one line on
    stderr (exit 2), Ctrl-C or ``kill`` as exit 130 with what was written kept."""
    module = importlib.import_module(f"drivestack.cli.{VERBS[verb][0]}")
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops a job as Ctrl-C does: workers told to stop, files kept
    try:
        return int(module.run(config) or 0)
    except InputError as e:  # a file, key or model the user names: one line, no traceback
        print(f"drivestack {verb}: {one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:
        if not isinstance(e, FileNotFoundError) and e.errno not in USER_OS_ERRORS:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"drivestack {verb}: {where}{e.strerror or one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ndrivestack {verb}: interrupted; what was written is kept, run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
