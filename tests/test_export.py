"""ONNX export and the ONNX Runtime engine: parity, metadata, INT8, engine errors, the loop on ORT."""

import json
from dataclasses import replace

import numpy as np
import onnx
import pytest
from drivestack.planning.agents.learned import OnnxDriver, PolicyAgent, TorchDriver
from drivestack.planning.deploy.export import ExportConfig, export, recorded_inputs
from drivestack.planning.deploy.onnx_io import read_metadata
from drivestack.planning.deploy.runtime import EngineConfig, EngineError, OnnxEngine, choose_providers
from drivestack.sim.interface import RouteSpec

from tests.perception_helpers import HEIGHT, WIDTH, recorded_dataset, trained_driving_runs


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    config = ExportConfig(checkpoint=str(trained_driving_runs() / "pred" / "last.pt"), out=str(out), data=str(recorded_dataset()),
                          precisions=["fp32", "int8"], parity_frames=4, calibration_frames=8)
    assert export(config) == 0
    return out


def test_every_target_is_exported_and_checked(exported):
    for kind in ("fused", "perception", "policy"):
        for precision in ("fp32", "int8"):
            model = onnx.load(str(exported / f"{kind}_{precision}.onnx"))
            onnx.checker.check_model(model)
            assert min(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 18


def test_fused_graph_has_no_softmax_over_the_class_axis(exported):
    """ONNX Runtime's CPU Softmax on a non-last axis was a third of the fused graph's time (docs/onnx.md)."""
    model = onnx.load(str(exported / "fused_fp32.onnx"))
    ops = {n.op_type for n in model.graph.node} | {n.op_type for f in model.functions for n in f.node}
    assert "Softmax" not in ops and {"Exp", "ReduceSum"} <= ops


def test_metadata_round_trip(exported):
    meta = read_metadata(exported / "fused_fp32.onnx")
    assert meta["kind"] == "fused" and meta["precision"] == "fp32"
    assert meta["image_size"] == [HEIGHT, WIDTH]
    assert meta["inputs"] == ["image", "speed", "command", "target_point"]
    assert meta["commands"]["LEFT"] == 1 and meta["commands"]["LANEFOLLOW"] == 4
    assert read_metadata(exported / "fused_int8.onnx")["precision"] == "int8"


def test_fp32_engine_matches_pytorch_on_recorded_frames(exported):
    torch_driver = TorchDriver(trained_driving_runs() / "pred" / "last.pt")
    engine = OnnxDriver(exported / "fused_fp32.onnx", EngineConfig(warmup=1))
    for image, speed, command, target in recorded_inputs(recorded_dataset(), "front", 3):
        frame, measured = image[0].permute(1, 2, 0).numpy(), (float(speed), int(command), target[0].numpy())
        a, b = torch_driver(frame, *measured), engine(frame, *measured)
        for name in ("seg", "heatmap", "path", "target_speed", "brake"):
            np.testing.assert_allclose(b[name], a[name], atol=1e-4, err_msg=name)


def test_int8_stays_within_tolerance_of_fp32(exported):
    fp32 = OnnxEngine(exported / "fused_fp32.onnx", EngineConfig(warmup=0))
    int8 = OnnxEngine(exported / "fused_int8.onnx", EngineConfig(warmup=0))
    agree = []
    for image, speed, command, target in recorded_inputs(recorded_dataset(), "front", 4):
        feeds = {"image": image.numpy(), "speed": speed.numpy(), "command": command.numpy(), "target_point": target.numpy()}
        a, b = fp32(feeds), int8(feeds)
        agree.append((a["seg"].argmax(1) == b["seg"].argmax(1)).mean())
        assert np.abs(a["path"] - b["path"]).max() < 1.0  # metres
    assert np.mean(agree) > 0.9


def test_engine_errors_name_what_is_wrong(exported, tmp_path):
    with pytest.raises(EngineError, match="model file not found"):
        OnnxEngine(tmp_path / "missing.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x01garbage" * 10)
    with pytest.raises(EngineError, match="corrupt.onnx"):
        OnnxEngine(corrupt)
    with pytest.raises(EngineError, match="kind is 'perception', the config expects 'fused'"):
        OnnxEngine(exported / "perception_fp32.onnx", expect={"kind": "fused"})
    old = onnx.load(exported / "fused_fp32.onnx")
    entry = next(p for p in old.metadata_props if p.key == "drivestack.inputs")
    entry.value = json.dumps(["image", "speed", "command"])
    onnx.save(old, tmp_path / "without_target.onnx")
    with pytest.raises(EngineError, match=r"inputs is \['image', 'speed', 'command'\], the config expects"):
        OnnxDriver(tmp_path / "without_target.onnx", EngineConfig(warmup=0))
    engine = OnnxEngine(exported / "fused_fp32.onnx", EngineConfig(warmup=0))
    good = {"image": np.zeros((1, 3, HEIGHT, WIDTH), np.uint8), "speed": np.zeros(1, np.float32), "command": np.full(1, 4),
            "target_point": np.zeros((1, 2), np.float32)}
    with pytest.raises(EngineError, match="'image' must be uint8, got float32"):
        engine({**good, "image": good["image"].astype(np.float32)})
    with pytest.raises(EngineError, match=r"'image' must have shape \[1, 3, 64, 128\], got \[1, 3, 32, 128\]"):
        engine({**good, "image": good["image"][:, :, :32]})
    with pytest.raises(EngineError, match="missing inputs"):
        engine({"image": good["image"]})


def test_providers_skip_gpu_ones_without_a_gpu():
    chosen, skipped = choose_providers([], ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"], gpu=False)
    assert chosen == ["CPUExecutionProvider"] and len(skipped) == 2
    chosen, _ = choose_providers([], ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"], gpu=True)
    assert chosen == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_torch_and_onnx_agents_drive_the_same_route_alike(exported):
    from drivestack.sim.embedded.backend import EmbeddedSimulator
    from drivestack.sim.settings import CameraConfig

    from tests.conftest import small_sim_config

    config = replace(small_sim_config(), cameras=[CameraConfig("front", WIDTH, HEIGHT)])
    tracks = []
    for driver in (TorchDriver(trained_driving_runs() / "pred" / "last.pt"), OnnxDriver(exported / "fused_fp32.onnx", EngineConfig(warmup=1))):
        agent = PolicyAgent(driver)
        agent.setup(config)
        with EmbeddedSimulator(config) as sim:
            obs = sim.reset(3, RouteSpec(town=0, length=100))
            for _ in range(20):
                obs = sim.step(agent(obs))
        tracks.append((obs.ego.pose.x, obs.ego.pose.y, obs.ego.speed))
    np.testing.assert_allclose(tracks[0], tracks[1], atol=0.05)


def test_bench_reports_every_stage_for_every_variant(exported, tmp_path):
    import json

    from drivestack.planning.deploy.bench import STAGES, BenchConfig, bench

    config = BenchConfig(checkpoint=str(trained_driving_runs() / "pred" / "last.pt"), onnx_dir=str(exported),
                         data=str(recorded_dataset()), frames=5, warmup=1, out=str(tmp_path))
    assert bench(config) == 0
    results = json.loads((tmp_path / "bench.json").read_text())["results"]
    assert set(results) == {"pytorch eager", "onnxruntime fp32 (CPU)", "onnxruntime int8 (CPU)"}
    for stats in results.values():
        assert set(stats) == {*STAGES, "loop", "fused_model"}
        assert 0 < stats["loop"]["p50"] <= stats["loop"]["p99"]
    assert (tmp_path / "latency.png").stat().st_size > 1000


def test_val_onnx_scores_fp32_and_int8_graphs(exported, tmp_path):
    import json

    from drivestack.perception.data.dataset import DataConfig
    from drivestack.planning.deploy.val_onnx import ValOnnxConfig, val_onnx

    config = ValOnnxConfig(models=[str(exported / "perception_fp32.onnx"), str(exported / "perception_int8.onnx")],
                           data=DataConfig(root=str(recorded_dataset()), train_towns=[0, 1], val_towns=[2], test_towns=[]),
                           split="val", out=str(tmp_path / "val.json"))
    assert val_onnx(config) == 0
    results = json.loads((tmp_path / "val.json").read_text())
    assert [r["precision"] for r in results.values()] == ["fp32", "int8"]
    assert all(0.0 <= r["miou"] <= 1.0 and r["images"] > 0 for r in results.values())
