"""Configs: every shipped YAML loads, and bad keys or types give errors naming the key and the file."""

from dataclasses import replace
from pathlib import Path

import pytest
from drivestack.cli import CONFIG_DIR, VERBS, main
from drivestack.common.config import ConfigError, config_from_dict, load_config, to_dict
from drivestack.perception.config import PerceptionConfig
from drivestack.sim.settings import SimConfig

ROOT = Path(__file__).resolve().parent.parent


def test_sim_yaml_lists_exactly_the_defaults():
    assert load_config(SimConfig, CONFIG_DIR / "sim.yaml") == SimConfig()


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_default_config_loads(verb):
    import importlib

    module = importlib.import_module(f"drivestack.cli.{VERBS[verb][0]}")
    path = CONFIG_DIR / module.DEFAULT_CONFIG if module.DEFAULT_CONFIG else None
    config = load_config(module.CONFIG_CLASS, path)
    if verb != "run":  # the pipeline's file is a sized profile; every other file documents the defaults exactly
        assert config == module.CONFIG_CLASS(), f"{path} differs from the defaults of {module.CONFIG_CLASS.__name__}"


@pytest.mark.parametrize("profile", ["quickstart.yaml", "full.yaml", "ship.yaml"])
def test_every_pipeline_profile_wires_its_stages(profile):
    from drivestack.planning.pipeline import PipelineConfig, package_config, stage_configs

    config = load_config(PipelineConfig, CONFIG_DIR / profile)
    stages = stage_configs(config)
    last = f"policy_dagger{config.dagger_rounds}" if config.dagger_rounds else "policy"
    assert stages["export"].checkpoint.endswith(f"{'policy_soup' if config.soup_rounds > 1 else last}/last.pt")
    if config.soup_rounds > 1:
        assert stages["soup"].checkpoints[-1].endswith(f"{last}/last.pt") and len(stages["soup"].checkpoints) == config.soup_rounds
    assert set(stages["dagger1"].town_seeds) == set(stages["policy"].data.train_towns)
    if config.package_out:
        assert package_config(config, stages).onnx == [f"{config.out}/export/fused_int8.onnx"]


@pytest.mark.parametrize("overrides, message", [
    (["perception.data.test_towns=[200]"], r"perception.data splits use towns \[200\] that perception_collect.town_seeds does not record"),
    (["policy.data.test_towns=[30]"], r"policy.data splits use towns \[30\] that collect.town_seeds does not record"),
    (["policy.data.camera=rear"], "policy.data.camera 'rear' is not among collect.sim.cameras"),
    (["export.targets=[perception]"], "package_out ships the fused graph"),
])  # fmt: skip
def test_a_pipeline_refuses_splits_its_recordings_lack(overrides, message):
    from drivestack.planning.pipeline import PipelineConfig, stage_configs

    with pytest.raises(ConfigError, match=message):
        stage_configs(load_config(PipelineConfig, CONFIG_DIR / "ship.yaml", overrides))


