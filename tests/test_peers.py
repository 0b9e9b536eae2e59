"""bench peers=...: the ratio table, interleaved timing, the error without the optional extra, and (when
ultralytics is installed) the whole peers run."""

import json
import sys

import numpy as np
import pytest
from drivestack.cli import main
from drivestack.planning.deploy.bench import BenchConfig
from drivestack.planning.deploy.peers import Variant, markdown_table, time_interleaved, with_ratios


def test_ratios_divide_by_the_reference_and_the_table_lists_fastest_first():
    stats = {"yolo11n onnxruntime fp32": {"p50": 20.0, "p90": 25.0}, "drivestack fused onnxruntime fp32": {"p50": 30.0, "p90": 50.0},
             "drivestack fused onnxruntime int8": {"p50": 10.0, "p90": 20.0}}  # fmt: skip
    rated = with_ratios(stats, "yolo11n onnxruntime fp32")
    assert rated["drivestack fused onnxruntime fp32"]["ratio_p50"] == pytest.approx(1.5)
    assert rated["drivestack fused onnxruntime fp32"]["ratio_p90"] == pytest.approx(2.0)
    assert rated["yolo11n onnxruntime fp32"]["ratio_p50"] == 1.0
    rows = {k: {"model": k.rsplit(" ", 2)[0], "runtime": " ".join(k.rsplit(" ", 2)[1:]), **v, "cpu_p50": v["p50"] / 2,
                "cpu_ratio_p50": v["ratio_p50"]} for k, v in rated.items()}  # fmt: skip
    lines = markdown_table(rows, "yolo11n onnxruntime fp32").splitlines()
    assert lines[0].startswith("| model | runtime | p50 ms | p90 ms | p50 / yolo11n onnxruntime fp32")
    assert lines[2] == "| drivestack fused | onnxruntime int8 | 10.00 | 20.00 | 0.50 | 0.80 | 5.00 | 0.50 |"
    assert lines[4] == "| drivestack fused | onnxruntime fp32 | 30.00 | 50.00 | 1.50 | 2.00 | 15.00 | 1.50 |"
    with pytest.raises(ValueError, match="reference 'yolo26n onnxruntime fp32'"):
        with_ratios(stats, "yolo26n onnxruntime fp32")


def test_interleaved_timing_runs_every_variant_each_round_in_a_rotating_order():
    calls = []
    variants = [Variant(name, "cpu", lambda x, name=name: calls.append((name, x)), [0, 1, 2]) for name in "abc"]
    wall, cpu = time_interleaved(variants, count=4, warmup=2)
    assert {k: len(v) for k, v in wall.items()} == {k: len(v) for k, v in cpu.items()} == {"a cpu": 4, "b cpu": 4, "c cpu": 4}
    assert all((v >= 0).all() for v in [*wall.values(), *cpu.values()])
    assert [name for name, _ in calls[:6]] == ["a", "b", "c", "b", "c", "a"]
    assert [x for name, x in calls if name == "a"] == [0, 1, 2, 0, 1, 2]


def test_unknown_peer_is_refused_by_name():
    with pytest.raises(ValueError, match="peers must be among"):
        BenchConfig(peers=["yolov8n"])


def test_missing_ultralytics_is_one_line_naming_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # import fails as if it were not installed
    assert main(["bench", "peers=[yolo11n]"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install drivestack[bench]" in err and len(err.splitlines()) == 1


def test_peers_bench_times_the_fused_graph_beside_yolo(tmp_path):
    pytest.importorskip("ultralytics")
    from drivestack.planning.deploy.bench import bench

    from tests.perception_helpers import recorded_dataset, trained_driving_runs

    config = BenchConfig(checkpoint=str(trained_driving_runs() / "pred" / "last.pt"), onnx_dir=str(tmp_path / "none"),
                         data=str(recorded_dataset()), peers=["yolo11n"], frames=3, warmup=1, out=str(tmp_path))  # fmt: skip
    assert bench(config) == 0
    report = json.loads((tmp_path / "peers.json").read_text())
    assert set(report["results"]) == {"drivestack fused pytorch eager", "yolo11n pytorch eager", "yolo11n onnxruntime fp32"}
    assert report["results"]["yolo11n onnxruntime fp32"]["ratio_p50"] == report["results"]["yolo11n onnxruntime fp32"]["cpu_ratio_p50"] == 1.0
    assert all(np.isfinite(r["p90"]) and r["p50"] > 0 for r in report["results"].values())
    assert (tmp_path / "onnx" / "yolo11n.onnx").is_file() and (tmp_path / "peers.png").stat().st_size > 1000
    assert "| yolo11n | onnxruntime fp32 |" in (tmp_path / "peers.md").read_text()
