"""``drivestack <verb> [config=FILE.yaml] [key=value ...]``: one entry point for every command.

Each verb is a module in ``tools/`` with ``CONFIG_CLASS`` (a dataclass), ``DEFAULT_CONFIG`` (a file in
``configs/`` or None) and ``run(config) -> int``. Keys are dotted paths into the config
(``sim.traffic.vehicles=30``); ``config=`` picks another YAML file. ``drivestack <verb> --help`` prints
the verb's documented defaults.
"""

from __future__ import annotations

import importlib
import signal
import sys
from pathlib import Path

from drivestack.common.config import ConfigError, load_config
from drivestack.common.errors import InputError
from drivestack.common.paths import CONFIG_DIR

VERBS = {
    "run": "drivestack.cli.run",
    "collect": "drivestack.cli.collect",
    "dagger": "drivestack.cli.dagger",
    "probe": "drivestack.cli.probe",
    "validate": "drivestack.cli.validate",
    "look": "drivestack.cli.look",
    "bench-loader": "drivestack.cli.bench_loader",
    "train": "drivestack.cli.train",
    "val": "drivestack.cli.val",
    "model-info": "drivestack.cli.model_info",
    "train-policy": "drivestack.cli.train_policy",
    "export": "drivestack.cli.export",
    "val-onnx": "drivestack.cli.val_onnx",
    "bench": "drivestack.cli.bench",
    "soup": "drivestack.cli.soup",
    "package": "drivestack.cli.package",
    "expert": "drivestack.cli.expert_eval",
    "drive": "drivestack.cli.drive",
    "bench-sim": "drivestack.cli.bench_sim",
    "show": "drivestack.cli.show",
}


def _usage() -> str:
    lines = ["usage: drivestack <verb> [config=FILE.yaml] [key=value ...]", "", "verbs:"]
    for verb, module in VERBS.items():
        doc = (importlib.import_module(module).__doc__ or "").strip().splitlines()
        lines.append(f"  {verb:<10} {doc[0] if doc else ''}")
    lines.append("\n'drivestack <verb> --help' lists a verb's keys and defaults.")
    return "\n".join(lines)


def _help(module) -> str:
    text = [(module.__doc__ or "").strip(), ""]
    if module.DEFAULT_CONFIG:
        path = CONFIG_DIR / module.DEFAULT_CONFIG
        text += [f"defaults ({path}):", path.read_text()]
    else:
        import dataclasses

        text.append("keys:")
        text += [f"  {f.name} = {f.default!r}" for f in dataclasses.fields(module.CONFIG_CLASS)]
    return "\n".join(text)


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    verb, args = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"drivestack: unknown verb '{verb}'\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(VERBS[verb])
    if any(a in ("-h", "--help") for a in args):
        print(_help(module))
        return 0
    config_path = CONFIG_DIR / module.DEFAULT_CONFIG if module.DEFAULT_CONFIG else None
    overrides = []
    for a in args:
        if a.startswith("config="):
            config_path = Path(a.split("=", 1)[1])
        else:
            overrides.append(a)
    try:
        config = load_config(module.CONFIG_CLASS, config_path, overrides)
    except ConfigError as e:
        print(f"drivestack {verb}: {e}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops a job as Ctrl-C does: workers told to stop, files kept
    try:
        return int(module.run(config) or 0)
    except (InputError, FileNotFoundError) as e:  # a file, key or model the user names: one line, no traceback
        print(f"drivestack {verb}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ndrivestack {verb}: interrupted; what was written is kept, run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