def test_drivestack_run_reports_it_before_any_stage(tmp_path, capsys, monkeypatch):
    import drivestack.cli.collect

    monkeypatch.setattr(drivestack.cli.collect, "run", lambda config: pytest.fail("a stage started"))
    assert main(["run", f"config={CONFIG_DIR / 'ship.yaml'}", f"out={tmp_path / 'run'}", "policy.data.camera=rear"]) == 2
    assert "drivestack run: policy.data.camera 'rear' is not among collect.sim.cameras" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_unknown_key_names_key_file_and_suggestion(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("traffic:\n  vehicels: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(SimConfig, path)
    msg = str(e.value)
    assert str(path) in msg and "traffic.vehicels" in msg and "traffic.vehicles" in msg


def test_wrong_type_names_key_and_value(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("dt: fast\n")
    with pytest.raises(ConfigError, match=r"'dt' must be a number, got 'fast'"):
        load_config(SimConfig, path)
    with pytest.raises(ConfigError, match=r"cameras\[0\].width' must be an integer"):
        load_config(SimConfig, None, ["cameras=[{width: 3.5}]"])


def test_exponent_without_a_dot_is_a_number(tmp_path):
    """YAML 1.1 reads ``5e-2`` as a string; a float field takes it as the number users mean."""
    path = tmp_path / "exp.yaml"
    path.write_text("dt: 5e-2\n")
    assert load_config(SimConfig, path).dt == 0.05
    assert load_config(SimConfig, None, ["dt=2.5e-2"]).dt == 0.025


def test_value_checks_in_post_init_are_config_errors():
    with pytest.raises(ConfigError, match="dt must be in"):
        load_config(SimConfig, None, ["dt=0"])
    with pytest.raises(ConfigError, match="camera names must be unique"):
        load_config(SimConfig, None, ["cameras=[{name: a}, {name: a}]"])


def test_overrides_and_round_trip():
    config = load_config(SimConfig, CONFIG_DIR / "sim.yaml", ["traffic.vehicles=3", "town.grid=3", "backend=carla"])
    assert (config.traffic.vehicles, config.town.grid, config.backend) == (3, 3, "carla")
    assert config_from_dict(SimConfig, to_dict(config)) == config
    with pytest.raises(ConfigError, match="must be one of"):
        load_config(SimConfig, None, ["backend=unreal"])


def test_a_partial_section_keeps_the_enclosing_configs_defaults(tmp_path):
    from drivestack.planning.pipeline import PipelineConfig
    from drivestack.planning.policy.train import PolicyTrainConfig

    path = tmp_path / "run.yaml"
    path.write_text("policy:\n  train: {epochs: 8}\n  model: {slow_weight: 3.0}\n")
    policy = load_config(PipelineConfig, path).policy
    default = PolicyTrainConfig()
    assert (policy.train.epochs, policy.model.slow_weight) == (8, 3.0)
    assert policy.train == replace(default.train, epochs=8)  # the policy's lr 1e-3 and batch 32, not the trainer's 3e-3 and 16
    assert policy.augment == default.augment and policy.augment.affine == 0.0
    with pytest.raises(ConfigError, match="unknown key 'policy.train.epoch'"):
        load_config(PipelineConfig, None, ["policy.train.epoch=3"])


def test_cli_reports_bad_keys_without_a_traceback(capsys):
    assert main(["bench-sim", "steps=ten"]) == 2
    assert "'steps' must be an integer" in capsys.readouterr().err
    assert main(["nonsense"]) == 2
    assert main(["bench-sim", "--help"]) == 0
    assert "one_core" in capsys.readouterr().out


@pytest.mark.parametrize("args, named", [
    (["export", "checkpoint={missing}"], "checkpoint not found: {missing}"),
    (["val", "val.checkpoint={missing}"], "checkpoint not found: {missing}"),
    (["bench-loader", "data.root={tmp}"], "{tmp}/manifest.json: manifest is missing"),
    (["drive", "agent=policy", "routes=[nope]"], "routes ['nope'] are not in suite 'embedded-heldout-v1'"),
    (["show", "every=0"], "every, scale and max_steps must be >= 1"),
    (["expert", "routes=0"], "routes and workers must be >= 1"),
])  # fmt: skip
def test_cli_reports_missing_files_in_one_line(tmp_path, capsys, args, named):
    fill = {"missing": tmp_path / "gone.pt", "tmp": tmp_path}
    assert main([a.format(**fill) for a in args]) == 2
    err = capsys.readouterr().err
    assert named.format(**fill) in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("override, named", [("val.decoding.peak_window=2", "peak_window"), ("val.decoding.nms_iou=0", "nms_iou")])
def test_val_decoding_keys_are_checked(override, named):
    with pytest.raises(ConfigError, match=named):
        load_config(PerceptionConfig, CONFIG_DIR / "perception.yaml", [override])
